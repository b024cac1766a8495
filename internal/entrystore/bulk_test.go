package entrystore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// dumpTrees lists every tree's items, for comparing two stores.
func dumpTrees(s *Store) [][]item {
	out := make([][]item, len(s.trees))
	for i, t := range s.trees {
		t.Ascend(func(it item) bool {
			out[i] = append(out[i], it)
			return true
		})
	}
	return out
}

// A Bulk, fed from two halves and merged, builds the same Store as
// applying the documents' creations one by one.
func TestBulkEqualsApply(t *testing.T) {
	c, err := NewCatalog(index.Schema{
		Collections: []string{"spells", "wands"},
		Indexes: []index.Definition{
			{Name: "by_element", Collection: "spells", Terms: []string{"element"}, Values: []string{"level", "name"}},
			{Name: "by_tag", Collection: "spells", Terms: []string{"tags"}},
			{Name: "wands_by_wood", Collection: "wands", Terms: []string{"wood"}},
			{Name: "all_by_level", Collection: "spells", Values: []string{"level"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	applied := NewStore(c)
	halves := [2]*Bulk{NewBulk(c), NewBulk(c)}
	var d Diff
	const txn = txlog.Txn(42)
	for i := range 3000 {
		coll := []string{"spells", "wands"}[r.IntN(2)]
		data := fmt.Sprintf(`{"element":%q,"level":%d,"name":"n%d","tags":["a%d","b%d"],"wood":%q}`,
			[]string{"fire", "water"}[r.IntN(2)], r.IntN(10), i, r.IntN(3), r.IntN(3), []string{"oak", "yew"}[r.IntN(2)])
		if r.IntN(7) == 0 {
			data = `{"name":"missing fields"}`
		}
		ref := txlog.Ref{Collection: coll, ID: fmt.Sprint(i)}
		if err := c.Diff(&d, ref, nil, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := applied.Apply(txn, &d); err != nil {
			t.Fatal(err)
		}
		if err := halves[i%2].Add(&d); err != nil {
			t.Fatal(err)
		}
	}
	if err := halves[0].Merge(halves[1]); err != nil {
		t.Fatal(err)
	}
	built, err := halves[0].Store(txn)
	if err != nil {
		t.Fatal(err)
	}
	if built.Len() != applied.Len() || built.Txn() != txn {
		t.Fatalf("bulk: %d entries at %d; applied: %d", built.Len(), built.Txn(), applied.Len())
	}
	want, got := dumpTrees(applied), dumpTrees(built)
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("tree %d: %d entries, want %d", i, len(got[i]), len(want[i]))
		}
		for k := range want[i] {
			if got[i][k] != want[i][k] {
				t.Fatalf("tree %d entry %d: %+v, want %+v", i, k, got[i][k], want[i][k])
			}
		}
	}
	// The built store goes on taking writes like any other.
	if err := c.Diff(&d, txlog.Ref{Collection: "spells", ID: "0"}, nil, []byte(`{"element":"air"}`)); err != nil {
		t.Fatal(err)
	}
	if err := built.Apply(txn+1, &d); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("creating spells/0 again in the built store: %v", err)
	}
}

// An entry added twice, a remove, or a diff of another catalog is refused.
func TestBulkRefuses(t *testing.T) {
	c, _ := NewCatalog(index.Schema{Collections: []string{"spells"}})
	other, _ := NewCatalog(index.Schema{Collections: []string{"spells"}})
	var d Diff
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	b := NewBulk(c)
	c.Diff(&d, ref, nil, []byte(`{}`))
	b.Add(&d)
	b.Add(&d)
	if _, err := b.Store(1); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a duplicate entry: %v", err)
	}
	c.Diff(&d, ref, []byte(`{}`), nil)
	if err := NewBulk(c).Add(&d); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a remove: %v", err)
	}
	other.Diff(&d, ref, nil, []byte(`{}`))
	if err := NewBulk(c).Add(&d); !errors.Is(err, ErrCatalogMismatch) {
		t.Fatalf("another catalog's diff: %v", err)
	}
}
