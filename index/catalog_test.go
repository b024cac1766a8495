package index

import (
	"errors"
	"slices"
	"testing"
)

func TestNewCatalogErrors(t *testing.T) {
	idx := func(name, coll string, terms ...string) Definition {
		return Definition{Name: name, Collection: coll, Terms: terms}
	}
	cases := []struct {
		name string
		s    Schema
		want error
	}{
		{"empty path", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("i", "c", "")}}, ErrInvalidPath},
		{"doubled dot", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("i", "c", "a..b")}}, ErrInvalidPath},
		{"leading dot", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("i", "c", ".a")}}, ErrInvalidPath},
		{"trailing dot", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("i", "c", "a.")}}, ErrInvalidPath},
		{"bad UTF-8 path", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("i", "c", "a\xff")}}, ErrInvalidPath},
		{"bad value path", Schema{Collections: []string{"c"}, Indexes: []Definition{{Name: "i", Collection: "c", Values: []string{"x", "."}}}}, ErrInvalidPath},
		{"duplicate index", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("i", "c", "a"), idx("i", "c", "b")}}, ErrDuplicateIndex},
		{"unknown collection", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("i", "d", "a")}}, ErrUnknownCollection},
		{"no collections declared", Schema{Indexes: []Definition{idx("i", "c", "a")}}, ErrUnknownCollection},
		{"duplicate collection", Schema{Collections: []string{"c", "c"}}, ErrDuplicateCollection},
		{"empty collection name", Schema{Collections: []string{""}}, ErrInvalidName},
		{"control in collection name", Schema{Collections: []string{"a\x00b"}}, ErrInvalidName},
		{"empty index name", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("", "c", "a")}}, ErrInvalidName},
		{"bad UTF-8 index name", Schema{Collections: []string{"c"}, Indexes: []Definition{idx("\xff", "c", "a")}}, ErrInvalidName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cat, err := NewCatalog(c.s)
			if !errors.Is(err, c.want) || cat != nil {
				t.Errorf("NewCatalog = %v, %v; want error %v", cat, err, c.want)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	keys, err := ParsePath("stats.level")
	if err != nil || !slices.Equal(keys, []string{"stats", "level"}) {
		t.Errorf("ParsePath(stats.level) = %q, %v", keys, err)
	}
	if keys, err := ParsePath("élément"); err != nil || len(keys) != 1 {
		t.Errorf("ParsePath(élément) = %q, %v", keys, err)
	}
}

func TestCatalogAccessors(t *testing.T) {
	s := spellsSchema()
	c := mustCatalog(t, s)
	if got := c.Collections(); !slices.Equal(got, []string{"spells", "people"}) {
		t.Errorf("Collections = %q", got)
	}
	defs := c.Indexes()
	if len(defs) != 3 || defs[0].Name != "spells_by_element" || defs[2].Name != "people_by_city" {
		t.Fatalf("Indexes = %+v", defs)
	}
	// The Catalog does not share slices with its caller or with results.
	s.Indexes[0].Terms[0] = "changed"
	defs[0].Terms[0] = "changed too"
	d, ok := c.Index("spells_by_element")
	if !ok || d.Terms[0] != "element" {
		t.Errorf("Index = %+v, %v: the definition changed under the catalog", d, ok)
	}
	if _, ok := c.Index("nope"); ok {
		t.Error("Index(nope) found")
	}
}
