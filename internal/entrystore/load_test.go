package entrystore

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/txlog"
)

// treeItems returns every tree's items, in order.
func treeItems(v *view) [][]item {
	out := make([][]item, len(v.trees))
	for i, t := range v.trees {
		t.Ascend(func(it item) bool {
			out[i] = append(out[i], it)
			return true
		})
	}
	return out
}

// loadSaved loads what snap saves, with the documents refs, into a Store
// of c.
func loadSaved(c *Catalog, snap *Snapshot, refs []txlog.Ref) (*Store, error) {
	l := NewLoader(c, len(refs))
	for _, ref := range refs {
		if err := l.AddDoc(ref); err != nil {
			return nil, err
		}
	}
	for i := range c.Indexes() {
		n, entries := snap.SavedIndex(i)
		if err := l.StartIndex(i, n); err != nil {
			return nil, err
		}
		for e := range entries {
			if err := l.AddEntry([]byte(e.Key), e.Terms, e.Values); err != nil {
				return nil, err
			}
		}
	}
	return l.Store(snap.Txn())
}

// TestLoaderRoundTrip saves a store's entries and loads them back: every
// tree holds the same items, and the loaded store takes writes as the
// original does.
func TestLoaderRoundTrip(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	s := NewStore(c)
	var d Diff
	var refs []txlog.Ref
	for i := range 300 {
		ref := txlog.Ref{Collection: "spells", ID: fmt.Sprintf("%04d", i)}
		write(t, c, s, &d, txlog.Txn(i+1), ref, "",
			fmt.Sprintf(`{"element":[%q,"x"],"stats":{"level":%d},"name":"n%d"}`, []string{"fire", "water", "air"}[i%3], i%7, i))
		refs = append(refs, ref)
	}
	for i := range 50 {
		ref := txlog.Ref{Collection: "people", ID: fmt.Sprint(i)}
		write(t, c, s, &d, 400, ref, "", fmt.Sprintf(`{"address":{"city":"c%d"}}`, i%4))
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, func(a, b txlog.Ref) int {
		if a.Collection != b.Collection {
			return cmpString(a.Collection, b.Collection)
		}
		return cmpString(a.ID, b.ID)
	})
	snap := s.Snapshot()
	got, err := loadSaved(c, snap, refs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != s.Len() || got.Txn() != s.Txn() {
		t.Fatalf("loaded %d entries at txn %d, want %d at %d", got.Len(), got.Txn(), s.Len(), s.Txn())
	}
	want := treeItems(&s.view)
	for i, items := range treeItems(&got.view) {
		if !slices.Equal(items, want[i]) {
			t.Errorf("tree %d: %d items, want %d", i, len(items), len(want[i]))
		}
	}
	// Both take the same write.
	ref := txlog.Ref{Collection: "spells", ID: "0001"}
	write(t, c, s, &d, 500, ref, `{"element":["water","x"],"stats":{"level":1},"name":"n1"}`, `{"element":"earth"}`)
	if err := got.Apply(500, &d); err != nil {
		t.Fatal(err)
	}
	fire, _ := c.MatchSet("spells_by_element", mustParse(t, `"earth"`))
	if a, b := pageAll(t, s, fire, 10), pageAll(t, got, fire, 10); len(a) != 1 || !slices.Equal(refsOf(a), refsOf(b)) {
		t.Errorf("after a write: %v, want %v", b, a)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func refsOf(es []Entry) []string { return refs(es) }

// TestLoaderRefuses: entries out of order, malformed or of the wrong
// shape, documents of an unknown collection or out of order.
func TestLoaderRefuses(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	fire, _ := canonical.Parse([]byte(`"fire"`))
	one, _ := canonical.Parse([]byte(`1`))
	entry := func(key string, terms, values int) error {
		l := NewLoader(c, 0)
		defer l.Discard()
		if err := l.StartIndex(0, 2); err != nil {
			t.Fatal(err)
		}
		if err := l.AddEntry([]byte(fire+one+"a"), len(fire), len(fire+one)); err != nil {
			t.Fatal(err)
		}
		return l.AddEntry([]byte(key), terms, values)
	}
	for name, err := range map[string]error{
		"out of order":        entry(fire+one+"a", len(fire), len(fire+one)),
		"no ID":               entry(fire+one+"b", len(fire), len(fire+one+"b")),
		"two terms":           entry(fire+fire+one+"b", 2*len(fire), 2*len(fire)+len(one)),
		"no value":            entry(fire+"b", len(fire), len(fire)),
		"a broken term":       entry(fire[:3]+one+"b", 3, 3+len(one)),
		"values before terms": entry(fire+one+"b", len(fire)+1, len(fire)),
	} {
		if !errors.Is(err, errLoad) {
			t.Errorf("%s: %v", name, err)
		}
	}
	l := NewLoader(c, 1)
	if err := l.AddDoc(txlog.Ref{Collection: "wands", ID: "1"}); !errors.Is(err, ErrCatalogMismatch) {
		t.Errorf("a document of an unknown collection: %v", err)
	}
	l.AddDoc(txlog.Ref{Collection: "spells", ID: "2"})
	if err := l.AddDoc(txlog.Ref{Collection: "spells", ID: "1"}); !errors.Is(err, errLoad) {
		t.Errorf("documents out of order: %v", err)
	}
	if err := l.AddDoc(txlog.Ref{Collection: "people", ID: "3"}); !errors.Is(err, errLoad) {
		t.Errorf("a collection after a later one: %v", err)
	}
	if err := l.StartIndex(1, 0); !errors.Is(err, errLoad) {
		t.Errorf("index 1 first: %v", err)
	}
	if _, err := l.Store(1); !errors.Is(err, errLoad) {
		t.Errorf("Store before the indexes are loaded: %v", err)
	}
	l = NewLoader(c, 1)
	l.StartIndex(0, 0)
	if err := l.AddDoc(txlog.Ref{Collection: "spells", ID: "3"}); !errors.Is(err, errLoad) {
		t.Errorf("a document after the entries: %v", err)
	}
	l.Discard()
}

// TestFingerprint: the same index definitions give the same fingerprint,
// whatever the collections; any change to an index another.
func TestFingerprint(t *testing.T) {
	base := spellsSchema()
	fp := mustCatalog(t, base).Fingerprint()
	more := spellsSchema()
	more.Collections = append(more.Collections, "wands")
	if got := mustCatalog(t, more).Fingerprint(); got != fp {
		t.Errorf("a collection added changed the fingerprint")
	}
	changes := []func(*index.Schema){
		func(s *index.Schema) { s.Indexes = s.Indexes[:2] },
		func(s *index.Schema) { s.Indexes[0], s.Indexes[1] = s.Indexes[1], s.Indexes[0] },
		func(s *index.Schema) { s.Indexes[0].Name = "x" },
		func(s *index.Schema) { s.Indexes[0].Values = nil },
		func(s *index.Schema) { s.Indexes[0].Terms = []string{"stats.level"} },
		func(s *index.Schema) {
			s.Indexes[0].Terms, s.Indexes[0].Values = nil, []string{"element", "stats.level"}
		},
	}
	for i, change := range changes {
		s := spellsSchema()
		change(&s)
		if got := mustCatalog(t, s).Fingerprint(); got == fp {
			t.Errorf("change %d kept the fingerprint", i)
		}
	}
}

// FuzzLoader feeds saved entries of any bytes to a Loader, for the index
// spells_by_element (one term, one value). It never panics, and whatever
// it accepts pages back, terms and values decoded, without a panic: the
// checks stand between a checkpoint's bytes and decoding that trusts its
// input.
func FuzzLoader(f *testing.F) {
	c := mustCatalog(f, spellsSchema())
	s := NewStore(c)
	var d Diff
	for i, doc := range []string{`{"element":"fire","stats":{"level":3}}`, `{"element":["a",[1,{"x":null}]],"stats":{"level":-2.5e-9}}`} {
		write(f, c, s, &d, txlog.Txn(i+1), txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}, "", doc)
	}
	_, entries := s.Snapshot().SavedIndex(0)
	var seed []SavedEntry
	for e := range entries {
		seed = append(seed, e)
	}
	f.Add([]byte(seed[0].Key), seed[0].Terms, seed[0].Values, []byte(seed[1].Key), seed[1].Terms, seed[1].Values)
	f.Add([]byte(seed[1].Key), seed[1].Terms, seed[1].Values, []byte(seed[1].Key[:len(seed[1].Key)-1]+"9"), seed[1].Terms, seed[1].Values)
	f.Fuzz(func(t *testing.T, k1 []byte, t1, v1 int, k2 []byte, t2, v2 int) {
		l := NewLoader(c, 0)
		l.StartIndex(0, 2)
		if l.AddEntry(k1, t1, v1) != nil || l.AddEntry(k2, t2, v2) != nil {
			l.Discard()
			return
		}
		for i := 1; i < len(c.indexes); i++ {
			l.StartIndex(i, 0)
		}
		st, err := l.Store(1)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		st.trees[c.indexes[0].ord].Ascend(func(it item) bool {
			if terms := canonical.TupleLen(it.key[:it.terms]); terms != 1 {
				t.Fatalf("an entry with %d terms", terms)
			}
			set, err := c.MatchTerms("spells_by_element", canonical.Tuple(it.key[:it.terms]))
			if err != nil {
				t.Fatal(err)
			}
			page, _, err := st.Page(nil, set, Position{}, 10)
			if err != nil || len(page) == 0 {
				t.Fatalf("Page: %v, %d entries", err, len(page))
			}
			for _, e := range page {
				_ = e.Terms.String() + e.Values.String()
				n++
			}
			return true
		})
		if n < 2 {
			t.Fatalf("paged %d entries, loaded 2", n)
		}
	})
}
