package btreefill

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/btree"
)

// TestFill fills trees of many sizes and degrees, some holding items
// already, and checks that they hold every item in order, and that they
// work as any tree afterwards.
func TestFill(t *testing.T) {
	less := func(a, b *string) bool { return *a < *b }
	same := func(a, b *string) bool { return a == b }
	for _, degree := range []int{2, 3, 32} {
		for _, n := range []int{0, 1, 2, 5, 64, 1000, 10_000} {
			o := NewOrder(less, same)
			tr := btree.NewG(degree, o.Less)
			var want []string
			items := make([]*string, n)
			for i := range items {
				s := fmt.Sprintf("k%06d", i)
				items[i], want = &s, append(want, s)
			}
			split := n / 3
			for _, it := range items[:split] { // some inserted the usual way
				tr.ReplaceOrInsert(it)
			}
			Fill(tr, o, slices.Values(items[split:]))
			var got []string
			tr.Ascend(func(it *string) bool {
				got = append(got, *it)
				return true
			})
			if !slices.Equal(got, want) || tr.Len() != n {
				t.Fatalf("degree %d, %d items: the tree holds %d, in order: %v", degree, n, tr.Len(), slices.Equal(got, want))
			}
			// Afterwards, the tree's own order.
			probe := "k000000x"
			if n > 1 {
				tr.ReplaceOrInsert(&probe)
				if v, ok := tr.Get(&probe); !ok || v != &probe || tr.Len() != n+1 {
					t.Fatalf("degree %d, %d items: insert after the fill", degree, n)
				}
				if _, ok := tr.Get(items[n/2]); !ok {
					t.Fatalf("degree %d, %d items: %s not found", degree, n, *items[n/2])
				}
				dup := *items[n-1]
				if old, ok := tr.ReplaceOrInsert(&dup); !ok || old != items[n-1] {
					t.Fatalf("degree %d, %d items: an equal item did not replace the last", degree, n)
				}
			}
		}
	}
}

// BenchmarkFill compares a fill with inserts in ascending order using the
// tree's own order, for a million keys sharing a long prefix.
func BenchmarkFill(b *testing.B) {
	items := make([]*string, 1_000_000)
	for i := range items {
		s := fmt.Sprintf("a long prefix shared by all keys %08d", i)
		items[i] = &s
	}
	less := func(a, b *string) bool { return *a < *b }
	b.Run("ReplaceOrInsert", func(b *testing.B) {
		for b.Loop() {
			tr := btree.NewG(32, less)
			for _, it := range items {
				tr.ReplaceOrInsert(it)
			}
		}
	})
	b.Run("Fill", func(b *testing.B) {
		for b.Loop() {
			o := NewOrder(less, func(a, b *string) bool { return a == b })
			Fill(btree.NewG(32, o.Less), o, slices.Values(items))
		}
	})
}
