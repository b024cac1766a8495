package entrystore

import (
	"errors"
	"slices"
	"testing"

	"github.com/tidings/tidings/index"
)

func spellsSchema() index.Schema {
	return index.Schema{
		Collections: []string{"spells", "people"},
		Indexes: []index.Definition{
			{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}, Values: []string{"stats.level"}},
			{Name: "all_spells", Collection: "spells", Values: []string{"name"}},
			{Name: "people_by_city", Collection: "people", Terms: []string{"address.city"}},
		},
	}
}

func mustParse(t testing.TB, text string) index.Value {
	t.Helper()
	v, err := index.ParseValue([]byte(text))
	if err != nil {
		t.Fatalf("index.ParseValue(%s): %v", text, err)
	}
	return v
}

func mustCatalog(t testing.TB, s index.Schema) *Catalog {
	t.Helper()
	c, err := NewCatalog(s)
	if err != nil {
		t.Fatalf("NewCatalog: %v", err)
	}
	return c
}

func TestNewCatalogErrors(t *testing.T) {
	idx := func(name, coll string, terms ...string) index.Definition {
		return index.Definition{Name: name, Collection: coll, Terms: terms}
	}
	cases := []struct {
		name string
		s    index.Schema
		want error
	}{
		{"empty path", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("i", "c", "")}}, index.ErrInvalidPath},
		{"doubled dot", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("i", "c", "a..b")}}, index.ErrInvalidPath},
		{"leading dot", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("i", "c", ".a")}}, index.ErrInvalidPath},
		{"trailing dot", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("i", "c", "a.")}}, index.ErrInvalidPath},
		{"bad UTF-8 path", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("i", "c", "a\xff")}}, index.ErrInvalidPath},
		{"bad value path", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{{Name: "i", Collection: "c", Values: []string{"x", "."}}}}, index.ErrInvalidPath},
		{"duplicate index", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("i", "c", "a"), idx("i", "c", "b")}}, index.ErrDuplicateIndex},
		{"unknown collection", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("i", "d", "a")}}, index.ErrUnknownCollection},
		{"no collections declared", index.Schema{Indexes: []index.Definition{idx("i", "c", "a")}}, index.ErrUnknownCollection},
		{"duplicate collection", index.Schema{Collections: []string{"c", "c"}}, index.ErrDuplicateCollection},
		{"empty collection name", index.Schema{Collections: []string{""}}, index.ErrInvalidName},
		{"control in collection name", index.Schema{Collections: []string{"a\x00b"}}, index.ErrInvalidName},
		{"empty index name", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("", "c", "a")}}, index.ErrInvalidName},
		{"bad UTF-8 index name", index.Schema{Collections: []string{"c"}, Indexes: []index.Definition{idx("\xff", "c", "a")}}, index.ErrInvalidName},
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
