package entrystore

import (
	"fmt"
	"slices"

	"github.com/tidings/tidings/index"
)

// Catalog is a validated index.Schema, compiled for extraction. It is immutable:
// every method is safe for concurrent use by any number of goroutines. To
// change the schema, build a new Catalog (a Store is tied to the Catalog
// it was made with).
type Catalog struct {
	collections  []*collectionPlan
	byCollection map[string]*collectionPlan
	indexes      []*compiledIndex
	byIndex      map[string]*compiledIndex
}

// collectionPlan is what the Catalog knows about one collection: the
// field paths its indexes read, and the indexes themselves.
type collectionPlan struct {
	name    string
	ord     int // the Store's tree for the collection set
	root    *fieldNode
	nslots  int
	indexes []*compiledIndex
}

// compiledIndex is one index.Definition with its paths resolved to slots of its
// collection's field tree.
type compiledIndex struct {
	def    index.Definition
	ord    int // the Store's tree for this index
	coll   *collectionPlan
	slots  []int // term slots, then value slots
	nterms int
	prefix string // set key prefix: 'i', name, 0x00
}

// NewCatalog validates s and compiles it. Errors wrap index's
// ErrInvalidName, ErrInvalidPath, ErrDuplicateCollection, ErrDuplicateIndex
// or ErrUnknownCollection (an index on a collection s does not declare).
func NewCatalog(s index.Schema) (*Catalog, error) {
	c := &Catalog{
		byCollection: make(map[string]*collectionPlan, len(s.Collections)),
		byIndex:      make(map[string]*compiledIndex, len(s.Indexes)),
	}
	for _, name := range s.Collections {
		if err := checkName("collection", name); err != nil {
			return nil, err
		}
		if c.byCollection[name] != nil {
			return nil, fmt.Errorf("%w: %q", index.ErrDuplicateCollection, name)
		}
		p := &collectionPlan{name: name, ord: len(c.collections), root: newFieldNode()}
		c.collections = append(c.collections, p)
		c.byCollection[name] = p
	}
	for _, d := range s.Indexes {
		if err := validate(&d, c.byCollection); err != nil {
			return nil, err
		}
		if c.byIndex[d.Name] != nil {
			return nil, fmt.Errorf("%w: %q", index.ErrDuplicateIndex, d.Name)
		}
		p := c.byCollection[d.Collection]
		x := &compiledIndex{
			def:    clone(d),
			ord:    len(s.Collections) + len(c.indexes),
			coll:   p,
			nterms: len(d.Terms),
			prefix: "i" + d.Name + "\x00",
		}
		for _, path := range slices.Concat(d.Terms, d.Values) {
			slot, added := p.root.add(path, p.nslots)
			if added {
				p.nslots++
			}
			x.slots = append(x.slots, slot)
		}
		p.indexes = append(p.indexes, x)
		c.indexes = append(c.indexes, x)
		c.byIndex[d.Name] = x
	}
	for _, p := range c.collections {
		p.root.finish()
	}
	return c, nil
}

// Collections returns the declared collections, in Schema order.
func (c *Catalog) Collections() []string {
	names := make([]string, len(c.collections))
	for i, p := range c.collections {
		names[i] = p.name
	}
	return names
}

// Indexes returns copies of the index definitions, in Schema order.
func (c *Catalog) Indexes() []index.Definition {
	defs := make([]index.Definition, len(c.indexes))
	for i, x := range c.indexes {
		defs[i] = clone(x.def)
	}
	return defs
}

// Index returns a copy of the definition of the named index.
func (c *Catalog) Index(name string) (index.Definition, bool) {
	x := c.byIndex[name]
	if x == nil {
		return index.Definition{}, false
	}
	return clone(x.def), true
}

// trees is the number of ordered trees a Store of c keeps: one per
// collection set, one per index.
func (c *Catalog) trees() int { return len(c.collections) + len(c.indexes) }
