package index

import (
	"errors"
	"fmt"
	"testing"
)

// Helpers that the tests of several files use: schemas and catalogs,
// values, and listing a set. A helper that one file's tests use stays in
// that file; so does the reference implementation in reference_test.go,
// which the fuzz and property tests compare against.

// spellsSchema: spells by element (with values) and all spells (values
// only), and people by city.
func spellsSchema() Schema {
	return Schema{
		Collections: []string{"spells", "people"},
		Indexes: []Definition{
			{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}, Values: []string{"stats.level"}},
			{Name: "all_spells", Collection: "spells", Values: []string{"name"}},
			{Name: "people_by_city", Collection: "people", Terms: []string{"address.city"}},
		},
	}
}

// mustCatalog builds the catalog of s, failing the test on an error.
func mustCatalog(t testing.TB, s Schema) *Catalog {
	t.Helper()
	c, err := NewCatalog(s)
	if err != nil {
		t.Fatalf("NewCatalog: %v", err)
	}
	return c
}

// mustParse parses a JSON value, failing the test on an error.
func mustParse(t testing.TB, text string) Value {
	t.Helper()
	v, err := ParseValue([]byte(text))
	if err != nil {
		t.Fatalf("ParseValue(%s): %v", text, err)
	}
	return v
}

// cmpInt compares two ints as cmp.Compare does, as -1, 0 or 1.
func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pager is a Store or a Snapshot.
type pager interface {
	Page(dst []Entry, set SetKey, after Position, n int) ([]Entry, bool, error)
}

// listSet lists a whole set through pages of n, carrying the position
// from page to page in its text form, as a cursor would.
func listSet(p pager, set SetKey, n int) ([]Entry, error) {
	var all []Entry
	var after Position
	for {
		page, more, err := p.Page(nil, set, after, n)
		if err != nil {
			return nil, err
		}
		if len(page) > n {
			return nil, fmt.Errorf("page of %d entries, asked for %d", len(page), n)
		}
		all = append(all, page...)
		if !more {
			return all, nil
		}
		if len(page) == 0 {
			return nil, errors.New("more with an empty page")
		}
		text, _ := page[len(page)-1].Position().MarshalText()
		after = Position{}
		if err := after.UnmarshalText(text); err != nil {
			return nil, err
		}
	}
}
