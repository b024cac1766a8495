package entrystore

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/txlog"
)

// SetDiff is a Diff of one set alone: the changes of a write that
// Catalog.Diff would give for that set, in the same order, and nothing of
// the other sets. It is for a reader that follows one set through many
// writes (a subscriber replaying the log), and costs less than a Diff:
//
//   - it computes the entries of the set's index only, and none when the
//     fields that index reads are unchanged;
//   - it allocates nothing per write once its buffers have grown: the
//     values of its entries are strings carved from chunks written once,
//     which stay valid (and keep their chunk alive) after d is reused;
//   - a write whose before image is byte for byte the last write's after
//     image (one document written again and again) reuses that scan, and
//     one whose after image is then the last write's before image (a
//     document put back as it was) reuses that one's.
//
// A SetDiff is not safe for concurrent use.
type SetDiff struct {
	key   SetKey
	plan  *collectionPlan
	x     *compiledIndex // nil for a collection set
	terms string         // the set's terms, as its entries hold them

	ref     txlog.Ref
	changes []Change
	// The scans of the last write's images, and their entries in the set:
	// fields[b] and sets[b] are the before image's, fields[1-b] and
	// sets[1-b] the after image's. Flipping b passes the scans from one
	// image to the other: an index, not pointers, so that it costs no
	// write barrier.
	fields            [2]docFields
	sets              [2]entrySet
	b                 int
	beforeOK, afterOK bool // the scans of before, after are held
	beOK, aeOK        bool // the set's entries of before, after are held
	vals              strings.Builder
}

func (d *SetDiff) before() *docFields { return &d.fields[d.b] }
func (d *SetDiff) after() *docFields  { return &d.fields[1-d.b] }
func (d *SetDiff) be() *entrySet      { return &d.sets[d.b] }
func (d *SetDiff) ae() *entrySet      { return &d.sets[1-d.b] }

// NewSetDiff returns a SetDiff of the set k, which must be one of c's
// sets. Errors wrap index.ErrUnknownCollection or index.ErrUnknownIndex.
func (c *Catalog) NewSetDiff(k SetKey) (*SetDiff, error) {
	d := &SetDiff{key: k}
	switch k.Kind() {
	case SetCollection:
		if d.plan = c.byCollection[k.Name()]; d.plan == nil {
			return nil, fmt.Errorf("%w: %q", index.ErrUnknownCollection, k.Name())
		}
	case SetIndex:
		x := c.byIndex[k.Name()]
		if x == nil || k.Terms().Len() != x.nterms {
			return nil, fmt.Errorf("%w: %s", index.ErrUnknownIndex, k)
		}
		d.x, d.plan, d.terms = x, x.coll, string(k.Terms())
	default:
		return nil, fmt.Errorf("%w: the zero set key", index.ErrUnknownIndex)
	}
	return d, nil
}

// Collection returns the collection whose documents the set holds.
func (d *SetDiff) Collection() string { return d.plan.name }

// Changes returns the changes of the last write diffed. The slice is
// overwritten when d is reused; its elements' strings are not.
func (d *SetDiff) Changes() []Change { return d.changes }

// Diff computes into d the changes that one write to the document ref
// makes to d's set, as Catalog.Diff does for every set: before and after
// are the document's data, nil where it did not exist. A document of
// another collection changes nothing. On error d holds no changes; errors
// are those of Catalog.Diff, from the document's images and d's index.
func (d *SetDiff) Diff(ref txlog.Ref, before, after []byte) error {
	d.ref, d.changes = ref, d.changes[:0]
	if ref.Collection != d.plan.name {
		return nil // and the last scan of d's collection stays for reuse
	}
	if err := d.scan(before, after); err != nil {
		d.beforeOK, d.afterOK, d.aeOK = false, false, false
		return fmt.Errorf("document %s: %w", ref, err)
	}
	switch {
	case before == nil && after == nil:
		return nil
	case d.x == nil:
		// The collection set: a create enters it, a delete leaves it.
		if before == nil {
			d.changes = append(d.changes, Change{Action: Add, Set: d.key, Entry: Entry{Ref: ref}})
		} else if after == nil {
			d.changes = append(d.changes, Change{Action: Remove, Set: d.key, Entry: Entry{Ref: ref}})
		}
		return nil
	case before != nil && after != nil && sameFields(d.x, d.before(), d.after()):
		return nil
	}
	if err := d.entries(before, after); err != nil {
		d.changes = d.changes[:0]
		return fmt.Errorf("document %s: %w", ref, err)
	}
	mergeEntries(d.be(), d.ae(), func(a Action, es *entrySet, e entrySpan) {
		d.changes = append(d.changes, Change{Action: a, Set: d.key, Entry: d.entry(es, e)})
	})
	return nil
}

