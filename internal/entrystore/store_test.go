package entrystore

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// write diffs one write and applies it to s.
func write(t testing.TB, c *Catalog, s *Store, d *Diff, txn txlog.Txn, ref txlog.Ref, before, after string) {
	t.Helper()
	var b, a []byte
	if before != "" {
		b = []byte(before)
	}
	if after != "" {
		a = []byte(after)
	}
	if err := c.Diff(d, ref, b, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(txn, d); err != nil {
		t.Fatal(err)
	}
}

func pageAll(t testing.TB, p pager, set SetKey, n int) []Entry {
	t.Helper()
	all, err := listSet(p, set, n)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func refs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Ref.ID + ":" + e.Values.String()
	}
	return out
}

func TestStorePaging(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	s := NewStore(c)
	var d Diff
	var want []string
	for i := range 50 {
		id := fmt.Sprintf("%03d", i)
		level := 50 - i // values order is the reverse of id order
		el := "fire"
		if i%5 == 0 {
			el = "water"
		} else {
			want = append(want, fmt.Sprintf("%s:[%d]", id, level))
		}
		write(t, c, s, &d, txlog.Txn(i+1), txlog.Ref{Collection: "spells", ID: id}, "",
			fmt.Sprintf(`{"element":%q,"stats":{"level":%d}}`, el, level))
	}
	slices.Reverse(want)
	fire, _ := c.MatchSet("spells_by_element", mustParse(t, `"fire"`))
	for _, n := range []int{1, 3, 7, 40, 100} {
		if got := refs(pageAll(t, s, fire, n)); !slices.Equal(got, want) {
			t.Errorf("pages of %d:\n got %v\nwant %v", n, got, want)
		}
	}
	coll, _ := c.CollectionSet("spells")
	if got := pageAll(t, s, coll, 8); len(got) != 50 || got[0].Ref.ID != "000" || got[49].Ref.ID != "049" {
		t.Errorf("collection set: %d members", len(got))
	}
	none, _ := c.MatchSet("spells_by_element", mustParse(t, `"earth"`))
	if page, more, err := s.Page(nil, none, Position{}, 10); len(page) != 0 || more || err != nil {
		t.Errorf("empty set: %v %v %v", page, more, err)
	}
	if s.Len() != 50+50+50 || s.Txn() != 50 {
		t.Errorf("Len = %d, Txn = %d", s.Len(), s.Txn())
	}
	if _, _, err := s.Page(nil, SetKey{}, Position{}, 1); !errors.Is(err, index.ErrUnknownIndex) {
		t.Errorf("Page(zero key) = %v", err)
	}
	var p Position
	if err := p.UnmarshalText([]byte("!!")); !errors.Is(err, ErrInvalidPosition) {
		t.Errorf("UnmarshalText(!!) = %v", err)
	}
	if err := p.UnmarshalText([]byte("AA")); !errors.Is(err, ErrInvalidPosition) {
		t.Errorf("UnmarshalText(AA) = %v", err)
	}
}

func TestStoreApplyIsAtomic(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	s := NewStore(c)
	var d Diff
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	write(t, c, s, &d, 1, ref, "", `{"element":"fire","name":"a"}`)

	// Applying the create again: the collection entry is there already.
	if err := s.Apply(2, &d); !errors.Is(err, ErrInconsistent) {
		t.Errorf("second create: %v, want ErrInconsistent", err)
	}
	// A diff from a wrong before image whose first changes fit the store
	// but a later one does not: nothing may be applied.
	if err := c.Diff(&d, ref, []byte(`{"element":"fire","name":"zzz"}`), []byte(`{"element":"earth","name":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(2, &d); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("wrong before image: %v, want ErrInconsistent", err)
	}
	fire, _ := c.MatchSet("spells_by_element", mustParse(t, `"fire"`))
	earth, _ := c.MatchSet("spells_by_element", mustParse(t, `"earth"`))
	if len(pageAll(t, s, fire, 10)) != 1 || len(pageAll(t, s, earth, 10)) != 0 || s.Len() != 3 || s.Txn() != 1 {
		t.Error("a failed Apply changed the store")
	}

	if err := c.Diff(&d, ref, []byte(`{"element":"fire","name":"a"}`), []byte(`{"element":"earth","name":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(0, &d); !errors.Is(err, ErrTxnOrder) {
		t.Errorf("txn 0 after 1: %v, want ErrTxnOrder", err)
	}
	other := NewStore(mustCatalog(t, spellsSchema()))
	if err := other.Apply(1, &d); !errors.Is(err, ErrCatalogMismatch) {
		t.Errorf("diff of another catalog: %v, want ErrCatalogMismatch", err)
	}
	if err := s.Apply(1, &d); err != nil { // same txn again: a second write of txn 1
		t.Errorf("same txn: %v", err)
	}
}

// TestSnapshotWhileWriting pages through snapshots on several goroutines
// while the store goes on taking writes: each snapshot must keep showing
// the members at its txn (and the race detector must stay quiet).
func TestSnapshotWhileWriting(t *testing.T) {
	c := mustCatalog(t, spellsSchema())
	s := NewStore(c)
	var d Diff
	fire, _ := c.MatchSet("spells_by_element", mustParse(t, `"fire"`))
	doc := func(i int) string { return fmt.Sprintf(`{"element":"fire","stats":{"level":%d}}`, i) }
	for i := range 200 {
		write(t, c, s, &d, txlog.Txn(i+1), txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}, "", doc(i))
	}
	snap := s.Snapshot()
	want := refs(pageAll(t, snap, fire, 1000))
	if len(want) != 200 || snap.Txn() != 200 {
		t.Fatalf("snapshot: %d members at txn %d", len(want), snap.Txn())
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for range 20 {
				got, err := listSet(snap, fire, 17)
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(refs(got), want) {
					errs <- fmt.Errorf("snapshot changed: %d members, want %d", len(got), len(want))
					return
				}
			}
		})
	}
	// Meanwhile: delete half, move the rest, add new ones.
	for i := range 200 {
		ref := txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}
		txn := txlog.Txn(1000 + i)
		if i%2 == 0 {
			write(t, c, s, &d, txn, ref, doc(i), "")
		} else {
			write(t, c, s, &d, txn, ref, doc(i), doc(i+1000))
		}
		write(t, c, s, &d, txn, txlog.Ref{Collection: "spells", ID: fmt.Sprint("new", i)}, "", doc(i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(pageAll(t, s, fire, 1000)); got != 300 {
		t.Errorf("live store: %d members, want 300", got)
	}
}
