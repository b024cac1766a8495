// Package btreefill fills a github.com/google/btree tree with items that
// come in ascending order, as a restart loads them from a checkpoint, at a
// fraction of the cost of inserting them with the tree's own order.
//
// Inserting an item walks the tree from the root, searching each node on
// the way: some 25 comparisons in a tree of a million items, each a call
// of the tree's less function, which for string keys sharing a long prefix
// is most of the insert's cost. When every item comes after all those in
// the tree, each of these comparisons has a known answer: the new item is
// the greater. An Order gives it, during a Fill, by recognising the new
// item, without comparing keys.
package btreefill

import (
	"iter"

	"github.com/google/btree"
)

// Order is the order of one tree: its less function, which the tree must
// be made with (NewG(degree, o.Less)), and the state of a Fill.
//
// Concurrency: Less may be called concurrently by any number of
// goroutines, as the tree's readers do, but not during a Fill: fill a tree
// before anything else uses it.
type Order[T any] struct {
	less    btree.LessFunc[T]
	same    func(a, b T) bool
	filling bool
	next    T
}

// NewOrder returns an Order comparing with less. same reports whether a
// and b are one item (not merely equal ones: the same pointer, say);
// items that are the same must be equal.
func NewOrder[T any](less btree.LessFunc[T], same func(a, b T) bool) *Order[T] {
	return &Order[T]{less: less, same: same}
}

// Less is the tree's less function.
func (o *Order[T]) Less(a, b T) bool {
	if o.filling {
		// The tree compares the item it inserts with those it holds,
		// which are all less.
		if o.same(a, o.next) {
			return false
		}
		if o.same(b, o.next) {
			return true
		}
	}
	return o.less(a, b)
}

// Fill inserts items into t, which was made with o.Less. The items must
// be in strictly ascending order, each above every item t holds: the
// caller checks that, or the tree is corrupt.
func Fill[T any](t *btree.BTreeG[T], o *Order[T], items iter.Seq[T]) {
	o.filling = true
	for it := range items {
		o.next = it
		t.ReplaceOrInsert(it)
	}
	var zero T
	o.filling, o.next = false, zero
}
