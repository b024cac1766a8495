package entrystore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// entryStrings renders entries as "terms values" in JSON, for comparison.
func entryStrings(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Terms.String() + " " + e.Values.String()
	}
	return out
}

func TestEntries(t *testing.T) {
	s := index.Schema{
		Collections: []string{"c"},
		Indexes: []index.Definition{
			{Name: "by_a", Collection: "c", Terms: []string{"a"}},
			{Name: "by_a_b", Collection: "c", Terms: []string{"a"}, Values: []string{"b"}},
			{Name: "by_x_y", Collection: "c", Terms: []string{"x.y"}, Values: []string{"x"}},
			{Name: "none", Collection: "c"},
		},
	}
	c := mustCatalog(t, s)
	cases := []struct {
		index, doc string
		want       []string
	}{
		{"by_a", `{"a":"fire"}`, []string{`["fire"] []`}},
		{"by_a", `{}`, []string{`[null] []`}},                         // missing is null
		{"by_a", `{"a":null}`, []string{`[null] []`}},                 // same as missing
		{"by_a", `{"a":[]}`, nil},                                     // empty array: no entry
		{"by_a", `{"a":[1,"1",1.0]}`, []string{`[1] []`, `["1"] []`}}, // fan out, 1 == 1.0, ordered
		{"by_a", `{"a":[[1,2],3]}`, []string{`[3] []`, `[[1,2]] []`}}, // nested array is one value
		{"by_a", `{"a":1,"a":2}`, []string{`[2] []`}},                 // last duplicate wins
		{"by_a", `{"\u0061":true}`, []string{`[true] []`}},            // escaped key
		{"by_a_b", `{"a":[1,2],"b":["x","y"]}`, []string{`[1] ["x"]`, `[1] ["y"]`, `[2] ["x"]`, `[2] ["y"]`}},
		{"by_a_b", `{"a":[1,2],"b":[]}`, nil},
		{"by_x_y", `{"x":{"y":5}}`, []string{`[5] [{"y":5}]`}},
		{"by_x_y", `{"x":[{"y":5}]}`, []string{`[null] [{"y":5}]`}}, // paths do not go through arrays
		{"by_x_y", `{"x":"s"}`, []string{`[null] ["s"]`}},
		{"by_x_y", `{"x":{"y":1},"x":{"z":1}}`, []string{`[null] [{"z":1}]`}}, // a later duplicate replaces the whole object
		{"none", `{"whatever":1}`, []string{`[] []`}},
	}
	for _, tc := range cases {
		got, err := c.Entries(tc.index, txlog.Ref{Collection: "c", ID: "1"}, []byte(tc.doc))
		if err != nil {
			t.Errorf("%s %s: %v", tc.index, tc.doc, err)
			continue
		}
		if g, w := strings.Join(entryStrings(got), "; "), strings.Join(tc.want, "; "); g != w {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.index, tc.doc, g, w)
		}
	}
}

func TestEntriesErrors(t *testing.T) {
	c := mustCatalog(t, index.Schema{
		Collections: []string{"c", "d"},
		Indexes:     []index.Definition{{Name: "i", Collection: "c", Terms: []string{"a", "b"}}},
	})
	ref := txlog.Ref{Collection: "c", ID: "1"}
	arr := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprint(i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	cases := []struct {
		index string
		ref   txlog.Ref
		doc   string
		want  error
	}{
		{"nope", ref, `{}`, index.ErrUnknownIndex},
		{"i", txlog.Ref{Collection: "d", ID: "1"}, `{}`, index.ErrUnknownIndex},
		{"i", ref, `{"a":}`, index.ErrInvalidJSON},
		{"i", ref, `{"a":1} x`, index.ErrInvalidJSON},
		{"i", ref, ``, index.ErrInvalidJSON},
		{"i", ref, `[1]`, ErrNotObject},
		{"i", ref, `null`, ErrNotObject},
		{"i", ref, `{"a":1e9999999999}`, index.ErrNumberRange},
		{"i", ref, `{"a":` + arr(33) + `,"b":` + arr(32) + `}`, index.ErrTooManyEntries}, // 1056 > 1024
	}
	for _, tc := range cases {
		if _, err := c.Entries(tc.index, tc.ref, []byte(tc.doc)); !errors.Is(err, tc.want) {
			t.Errorf("Entries(%s, %s) = %v, want %v", tc.index, tc.doc, err, tc.want)
		}
	}
	// At the cap exactly, the document is indexed.
	es, err := c.Entries("i", ref, []byte(`{"a":`+arr(32)+`,"b":`+arr(32)+`}`))
	if err != nil || len(es) != index.MaxEntriesPerDocument {
		t.Errorf("32×32 entries: %d, %v", len(es), err)
	}
	// A field not indexed is validated but never encoded: no range error.
	if _, err := c.Entries("i", ref, []byte(`{"z":1e9999999999}`)); err != nil {
		t.Errorf("unindexed huge number: %v", err)
	}
}
