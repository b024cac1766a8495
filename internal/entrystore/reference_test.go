package entrystore

// A reference model of extraction, built on encoding/json: the property
// and fuzz tests check the package against it.

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
)

// refDecode decodes a document as encoding/json does, numbers kept as text.
func refDecode(data []byte) (any, error) {
	if !json.Valid(data) {
		return nil, index.ErrInvalidJSON
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, ErrNotObject
	}
	return v, nil
}

// refElements returns the values a path yields in a decoded document:
// null if missing, the elements of an array, else the value.
func refElements(doc any, path string) []any {
	v := doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return []any{nil}
		}
		if v, ok = m[k]; !ok {
			return []any{nil}
		}
	}
	if a, ok := v.([]any); ok {
		return a
	}
	return []any{v}
}

// refCanon encodes a decoded value by marshalling it back to JSON.
func refCanon(v any) (string, error) {
	text, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return canonical.Parse(text)
}

// refEntry is one expected entry: encoded terms and values.
type refEntry struct{ terms, values string }

// refEntries computes a document's entries in an index from scratch: the
// cross product of its fields' elements, sorted, without duplicates.
func refEntries(def index.Definition, doc any) ([]refEntry, error) {
	paths := slices.Concat(def.Terms, def.Values)
	combos := [][]string{{}}
	for _, p := range paths {
		var next [][]string
		for _, el := range refElements(doc, p) {
			enc, err := refCanon(el)
			if err != nil {
				return nil, err
			}
			for _, c := range combos {
				next = append(next, append(slices.Clone(c), enc))
			}
		}
		combos = next
	}
	if len(combos) > index.MaxEntriesPerDocument {
		return nil, index.ErrTooManyEntries
	}
	var out []refEntry
	for _, c := range combos {
		out = append(out, refEntry{
			terms:  strings.Join(c[:len(def.Terms)], ""),
			values: strings.Join(c[len(def.Terms):], ""),
		})
	}
	slices.SortFunc(out, func(a, b refEntry) int { return strings.Compare(a.terms+a.values, b.terms+b.values) })
	return slices.Compact(out), nil
}
