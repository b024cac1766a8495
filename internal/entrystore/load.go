package entrystore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/google/btree"
	"github.com/tidings/tidings/internal/btreefill"
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

// keyChunk is the size of the blocks a Loader copies keys into. A block is
// freed once none of its keys is in a tree, so a few hundred keys per
// block save that many allocations without holding much memory after the
// entries are removed.
const keyChunk = 16 << 10

// Loader builds a Store from saved state without computing a diff or
// sorting anything: the refs of the documents in ref order (AddDoc), for
// the collection sets, and each index's entries as SavedIndex gave them
// (StartIndex, AddEntry), made under a Catalog of the same Fingerprint.
// The trees are filled in order, each on a goroutine of its own. Entries
// that come from outside are checked: in order, and made of well-formed
// encodings, as many as the index has terms and values.
//
// Concurrency: a Loader is not safe for concurrent use.
type Loader struct {
	cat   *Catalog
	items [][]item // per tree
	coll  *collectionPlan
	x     *compiledIndex // the index being loaded
	left  int            // its entries not yet added
	keys  *strings.Builder
	next  int // the next index to load
}

// NewLoader returns an empty Loader for the sets of c.
func NewLoader(c *Catalog) *Loader {
	return &Loader{cat: c, items: make([][]item, c.trees())}
}

// errLoad marks saved entries that do not fit.
var errLoad = errors.New("saved entries")

// AddDoc adds the document ref to its collection's set. Refs come in
// ascending order, collection then ID.
func (l *Loader) AddDoc(ref txlog.Ref) error {
	p := l.coll
	if p == nil || p.name != ref.Collection {
		if p = l.cat.byCollection[ref.Collection]; p == nil {
			return fmt.Errorf("%w: %q (document %s)", ErrCatalogMismatch, ref.Collection, ref)
		}
		l.coll = p
	}
	items := l.items[p.ord]
	if ref.ID == "" || len(items) > 0 && items[len(items)-1].key >= ref.ID {
		return fmt.Errorf("%w: document %s out of order", errLoad, ref)
	}
	l.items[p.ord] = append(items, item{key: ref.ID}) // the ID the document holds: no copy
	return nil
}

// StartIndex starts the entries of the i-th index, n of them. Indexes come
// in Schema order, after the documents.
func (l *Loader) StartIndex(i, n int) error {
	if i != l.next || i >= len(l.cat.indexes) || l.left != 0 {
		return fmt.Errorf("%w: index %d of %d out of turn", errLoad, i, len(l.cat.indexes))
	}
	l.next++
	l.x, l.left = l.cat.indexes[i], n
	l.items[l.x.ord] = make([]item, 0, n)
	return nil
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

// Store returns a Store at txn holding every entry added. Every index must
// have been loaded, in full.
func (l *Loader) Store(txn txlog.Txn) (*Store, error) {
	if l.next != len(l.cat.indexes) || l.left != 0 {
		return nil, fmt.Errorf("%w: %d of %d indexes loaded", errLoad, l.next, len(l.cat.indexes))
	}
	s := NewStore(l.cat)
	s.txn = txn
	var wg sync.WaitGroup
	for i, items := range l.items {
		s.n += len(items)
		wg.Go(func() { s.trees[i] = fillTree(items) })
	}
	wg.Wait()
	l.items = nil
	return s, nil
}

// fillTree returns a tree of items, which are in ascending order.
func fillTree(items []item) *btree.BTreeG[item] {
	o := btreefill.NewOrder(itemLess, sameItem)
	t := btree.NewG(storeDegree, o.Less)
	btreefill.Fill(t, o, slices.Values(items))
	return t
}

// sameItem reports whether a and b are one item: their keys are the same
// bytes in memory. Keys are never empty (they end with a ref ID), and two
// keys of a tree never are the same bytes, as they differ.
func sameItem(a, b item) bool {
	return len(a.key) == len(b.key) && unsafe.StringData(a.key) == unsafe.StringData(b.key)
}
