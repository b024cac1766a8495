package entrystore

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tidings/tidings/txlog"
)

// Bulk builds a Store from many documents at once: what a restart does with
// a million of them. Applying them one by one walks each tree from its root
// to a random leaf per entry, a cache miss at every level once the trees
// outgrow the cache; Bulk collects the entries, sorts each tree's, and
// inserts them in ascending order, so that every insert goes down the
// right-hand edge the previous one left in cache.
//
// Concurrency: a Bulk is not safe for concurrent use; to spread the work
// of computing diffs, give each goroutine its own and Merge them.
type Bulk struct {
	cat   *Catalog
	items [][]item // per tree
}

// NewBulk returns an empty Bulk for the sets of c.
func NewBulk(c *Catalog) *Bulk {
	return &Bulk{cat: c, items: make([][]item, c.trees())}
}

// Add adds the entries of a document's creation: d must be a diff with no
// before image (Catalog.Diff with before nil), so only adds. d may be
// reused afterwards.
func (b *Bulk) Add(d *Diff) error {
	if len(d.changes) > 0 && d.cat != b.cat {
		return ErrCatalogMismatch
	}
	for _, c := range d.changes {
		if c.Action != Add {
			return fmt.Errorf("%w: a bulk load of %s holds a remove", ErrInconsistent, d.ref)
		}
		terms := len(c.Entry.Terms)
		b.items[c.ord] = append(b.items[c.ord], item{
			key:    strings.Clone(c.skey), // not the Diff's arena, which d reuses
			terms:  uint32(terms),
			values: uint32(terms + len(c.Entry.Values)),
		})
	}
	return nil
}

// Merge moves the entries of others into b; the others are left empty.
func (b *Bulk) Merge(others ...*Bulk) error {
	for _, o := range others {
		if o.cat != b.cat {
			return ErrCatalogMismatch
		}
		for i := range o.items {
			b.items[i] = append(b.items[i], o.items[i]...)
			o.items[i] = nil
		}
	}
	return nil
}

// Store returns a Store holding every entry added, at txn. The trees are
// built in parallel, one goroutine each. An entry added twice is an error
// wrapping ErrInconsistent. The Bulk is empty afterwards.
func (b *Bulk) Store(txn txlog.Txn) (*Store, error) {
	s := NewStore(b.cat)
	s.txn = txn
	errs := make([]error, len(b.items))
	var wg sync.WaitGroup
	for i, items := range b.items {
		wg.Go(func() {
			slices.SortFunc(items, func(x, y item) int { return strings.Compare(x.key, y.key) })
			for k := 1; k < len(items); k++ {
				if items[k-1].key == items[k].key {
					errs[i] = fmt.Errorf("%w: an entry of %s added twice", ErrInconsistent, items[k].ref())
					return
				}
			}
			s.trees[i] = fillTree(items)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, err
		}
		s.n += len(b.items[i])
		b.items[i] = nil
	}
	return s, nil
}

// ref returns the item's document ID, for messages.
func (it item) ref() string { return it.key[it.values:] }
