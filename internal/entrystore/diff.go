package entrystore

import (
	"bytes"
	"fmt"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/txlog"
)

// Action is what a Change does to a set's membership.
type Action uint8

// The actions of a Change.
const (
	// Add: the document enters the set with this entry.
	Add Action = iota + 1
	// Remove: the document leaves the set with this entry.
	Remove
)

// String returns "add" or "remove", the action names of set events.
func (a Action) String() string {
	switch a {
	case Add:
		return "add"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Change is one entry a write adds to or removes from one set. A Remove
// carries the old terms and values, an Add the new ones.
type Change struct {
	Action Action
	Set    SetKey
	Entry  Entry

	ord  int    // the Store tree
	skey string // the Store key: terms, values, ref ID
}

// Diff is the membership diff of one write: for every set of the written
// document's collection, the entries the write removes and adds.
//
//   - A create enters the collection set, a delete leaves it; an update
//     changes nothing there.
//   - In each index, entries of the before image that the after image does
//     not have are removed, and the after image's new entries added: a
//     change of values under the same terms is a Remove of the old entry
//     and an Add of the new one, in the same set. An entry that the write
//     leaves unchanged yields nothing.
//
// Changes come in a fixed order: the collection set, then each index in
// Schema order, within it every Remove and then every Add, each in entry
// order.
//
// A Diff keeps buffers from one write to the next: reuse one (per
// goroutine: a Diff is not safe for concurrent use) and computing a diff
// allocates once, for all its Changes' keys together, and not at all for
// a write that changes no membership. The Changes' keys, tuples and refs
// are immutable strings that stay valid after the Diff is reused; only the
// slice Changes returns is overwritten. The zero Diff is ready to use.
type Diff struct {
	cat     *Catalog
	ref     txlog.Ref
	changes []Change

	before, after docFields
	be, ae        entrySet
	arena         []byte
	pend          []pending
}

// pending is a Change while its bytes are in the arena: the set key is
// arena[key:values] (kind, name, terms), the terms arena[terms:values],
// the values arena[values:id], the ref ID arena[id:end], and the Store key
// arena[terms:end].
type pending struct {
	action                      Action
	ord                         int
	key, terms, values, id, end int
}

// Ref returns the written document's ref.
func (d *Diff) Ref() txlog.Ref { return d.ref }

// Changes returns the diff's changes. The slice is overwritten when d is
// reused; its elements' strings are not.
func (d *Diff) Changes() []Change { return d.changes }

// Diff computes into d the membership diff of one write to the document
// ref: before and after are the document's data (a JSON object) before
// and after the write, nil where it did not exist (before a create, after
// a delete). On error d holds no changes. Errors wrap
// index.ErrUnknownCollection, index.ErrInvalidJSON, ErrNotObject,
// index.ErrNumberRange or index.ErrTooManyEntries.
//
// Diff is safe for concurrent use with distinct Diffs.
func (c *Catalog) Diff(d *Diff, ref txlog.Ref, before, after []byte) error {
	d.cat, d.ref, d.changes, d.arena, d.pend = c, ref, d.changes[:0], d.arena[:0], d.pend[:0]
	plan := c.byCollection[ref.Collection]
	if plan == nil {
		return fmt.Errorf("%w: %q (document %s)", index.ErrUnknownCollection, ref.Collection, ref)
	}
	if err := d.compute(plan, before, after); err != nil {
		d.arena, d.pend = d.arena[:0], d.pend[:0]
		return fmt.Errorf("document %s: %w", ref, err)
	}
	if len(d.pend) == 0 {
		return nil
	}
	all := string(d.arena) // the one allocation
	for _, p := range d.pend {
		d.changes = append(d.changes, Change{
			Action: p.action,
			Set:    newSetKey(all[p.key:p.values]),
			Entry:  Entry{Terms: canonical.Tuple(all[p.terms:p.values]), Values: canonical.Tuple(all[p.values:p.id]), Ref: ref},
			ord:    p.ord,
			skey:   all[p.terms:p.end],
		})
	}
	return nil
}

func (d *Diff) compute(plan *collectionPlan, before, after []byte) error {
	if before != nil {
		if err := d.before.scan(plan, before); err != nil {
			return fmt.Errorf("before image: %w", err)
		}
	}
	if after != nil {
		if err := d.after.scan(plan, after); err != nil {
			return fmt.Errorf("after image: %w", err)
		}
	}
	switch {
	case before == nil && after == nil:
		return nil
	case before == nil:
		d.addCollection(Add, plan)
	case after == nil:
		d.addCollection(Remove, plan)
	case bytes.Equal(before, after):
		return nil
	}
	for _, x := range plan.indexes {
		if before != nil && after != nil && sameFields(x, &d.before, &d.after) {
			continue
		}
		d.be.reset()
		d.ae.reset()
		if before != nil {
			if err := d.before.entries(x, &d.be); err != nil {
				return fmt.Errorf("before image: %w", err)
			}
		}
		if after != nil {
			if err := d.after.entries(x, &d.ae); err != nil {
				return fmt.Errorf("after image: %w", err)
			}
		}
		d.merge(x)
	}
	return nil
}

// merge adds x's Removes (entries only in d.be) and then its Adds (only in
// d.ae).
func (d *Diff) merge(x *compiledIndex) {
	mergeEntries(&d.be, &d.ae, func(a Action, es *entrySet, e entrySpan) { d.addEntry(a, x, es, e) })
}

// mergeEntries calls fn with Remove for each entry only in be and then
// with Add for each only in ae, in entry order. Both sets are sorted and
// free of duplicates.
func mergeEntries(be, ae *entrySet, fn func(Action, *entrySet, entrySpan)) {
	bs, as := be.ents, ae.ents
	for i, j := 0, 0; i < len(bs); {
		c := 1
		if j < len(as) {
			c = bytes.Compare(be.bytes(bs[i]), ae.bytes(as[j]))
		}
		switch {
		case c < 0 || j == len(as):
			fn(Remove, be, bs[i])
			i++
		case c == 0:
			i++
			j++
		default:
			j++
		}
	}
	for i, j := 0, 0; j < len(as); {
		c := -1
		if i < len(bs) {
			c = bytes.Compare(ae.bytes(as[j]), be.bytes(bs[i]))
		}
		switch {
		case c < 0 || i == len(bs):
			fn(Add, ae, as[j])
			j++
		case c == 0:
			i++
			j++
		default:
			i++
		}
	}
}

func (d *Diff) addCollection(a Action, plan *collectionPlan) {
	p := pending{action: a, ord: plan.ord, key: len(d.arena)}
	d.arena = append(d.arena, byte(SetCollection))
	d.arena = append(d.arena, plan.name...)
	p.terms, p.values, p.id = len(d.arena), len(d.arena), len(d.arena)
	d.arena = append(d.arena, d.ref.ID...)
	p.end = len(d.arena)
	d.pend = append(d.pend, p)
}

func (d *Diff) addEntry(a Action, x *compiledIndex, es *entrySet, e entrySpan) {
	p := pending{action: a, ord: x.ord, key: len(d.arena)}
	d.arena = append(d.arena, x.prefix...)
	p.terms = len(d.arena)
	p.values = p.terms + e.terms - e.start
	d.arena = append(d.arena, es.bytes(e)...)
	p.id = len(d.arena)
	d.arena = append(d.arena, d.ref.ID...)
	p.end = len(d.arena)
	d.pend = append(d.pend, p)
}
