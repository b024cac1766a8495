package entrystore

import (
	"errors"
	"testing"

	"github.com/tidings/tidings/index"
)

func TestSetKeys(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	one, err := c.MatchSet("spells_by_element", mustParse(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	oneFloat, _ := c.MatchSet("spells_by_element", mustParse(t, "1.0"))
	oneString, _ := c.MatchSet("spells_by_element", mustParse(t, `"1"`))
	null, _ := c.MatchSet("spells_by_element", mustParse(t, "null"))
	zero, _ := c.MatchSet("spells_by_element", index.Value{})
	all, _ := c.MatchSet("all_spells")
	coll, _ := c.CollectionSet("spells")
	if one != oneFloat || one.Hash() != oneFloat.Hash() {
		t.Error("Match(1) and Match(1.0) should be one set")
	}
	if one == oneString {
		t.Error(`Match(1) and Match("1") should differ`)
	}
	if null != zero {
		t.Error("the zero index.Value should match as null")
	}
	for _, k := range []SetKey{one, oneString, all, coll} {
		if k.IsZero() || k.Hash() == 0 {
			t.Errorf("%v: zero key or hash", k)
		}
	}
	checks := []struct {
		k         SetKey
		kind      SetKind
		name, str string
		terms     string
	}{
		{one, SetIndex, "spells_by_element", `Match(spells_by_element, 1)`, `[1]`},
		{oneString, SetIndex, "spells_by_element", `Match(spells_by_element, "1")`, `["1"]`},
		{all, SetIndex, "all_spells", `Match(all_spells)`, `[]`},
		{coll, SetCollection, "spells", `Collection(spells)`, `[]`},
		{SetKey{}, 0, "", `SetKey()`, `[]`},
	}
	for _, ck := range checks {
		if ck.k.Kind() != ck.kind || ck.k.Name() != ck.name || ck.k.String() != ck.str || ck.k.Terms().String() != ck.terms {
			t.Errorf("%v: kind %c name %q terms %v", ck.k, ck.k.Kind(), ck.k.Name(), ck.k.Terms())
		}
	}
	if _, err := c.MatchSet("nope"); !errors.Is(err, index.ErrUnknownIndex) {
		t.Errorf("MatchSet(nope) = %v", err)
	}
	if _, err := c.MatchSet("spells_by_element"); !errors.Is(err, index.ErrTermCount) {
		t.Errorf("MatchSet without its term = %v", err)
	}
	if _, err := c.MatchSet("all_spells", mustParse(t, "1")); !errors.Is(err, index.ErrTermCount) {
		t.Errorf("MatchSet(term-less, 1) = %v", err)
	}
	if _, err := c.CollectionSet("nope"); !errors.Is(err, index.ErrUnknownCollection) {
		t.Errorf("CollectionSet(nope) = %v", err)
	}
}

// TestSetMapCollision forces two different sets onto one hash: lookups
// must confirm by the full key and never return the other set's value.
func TestSetMapCollision(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	fire, _ := c.MatchSet("spells_by_element", mustParse(t, `"fire"`))
	water, _ := c.MatchSet("spells_by_element", mustParse(t, `"water"`))
	air, _ := c.MatchSet("spells_by_element", mustParse(t, `"air"`))
	fire.hash, water.hash, air.hash = 42, 42, 42 // a collision
	var m SetMap[string]
	m.Put(fire, "fire subscribers")
	if v, ok := m.Get(water); ok {
		t.Fatalf("Get(water) = %q: delivered to the wrong set", v)
	}
	m.Put(water, "water subscribers")
	m.Put(fire, "fire subscribers v2")
	if m.Len() != 2 {
		t.Errorf("Len = %d, want 2", m.Len())
	}
	if v, _ := m.Get(fire); v != "fire subscribers v2" {
		t.Errorf("Get(fire) = %q", v)
	}
	if v, _ := m.Get(water); v != "water subscribers" {
		t.Errorf("Get(water) = %q", v)
	}
	if m.Delete(air) {
		t.Error("Delete(air) removed another set's entry")
	}
	if !m.Delete(fire) || m.Len() != 1 {
		t.Error("Delete(fire) failed")
	}
	if _, ok := m.Get(fire); ok {
		t.Error("fire still there")
	}
	if v, ok := m.Get(water); !ok || v != "water subscribers" {
		t.Errorf("Get(water) after deleting fire = %q, %v", v, ok)
	}
	n := 0
	for k, v := range m.All() {
		if k != water || v != "water subscribers" {
			t.Errorf("All yields %v=%q", k, v)
		}
		n++
	}
	if n != 1 {
		t.Errorf("All yields %d keys", n)
	}
	if !m.Delete(water) || m.Len() != 0 || len(m.buckets) != 0 {
		t.Error("map not empty after deleting everything")
	}
}
