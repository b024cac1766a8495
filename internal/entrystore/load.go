package entrystore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/google/btree"
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/txlog"
)

// entryRules names the rules that turn documents into entries and the
// encoding of the keys, as this package implements them. Change it when
// either changes: entries saved under the old rules then no longer match
// any Catalog's Fingerprint, and are rebuilt from the documents.
const entryRules = "tidings entries 1"

// Fingerprint identifies the entries of a Catalog's indexes: a hash of
// the index definitions, in order, and of the rules that make their
// entries. Two Catalogs with the same Fingerprint give every document the
// same entries, so entries saved under one (SavedIndex) can be loaded
// under the other (Loader). Collections are left out: declaring one
// changes no index's entries. It is never 0.
func (c *Catalog) Fingerprint() uint64 {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(entryRules)
	b = binary.AppendUvarint(b, uint64(len(c.indexes)))
	for _, x := range c.indexes {
		str(x.def.Name)
		str(x.def.Collection)
		for _, paths := range [][]string{x.def.Terms, x.def.Values} {
			b = binary.AppendUvarint(b, uint64(len(paths)))
			for _, p := range paths {
				str(p)
			}
		}
	}
	return max(xxhash.Sum64(b), 1)
}

// SavedEntry is an entry as the Store keeps it: its key (the encoded
// terms, the encoded values and the ref ID, end to end) and where the
// values and the ref ID start in it.
type SavedEntry struct {
	Key           string
	Terms, Values int
}

// SavedIndex returns the number of entries of the i-th index (in Schema
// order) and an iterator over them in key order: what a checkpoint saves,
// to be given back to a Loader.
func (s *Snapshot) SavedIndex(i int) (int, iter.Seq[SavedEntry]) {
	t := s.trees[s.cat.indexes[i].ord]
	return t.Len(), func(yield func(SavedEntry) bool) {
		t.Ascend(func(it item) bool {
			return yield(SavedEntry{Key: it.key, Terms: int(it.terms), Values: int(it.values)})
		})
	}
}

// keyChunk is the size of the blocks a Loader copies keys into: a few
// hundred keys per allocation instead of one. A block is freed only once
// none of its keys is in a tree or a snapshot, so entries that writes
// remove may keep the memory of their neighbours' keys: at worst, the keys
// a restart loaded stay allocated until it restarts again.
const keyChunk = 16 << 10

// Loader builds a Store from saved state without computing a diff or
// sorting anything: the refs of the documents in ref order (AddDoc), for
// the collection sets, and each index's entries as SavedIndex gave them
// (StartIndex, AddEntry), made under a Catalog of the same Fingerprint.
// Each tree is filled in order on a goroutine of its own as soon as its
// items are in, while the caller goes on reading the next. Entries that
// come from outside are checked: in order, and made of well-formed
// encodings, as many as the index has terms and values.
//
// Concurrency: a Loader is not safe for concurrent use. Once one is made,
// Store or Discard must be called, to wait for its goroutines.
type Loader struct {
	cat   *Catalog
	items [][]item // per tree, until its fill starts
	trees []*btree.BTreeG[item]
	n     int
	fills sync.WaitGroup

	docs []item          // the collection sets' items, one set after another
	coll *collectionPlan // the collection of the last document
	from int             // where its items start in docs
	x    *compiledIndex  // the index being loaded
	left int             // its entries not yet added
	keys *strings.Builder
	next int // the next index to load
}

// NewLoader returns an empty Loader for the sets of c, for about docs
// documents.
func NewLoader(c *Catalog, docs int) *Loader {
	return &Loader{
		cat:   c,
		items: make([][]item, c.trees()),
		trees: make([]*btree.BTreeG[item], c.trees()),
		docs:  make([]item, 0, docs),
	}
}

// errLoad marks saved entries that do not fit.
var errLoad = errors.New("saved entries")

// AddDoc adds the document ref to its collection's set. Refs come in
// ascending order, collection then ID.
func (l *Loader) AddDoc(ref txlog.Ref) error {
	if l.next > 0 {
		return fmt.Errorf("%w: document %s after the entries", errLoad, ref)
	}
	if p := l.coll; p == nil || p.name != ref.Collection {
		q := l.cat.byCollection[ref.Collection]
		switch {
		case q == nil:
			return fmt.Errorf("%w: %q (document %s)", ErrCatalogMismatch, ref.Collection, ref)
		case p != nil && p.name > ref.Collection:
			return fmt.Errorf("%w: document %s out of order", errLoad, ref)
		}
		l.endCollection()
		l.coll = q
	} else if ref.ID <= l.docs[len(l.docs)-1].key {
		return fmt.Errorf("%w: document %s out of order", errLoad, ref)
	}
	if ref.ID == "" {
		return fmt.Errorf("%w: a document with no ID", errLoad)
	}
	l.docs = append(l.docs, item{key: ref.ID}) // the ID the document holds: no copy
	return nil
}

