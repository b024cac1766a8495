package entrystore

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/tidings/tidings/index"
)

// checkName validates a collection or index name: non-empty, valid UTF-8,
// no control characters (so that a name never contains the 0x00 that ends
// it inside a set key).
func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s name", index.ErrInvalidName, kind)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %s name %q is not valid UTF-8", index.ErrInvalidName, kind, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s name %q contains a control character", index.ErrInvalidName, kind, name)
		}
	}
	return nil
}

// validate checks d against the declared collections.
func validate(d *index.Definition, collections map[string]*collectionPlan) error {
	if err := checkName("index", d.Name); err != nil {
		return err
	}
	if err := checkName("collection", d.Collection); err != nil {
		return fmt.Errorf("index %q: %w", d.Name, err)
	}
	if collections[d.Collection] == nil {
		return fmt.Errorf("%w: index %q is on collection %q, which the schema does not declare",
			index.ErrUnknownCollection, d.Name, d.Collection)
	}
	for _, paths := range [][]string{d.Terms, d.Values} {
		for _, p := range paths {
			if _, err := index.ParsePath(p); err != nil {
				return fmt.Errorf("index %q: %w", d.Name, err)
			}
		}
	}
	return nil
}

// clone returns a deep copy of d, so that a Catalog never shares slices
// with its caller.
func clone(d index.Definition) index.Definition {
	d.Terms = append([]string(nil), d.Terms...)
	d.Values = append([]string(nil), d.Values...)
	return d
}
