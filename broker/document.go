package broker

import (
	"encoding/json"

	"github.com/google/btree"
	"github.com/tidings/tidings/txlog"
)

// Document is one version of a document: its ref, the txn that wrote it,
// and its data, a JSON object.
type Document struct {
	Ref  txlog.Ref
	TS   txlog.Txn
	Data json.RawMessage
}

// version is a document's current version in the broker's state. It is
// immutable: a write replaces it, so that snapshots can share it.
type version struct {
	ref  txlog.Ref
	ts   txlog.Txn
	data []byte
}

func versionLess(a, b *version) bool {
	if a.ref.Collection != b.ref.Collection {
		return a.ref.Collection < b.ref.Collection
	}
	return a.ref.ID < b.ref.ID
}

// docTree holds the current version of every document, ordered by ref. A
// B-tree rather than a map because Clone gives a snapshot at one txn in
// constant time, which set snapshots need for their members' ts and data.
type docTree = btree.BTreeG[*version]

func newDocTree() *docTree { return btree.NewG(32, versionLess) }

// fillDocTree returns a tree of vs, which are in ascending ref order. As
// entrystore's fill of its trees from a checkpoint: while filling, less
// knows the answer when one side is the version being inserted, the
// greater, and does not compare refs.
func fillDocTree(vs []*version) *docTree {
	var (
		filling = true
		next    *version
	)
	t := btree.NewG(32, func(a, b *version) bool {
		if filling {
			if a == next {
				return false
			}
			if b == next {
				return true
			}
		}
		return versionLess(a, b)
	})
	for _, next = range vs {
		t.ReplaceOrInsert(next)
	}
	filling = false // before the tree is shared: no reader sees it change
	return t
}

func getVersion(t *docTree, ref txlog.Ref) *version {
	v, _ := t.Get(&version{ref: ref})
	return v
}

func (v *version) document() Document {
	return Document{Ref: v.ref, TS: v.ts, Data: json.RawMessage(v.data)}
}