// endCollection ends the items of the last document's collection.
func (l *Loader) endCollection() {
	if l.coll != nil {
		l.items[l.coll.ord] = l.docs[l.from:len(l.docs):len(l.docs)]
	}
	l.from = len(l.docs)
}

// fill starts filling the tree ord with its items.
func (l *Loader) fill(ord int) {
	items := l.items[ord]
	l.items[ord] = nil
	l.n += len(items)
	l.fills.Go(func() { l.trees[ord] = fillTree(items) })
}

// StartIndex starts the entries of the i-th index, n of them. Indexes come
// in Schema order, after the documents.
func (l *Loader) StartIndex(i, n int) error {
	if i != l.next || i >= len(l.cat.indexes) || l.left != 0 {
		return fmt.Errorf("%w: index %d of %d out of turn", errLoad, i, len(l.cat.indexes))
	}
	l.endPart()
	l.next++
	l.x, l.left = l.cat.indexes[i], n
	l.items[l.x.ord] = make([]item, 0, n)
	return nil
}

// endPart starts filling the trees whose items are all in: the collection
// sets after the documents, an index after its entries.
func (l *Loader) endPart() {
	if l.next == 0 {
		l.endCollection()
		l.coll = nil
		for _, p := range l.cat.collections {
			l.fill(p.ord)
		}
		l.docs = nil
	} else {
		l.fill(l.x.ord)
	}
}

// AddEntry adds the next entry of the current index: its key, whose values
// start at terms and ref ID at values. Entries come in ascending key
// order. key is copied.
func (l *Loader) AddEntry(key []byte, terms, values int) error {
	x := l.x
	if l.left == 0 {
		return fmt.Errorf("%w: more entries than announced", errLoad)
	}
	if terms < 0 || terms > values || values >= len(key) {
		return fmt.Errorf("%w: an entry of index %q that is not one", errLoad, x.def.Name)
	}
	items := l.items[x.ord]
	if len(items) > 0 && items[len(items)-1].key >= string(key) {
		return fmt.Errorf("%w: entries of index %q out of order", errLoad, x.def.Name)
	}
	if l.keys == nil || l.keys.Cap()-l.keys.Len() < len(key) {
		l.keys = new(strings.Builder)
		l.keys.Grow(max(keyChunk, len(key)))
	}
	l.keys.Write(key)
	all := l.keys.String() // no copy: the keys so far, which stay as they are
	k := all[len(all)-len(key):]
	if canonical.TupleLen(k[:terms]) != x.nterms || canonical.TupleLen(k[terms:values]) != len(x.slots)-x.nterms {
		return fmt.Errorf("%w: an entry of index %q that is not one", errLoad, x.def.Name)
	}
	l.items[x.ord] = append(items, item{key: k, terms: uint32(terms), values: uint32(values)})
	l.left--
	return nil
}

// Store returns a Store at txn holding every entry added, once the trees
// are filled. Every index must have been loaded, in full.
func (l *Loader) Store(txn txlog.Txn) (*Store, error) {
	if l.next != len(l.cat.indexes) || l.left != 0 {
		l.Discard()
		return nil, fmt.Errorf("%w: %d of %d indexes loaded", errLoad, l.next, len(l.cat.indexes))
	}
	l.endPart()
	l.fills.Wait()
	s := NewStore(l.cat)
	s.txn, s.n = txn, l.n
	for i, t := range l.trees {
		if t != nil {
			s.trees[i] = t
		}
	}
	l.trees = nil
	return s, nil
}

// Discard waits for the trees being filled, and drops them.
func (l *Loader) Discard() {
	l.fills.Wait()
	l.trees, l.items, l.docs = nil, nil, nil
}

// fillTree returns a tree of items, which are in ascending order.
//
// Inserting an item walks the tree from the root, searching each node on
// the way: some 25 calls of the tree's less function per item in a tree of
// a million, which for keys sharing a long prefix is most of the cost.
// Here every item comes after those in the tree, so while filling, less
// knows the answer when one side is the item being inserted, recognised
// by its key's address: keys are never empty (they end with a ref ID),
// and no two keys of a tree are the same bytes, as they differ. The tree
// keeps this less function; once filled it compares keys as itemLess.
func fillTree(items []item) *btree.BTreeG[item] {
	var (
		filling = true
		next    *byte
	)
	t := btree.NewG(storeDegree, func(a, b item) bool {
		if filling {
			if unsafe.StringData(a.key) == next {
				return false
			}
			if unsafe.StringData(b.key) == next {
				return true
			}
		}
		return a.key < b.key
	})
	for _, it := range items {
		next = unsafe.StringData(it.key)
		t.ReplaceOrInsert(it)
	}
	filling = false // before the tree is shared: no reader sees it change
	return t
}
