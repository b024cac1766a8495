package index

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/tidings/tidings/txlog"
)

var fuzzDocs = []string{
	`{"element":"fire","stats":{"level":3}}`,
	`{"element":["fire","water",1,1.0,"1",null,[1,2],{"b":1,"a":2}],"stats":{"level":[1,2,3]}}`,
	`{"element":{"x":1e400,"y":-0.0},"stats":[{"level":1}]}`,
	`{"element":"\u0000\ud800\ud83d\ude00\"\\","stats":{"level":12345678901234567891}}`,
	`{"element":1,"element":2,"stats":{"level":1},"stats":{"other":1}}`,
	`{"element":[],"stats":{"level":[]}}`,
	"{\"element\":\"\xff\xfe\"}",
	`{"\u0065lement":true}`,
	` {"element" : [ [ ] , { } ] } `,
	`{"element":1e9999999999}`,
	`{"element":`,
	`[1,2]`,
	`null`,
	``,
	`{"element":01}`,
	`{"a":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`,
}

// FuzzExtract checks term and value extraction from arbitrary JSON
// against the reference model (encoding/json): the same verdict on
// validity, the same entries, deterministic, each value round tripping
// through its canonical JSON text; and the diffs of creating and deleting
// the document agree with its entries. It never panics.
func FuzzExtract(f *testing.F) {
	for _, doc := range fuzzDocs {
		f.Add([]byte(doc), "element", "stats.level")
		f.Add([]byte(doc), "stats.level", "")
	}
	f.Add([]byte(`{"a":{"b":{"c":1}}}`), "a.b.c", "a")
	f.Add([]byte(`{"a":1}`), "a..b", "a")
	f.Add([]byte(`{"a":1}`), "", ".")
	f.Fuzz(func(t *testing.T, doc []byte, termPath, valuePath string) {
		def := Definition{Name: "i", Collection: "c", Terms: []string{termPath}}
		if valuePath != "" {
			def.Values = []string{valuePath}
		}
		c, err := NewCatalog(Schema{Collections: []string{"c"}, Indexes: []Definition{def}})
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("NewCatalog: %v, want ErrInvalidPath", err)
			}
			return
		}
		ref := txlog.Ref{Collection: "c", ID: "1"}
		es, err := c.Entries("i", ref, doc)
		es2, err2 := c.Entries("i", ref, doc)
		if !slices.Equal(es, es2) || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %v %v / %v %v", es, err, es2, err2)
		}

		decoded, refErr := refDecode(doc)
		switch {
		case errors.Is(refErr, ErrInvalidJSON):
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("invalid JSON %q: got %v", doc, err)
			}
			return
		case errors.Is(refErr, ErrNotObject):
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("non-object %q: got %v", doc, err)
			}
			return
		case refErr != nil:
			t.Fatalf("reference decode of valid JSON: %v", refErr)
		}
		want, refErr := refEntries(def, decoded)
		if refErr != nil {
			if !errors.Is(err, ErrNumberRange) && !errors.Is(err, ErrTooManyEntries) {
				t.Fatalf("reference fails with %v, got %v", refErr, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Entries(%q): %v", doc, err)
		}
		if len(es) != len(want) {
			t.Fatalf("%d entries, reference %d", len(es), len(want))
		}
		for i, e := range es {
			if e.Terms.enc != want[i].terms || e.Values.enc != want[i].values || e.Ref != ref {
				t.Fatalf("entry %d = %v %v, reference %v %v", i, e.Terms, e.Values, Tuple{want[i].terms}, Tuple{want[i].values})
			}
			if i > 0 && (e.Terms.enc+e.Values.enc) <= (es[i-1].Terms.enc+es[i-1].Values.enc) {
				t.Fatalf("entries out of order or duplicated at %d", i)
			}
			for _, v := range slices.Concat(e.Terms.Values(), e.Values.Values()) {
				text := v.AppendJSON(nil)
				if !json.Valid(text) {
					t.Fatalf("canonical JSON %q is not valid JSON", text)
				}
				if back, err := ParseValue(text); err != nil || back != v {
					t.Fatalf("%s does not round trip: %q vs %q (%v)", text, back.enc, v.enc, err)
				}
			}
		}

		var d Diff
		if err := c.Diff(&d, ref, nil, doc); err != nil || len(d.Changes()) != len(es)+1 {
			t.Fatalf("create: %v, %d changes for %d entries", err, len(d.Changes()), len(es))
		}
		for i, ch := range d.Changes()[1:] {
			if ch.Action != Add || ch.Entry != es[i] || ch.Set.Terms() != es[i].Terms {
				t.Fatalf("create change %d = %v, entry %v", i, ch, es[i])
			}
		}
		if err := c.Diff(&d, ref, doc, doc); err != nil || len(d.Changes()) != 0 {
			t.Fatalf("unchanged: %v, %d changes", err, len(d.Changes()))
		}
		if err := c.Diff(&d, ref, doc, nil); err != nil || len(d.Changes()) != len(es)+1 {
			t.Fatalf("delete: %v, %d changes", err, len(d.Changes()))
		}
	})
}

// FuzzValueOrder checks the canonical encoding of arbitrary JSON values
// against the reference order (exact, with math/big): equal encodings
// exactly for equal values, bytewise order for the documented order, and
// decode(encode(v)) round trips.
func FuzzValueOrder(f *testing.F) {
	seeds := []string{`1`, `1.0`, `"1"`, `-0`, `0`, `1e400`, `-1e-400`, `12345678901234567891`, `12345678901234567892`,
		`null`, `true`, `false`, `""`, `"\u0000"`, `"a"`, `"é"`, `[]`, `[1,2]`, `[1]`, `{}`, `{"a":1,"b":2}`, `{"b":2,"a":1.0}`,
		`{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `1e9999999999`, `[`, `0.1e1`}
	for i, a := range seeds {
		f.Add([]byte(a), []byte(seeds[(i*7+3)%len(seeds)]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		va, ea := ParseValue(a)
		vb, eb := ParseValue(b)
		for _, x := range []struct {
			text []byte
			err  error
		}{{a, ea}, {b, eb}} {
			valid := json.Valid(x.text)
			if !valid && !errors.Is(x.err, ErrInvalidJSON) || valid && x.err != nil && !errors.Is(x.err, ErrNumberRange) {
				t.Fatalf("ParseValue(%q) = %v, json.Valid = %v", x.text, x.err, valid)
			}
		}
		if ea != nil || eb != nil {
			return
		}
		ra, _ := refValue(a)
		rb, _ := refValue(b)
		cmp := va.Compare(vb)
		if cmp != -vb.Compare(va) {
			t.Fatal("Compare is not antisymmetric")
		}
		if want, ok := refCompare(ra, rb); ok && (cmp != want || (va == vb) != (want == 0)) {
			t.Fatalf("Compare(%s, %s) = %d (equal %v), reference %d", a, b, cmp, va == vb, want)
		}
		for _, v := range []Value{va, vb} {
			text := v.AppendJSON(nil)
			back, err := ParseValue(text)
			if err != nil || back != v {
				t.Fatalf("%s does not round trip (%v)", text, err)
			}
		}
		rt, err := refValue(va.AppendJSON(nil))
		if err != nil {
			t.Fatalf("canonical text %s: %v", va.AppendJSON(nil), err)
		}
		if c, ok := refCompare(ra, rt); ok && c != 0 {
			t.Fatalf("canonical text %s is not equal to %s", va.AppendJSON(nil), a)
		}
	})
}