// scan scans the images, taking the before image's scan from the last
// write's after image when they are the same bytes, and then the after
// image's from the last write's before image when those are.
func (d *SetDiff) scan(before, after []byte) error {
	lastBefore, lastBe := d.beforeOK, d.beOK
	d.beforeOK, d.beOK = false, false
	swapped := false
	// The images keep the data of the scans they were found equal to.
	if before != nil && d.afterOK && bytes.Equal(before, d.after().data) {
		d.b = 1 - d.b
		d.beforeOK, d.beOK = true, d.aeOK
		swapped = true
	} else if before != nil {
		if err := d.before().scan(d.plan, before); err != nil {
			return fmt.Errorf("before image: %w", err)
		}
		d.beforeOK = true
	}
	d.afterOK, d.aeOK = false, false
	if after == nil {
		return nil
	}
	if swapped && lastBefore && bytes.Equal(after, d.after().data) {
		d.afterOK, d.aeOK = true, lastBe
		return nil
	}
	if err := d.after().scan(d.plan, after); err != nil {
		return fmt.Errorf("after image: %w", err)
	}
	d.afterOK = true
	return nil
}

// entries computes the set's entries of the images that lack them.
func (d *SetDiff) entries(before, after []byte) error {
	if !d.beOK {
		d.be().reset()
		if before != nil {
			if err := d.inSet(d.before(), d.be()); err != nil {
				return fmt.Errorf("before image: %w", err)
			}
		}
		d.beOK = true
	}
	if !d.aeOK {
		d.ae().reset()
		if after != nil {
			if err := d.inSet(d.after(), d.ae()); err != nil {
				return fmt.Errorf("after image: %w", err)
			}
		}
		d.aeOK = true
	}
	return nil
}

// inSet computes f's entries in d's index into es, and keeps those with
// the set's terms: a subsequence, so still sorted.
func (d *SetDiff) inSet(f *docFields, es *entrySet) error {
	if err := f.entries(d.x, es); err != nil {
		return err
	}
	n := 0
	for _, e := range es.ents {
		if string(es.buf[e.start:e.terms]) == d.terms {
			es.ents[n] = e
			n++
		}
	}
	es.ents = es.ents[:n]
	return nil
}

// Member reports whether the document of the last write diffed is in the
// set after it, with its first entry there: what a set's update event
// carries.
func (d *SetDiff) Member() (Entry, bool) {
	if !d.afterOK || d.ref.Collection != d.plan.name {
		return Entry{}, false
	}
	if d.x == nil {
		return Entry{Ref: d.ref}, true
	}
	if !d.aeOK {
		d.ae().reset()
		if d.inSet(d.after(), d.ae()) != nil {
			return Entry{}, false
		}
		d.aeOK = true
	}
	ae := d.ae()
	if len(ae.ents) == 0 {
		return Entry{}, false
	}
	return d.entry(ae, ae.ents[0]), true
}

// entry returns e as an Entry of the set, its values a string carved from
// d.vals.
func (d *SetDiff) entry(es *entrySet, e entrySpan) Entry {
	return Entry{Terms: canonical.Tuple(d.terms), Values: canonical.Tuple(d.str(es.buf[e.terms:e.end])), Ref: d.ref}
}

// valsChunk is the size of the chunks that entries' values are carved from.
const valsChunk = 4 << 10

// str returns b as a string without an allocation of its own: a
// strings.Builder never changes what it has written, so the strings it
// returned stay valid as it grows, and Reset leaves them to the old chunk.
func (d *SetDiff) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if d.vals.Cap()-d.vals.Len() < len(b) {
		d.vals.Reset()
		d.vals.Grow(max(valsChunk, len(b)))
	}
	n := d.vals.Len()
	d.vals.Write(b)
	return d.vals.String()[n:]
}
