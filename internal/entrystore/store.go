package entrystore

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/google/btree"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/txlog"
)

// Store holds every set's members, ordered: one B-tree
// (github.com/google/btree) per collection set and per index, each entry
// ordered by (terms, values, ref ID). It is kept up to date by applying
// each committed write's Diff, and lists a set's members in order, a page
// at a time.
//
// Concurrency: a Store is not safe for concurrent use. The caller
// serialises Apply, Page on the Store itself, and Snapshot (in the broker:
// under its commit lock). Snapshot is how to read while writes continue: it
// returns, in time independent of the Store's size, an immutable copy of
// every set at the Store's current txn, which any number of goroutines may
// page through without a lock while the Store goes on taking writes. The
// copy shares the Store's tree nodes copy-on-write (btree Clone): a write
// after a Snapshot copies the nodes it changes, so a live Snapshot costs
// memory in proportion to what has changed since it was taken, and costs
// nothing once it is dropped.
type Store struct {
	view
	n int
}

// Snapshot is an immutable copy of a Store's sets at one txn. It is safe
// for concurrent use by any number of goroutines, with no lock, while the
// Store it came from goes on taking writes.
type Snapshot struct{ view }

// view is what Store and Snapshot share: the trees, read-only here.
type view struct {
	cat   *Catalog
	trees []*btree.BTreeG[item]
	txn   txlog.Txn
}

// item is one entry in a tree: terms are key[:terms], values
// key[terms:values], the ref ID key[values:]. Because encoded tuples are
// prefix-free, ordering keys as strings orders entries by (terms, values,
// ref ID).
type item struct {
	key           string
	terms, values uint32
}

func itemLess(a, b item) bool { return a.key < b.key }

// storeDegree is the B-tree degree: nodes hold up to 2×32-1 entries.
const storeDegree = 32

// NewStore returns an empty Store for the sets of c.
func NewStore(c *Catalog) *Store {
	s := &Store{view: view{cat: c, trees: make([]*btree.BTreeG[item], c.trees())}}
	for i := range s.trees {
		s.trees[i] = btree.NewG(storeDegree, itemLess)
	}
	return s
}

// Apply applies the membership diff of one write committed at txn. It
// either applies every Change or, when an error is returned, none. txn
// must not be lower than a txn applied before; all writes of one
// transaction are applied with the same txn. Errors wrap
// ErrCatalogMismatch, ErrTxnOrder or ErrInconsistent.
func (s *Store) Apply(txn txlog.Txn, d *Diff) error {
	if len(d.changes) > 0 && d.cat != s.cat {
		return ErrCatalogMismatch
	}
	if txn < s.txn {
		return fmt.Errorf("%w: %d after %d", ErrTxnOrder, txn, s.txn)
	}
	for _, c := range d.changes {
		if has := s.trees[c.ord].Has(item{key: c.skey}); has != (c.Action == Remove) {
			return fmt.Errorf("%w: %s %s in %s: the store has it: %t",
				ErrInconsistent, c.Action, d.ref, c.Set, has)
		}
	}
	for _, c := range d.changes {
		if c.Action == Remove {
			s.trees[c.ord].Delete(item{key: c.skey})
			s.n--
			continue
		}
		terms := len(c.Entry.Terms)
		s.trees[c.ord].ReplaceOrInsert(item{
			key:    strings.Clone(c.skey), // not the Diff's arena: keep only this entry alive
			terms:  uint32(terms),
			values: uint32(terms + len(c.Entry.Values)),
		})
		s.n++
	}
	s.txn = txn
	return nil
}

// Txn returns the txn of the last write applied (0 before any).
func (s *Store) Txn() txlog.Txn { return s.txn }

// Len returns the number of entries in all sets together.
func (s *Store) Len() int { return s.n }

// Snapshot returns an immutable copy of every set as of now (Txn). It
// must be called where Apply could be (under the caller's lock); the
// Snapshot is then read without one. Take it between transactions, so
// that it is the state at exactly one txn.
func (s *Store) Snapshot() *Snapshot {
	v := view{cat: s.cat, trees: make([]*btree.BTreeG[item], len(s.trees)), txn: s.txn}
	for i, t := range s.trees {
		v.trees[i] = t.Clone()
	}
	return &Snapshot{v}
}

