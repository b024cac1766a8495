package entrystore

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
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
		def := index.Definition{Name: "i", Collection: "c", Terms: []string{termPath}}
		if valuePath != "" {
			def.Values = []string{valuePath}
		}
		c, err := NewCatalog(index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{def}})
		if err != nil {
			if !errors.Is(err, index.ErrInvalidPath) {
				t.Fatalf("NewCatalog: %v, want index.ErrInvalidPath", err)
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
		case errors.Is(refErr, index.ErrInvalidJSON):
			if !errors.Is(err, index.ErrInvalidJSON) {
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
			if !errors.Is(err, index.ErrNumberRange) && !errors.Is(err, index.ErrTooManyEntries) {
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
			if string(e.Terms) != want[i].terms || string(e.Values) != want[i].values || e.Ref != ref {
				t.Fatalf("entry %d = %v %v, reference %v %v", i, e.Terms, e.Values, canonical.Tuple(want[i].terms), canonical.Tuple(want[i].values))
			}
			if i > 0 && e.Terms+e.Values <= es[i-1].Terms+es[i-1].Values {
				t.Fatalf("entries out of order or duplicated at %d", i)
			}
			for _, v := range slices.Concat(e.Terms.Values(), e.Values.Values()) {
				text := canonical.AppendJSON(nil, v)
				if !json.Valid(text) {
					t.Fatalf("canonical JSON %q is not valid JSON", text)
				}
				if back, err := canonical.Parse(text); err != nil || back != v {
					t.Fatalf("%s does not round trip: %q vs %q (%v)", text, back, v, err)
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
