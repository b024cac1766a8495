package index

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Definition defines one index: which collection's documents it reads, the
// field paths of its terms (what a set matches on) and of its values (what
// entries are ordered by after the terms, and what set events carry).
//
// A field path names a field of the document's data, with dots between the
// keys of nested objects: "element", "stats.level". See ParsePath.
// Both Terms and Values may be empty: an index without terms is one set
// (every document with an entry), ordered by its values and then ref.
type Definition struct {
	Name       string
	Collection string
	Terms      []string
	Values     []string
}

// Schema declares the collections of an application and the indexes on
// them. NewCatalog validates it.
type Schema struct {
	Collections []string
	Indexes     []Definition
}

// checkName validates a collection or index name: non-empty, valid UTF-8,
// no control characters (so that a name never contains the 0x00 that ends
// it inside a set key).
func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalidName, kind)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %s name %q is not valid UTF-8", ErrInvalidName, kind, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s name %q contains a control character", ErrInvalidName, kind, name)
		}
	}
	return nil
}

// validate checks d against the declared collections.
func (d *Definition) validate(collections map[string]*collectionPlan) error {
	if err := checkName("index", d.Name); err != nil {
		return err
	}
	if err := checkName("collection", d.Collection); err != nil {
		return fmt.Errorf("index %q: %w", d.Name, err)
	}
	if collections[d.Collection] == nil {
		return fmt.Errorf("%w: index %q is on collection %q, which the schema does not declare",
			ErrUnknownCollection, d.Name, d.Collection)
	}
	for _, paths := range [][]string{d.Terms, d.Values} {
		for _, p := range paths {
			if _, err := ParsePath(p); err != nil {
				return fmt.Errorf("index %q: %w", d.Name, err)
			}
		}
	}
	return nil
}

// clone returns a deep copy of d, so that a Catalog never shares slices
// with its caller.
func (d Definition) clone() Definition {
	d.Terms = append([]string(nil), d.Terms...)
	d.Values = append([]string(nil), d.Values...)
	return d
}