// Page appends to dst the members of set in order, starting after
// position (the zero Position: from the first), at most n of them; more
// reports whether members follow the last one returned. Pass the last
// entry's Position to get the next page. The entries' strings belong to
// the Store and stay valid. A SetKey names its set by collection or index
// name, so a key made by another Catalog names this Store's set of that
// name. Errors wrap index.ErrUnknownCollection, index.ErrUnknownIndex, or
// ErrCatalogMismatch (a key whose terms do not fit the index).
//
// Page reads the live Store: call it under the caller's lock. To page
// while writes continue, use a Snapshot.
func (s *Store) Page(dst []Entry, set SetKey, after Position, n int) (page []Entry, more bool, err error) {
	return s.page(dst, set, after, n)
}

// Txn returns the txn the Snapshot shows the sets at.
func (s *Snapshot) Txn() txlog.Txn { return s.txn }

// Page is Store.Page on the Snapshot. It is safe for concurrent use.
func (s *Snapshot) Page(dst []Entry, set SetKey, after Position, n int) (page []Entry, more bool, err error) {
	return s.page(dst, set, after, n)
}

// tree returns the tree holding set, the collection of its refs, and the
// key prefix (the encoded terms) its members share.
func (v *view) tree(set SetKey) (*btree.BTreeG[item], string, string, error) {
	name, terms := set.split()
	switch set.Kind() {
	case SetCollection:
		if p := v.cat.byCollection[name]; p != nil {
			return v.trees[p.ord], name, "", nil
		}
		return nil, "", "", fmt.Errorf("%w: %s", index.ErrUnknownCollection, set)
	case SetIndex:
		x := v.cat.byIndex[name]
		if x == nil {
			return nil, "", "", fmt.Errorf("%w: %s", index.ErrUnknownIndex, set)
		}
		if x.nterms > 0 && terms == "" || x.nterms == 0 && terms != "" {
			return nil, "", "", fmt.Errorf("%w: %s does not fit this store's index %q", ErrCatalogMismatch, set, name)
		}
		return v.trees[x.ord], x.def.Collection, terms, nil
	}
	return nil, "", "", fmt.Errorf("%w: the zero SetKey", index.ErrUnknownIndex)
}

func (v *view) page(dst []Entry, set SetKey, after Position, n int) ([]Entry, bool, error) {
	t, coll, prefix, err := v.tree(set)
	if err != nil {
		return dst, false, err
	}
	pivot := prefix
	if !after.IsZero() {
		pivot += after.enc[1:]
	}
	more := false
	t.AscendGreaterOrEqual(item{key: pivot}, func(it item) bool {
		if !strings.HasPrefix(it.key, prefix) {
			return false
		}
		if it.key == pivot && !after.IsZero() {
			return true // after is exclusive
		}
		if n <= 0 {
			more = true
			return false
		}
		n--
		dst = append(dst, Entry{
			Terms:  canonical.Tuple(it.key[:it.terms]),
			Values: canonical.Tuple(it.key[it.terms:it.values]),
			Ref:    txlog.Ref{Collection: coll, ID: it.key[it.values:]},
		})
		return true
	})
	return dst, more, nil
}

// Position is a place in a set's order, after which Page lists members:
// an entry's values and ref ID. The zero Position is before the first
// member. Its text form (MarshalText) is opaque URL-safe base64, for
// carrying in a paging cursor.
type Position struct {
	enc string // "" for the start; else 0x01, the encoded values, the ref ID
}

// IsZero reports whether p is the start of the set.
func (p Position) IsZero() bool { return p.enc == "" }

// MarshalText returns p as URL-safe base64 without padding.
func (p Position) MarshalText() ([]byte, error) {
	return base64.RawURLEncoding.AppendEncode(nil, []byte(p.enc)), nil
}

// UnmarshalText sets p from its text form. The error wraps
// ErrInvalidPosition.
func (p *Position) UnmarshalText(text []byte) error {
	b, err := base64.RawURLEncoding.AppendDecode(nil, text)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPosition, err)
	}
	if len(b) > 0 && b[0] != 0x01 {
		return fmt.Errorf("%w: not a position", ErrInvalidPosition)
	}
	p.enc = string(b)
	return nil
}
