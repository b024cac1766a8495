package entrystore

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/txlog"
)

// Entry is one index entry: a document's terms and values in one index.
// Entries of an index are ordered by (Terms, Values, Ref.ID). In a
// collection set, Terms and Values are empty.
type Entry struct {
	Terms  canonical.Tuple
	Values canonical.Tuple
	Ref    txlog.Ref
}

// Position returns the place of e within its set, for listing the members
// that come after it (see Store.Page).
func (e Entry) Position() Position { return Position{"\x01" + string(e.Values) + e.Ref.ID} }

// Entries returns the entries of the document ref, whose data is the JSON
// object data, in the named index, in order and without duplicates.
// Errors wrap index.ErrUnknownIndex (also when ref is not in the index's
// collection), index.ErrInvalidJSON, ErrNotObject, index.ErrNumberRange or
// index.ErrTooManyEntries.
func (c *Catalog) Entries(name string, ref txlog.Ref, data []byte) ([]Entry, error) {
	x := c.byIndex[name]
	if x == nil {
		return nil, fmt.Errorf("%w: %q", index.ErrUnknownIndex, name)
	}
	if ref.Collection != x.def.Collection {
		return nil, fmt.Errorf("%w: index %q is on collection %q, not %q",
			index.ErrUnknownIndex, name, x.def.Collection, ref.Collection)
	}
	var f docFields
	var es entrySet
	if err := f.scan(x.coll, data); err != nil {
		return nil, err
	}
	if err := f.entries(x, &es); err != nil {
		return nil, err
	}
	all := string(es.buf)
	out := make([]Entry, len(es.ents))
	for i, e := range es.ents {
		out[i] = Entry{Terms: canonical.Tuple(all[e.start:e.terms]), Values: canonical.Tuple(all[e.terms:e.end]), Ref: ref}
	}
	return out, nil
}

// span is a range of bytes; start < 0 means none (a missing field).
type span struct{ start, end int }

var missing = span{-1, -1}

// docFields is the extraction of one document image: the raw JSON of
// every field its collection's indexes read, and, computed on demand, the
// canonical encodings of their elements. Its buffers are reused from one
// document to the next.
type docFields struct {
	data   []byte
	spans  []span // per slot: the field's raw JSON, or missing
	slotEl []span // per slot: its elements' range in elems; start < 0 until encoded
	elems  []span // canonical encodings in vals
	vals   []byte
	key    []byte // scratch for object keys with escapes
}

// scan validates data (a JSON object) and records the raw JSON of every
// field plan's indexes read.
func (f *docFields) scan(plan *collectionPlan, data []byte) error {
	f.data = data
	f.spans = resize(f.spans, plan.nslots, missing)
	f.slotEl = resize(f.slotEl, plan.nslots, missing)
	f.elems, f.vals = f.elems[:0], f.vals[:0]
	i := jsondoc.SkipSpace(data, 0)
	object := i < len(data) && data[i] == '{'
	var err error
	if object {
		i, err = f.scanObject(data, i, plan.root, 1)
	} else {
		i, err = jsondoc.SkipValue(data, i, 0)
	}
	if err != nil {
		return err
	}
	if i = jsondoc.SkipSpace(data, i); i != len(data) {
		return jsondoc.SyntaxError(i, "data after the document")
	}
	if !object {
		return ErrNotObject
	}
	return nil
}

func resize(s []span, n int, v span) []span {
	s = slices.Grow(s[:0], n)[:n]
	for i := range s {
		s[i] = v
	}
	return s
}

// scanObject validates the object at b[i] == '{', recording the fields
// below node. As with encoding/json, the last of duplicate keys wins.
func (f *docFields) scanObject(b []byte, i int, node *fieldNode, depth int) (int, error) {
	if depth > jsondoc.MaxDepth {
		return i, jsondoc.SyntaxError(i, "nested too deep")
	}
	i = jsondoc.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, jsondoc.SyntaxError(i, "expected object key")
		}
		end, plain, err := jsondoc.ScanString(b, i)
		if err != nil {
			return end, err
		}
		var child *fieldNode
		if node.children != nil {
			if plain {
				child = node.child(b[i+1 : end-1])
			} else {
				f.key = jsondoc.AppendUnquoted(f.key[:0], b[i+1:end-1], false)
				child = node.child(f.key)
			}
		}
		if i = jsondoc.SkipSpace(b, end); i >= len(b) || b[i] != ':' {
			return i, jsondoc.SyntaxError(i, "expected ':'")
		}
		start := jsondoc.SkipSpace(b, i+1)
		switch {
		case child == nil:
			i, err = jsondoc.SkipValue(b, start, depth)
		case child.children != nil && start < len(b) && b[start] == '{':
			for _, s := range child.subtree {
				f.spans[s] = missing
			}
			i, err = f.scanObject(b, start, child, depth+1)
		default:
			for _, s := range child.subtree {
				f.spans[s] = missing
			}
			i, err = jsondoc.SkipValue(b, start, depth)
		}
		if err != nil {
			return i, err
		}
		if child != nil && child.slot >= 0 {
			f.spans[child.slot] = span{start, i}
		}
		if i, err = jsondoc.NextMember(b, i, '}'); err != nil {
			return i, err
		}
		if i < 0 {
			return -i, nil
		}
	}
}

// elements returns the canonical encodings of slot's field: null for a
// missing field, one per element for an array, else the value itself.
func (f *docFields) elements(slot int) ([]span, error) {
	if r := f.slotEl[slot]; r.start >= 0 {
		return f.elems[r.start:r.end], nil
	}
	first := len(f.elems)
	sp := f.spans[slot]
	var err error
	switch {
	case sp.start < 0:
		f.vals = append(f.vals, canonical.Null...)
		f.elems = append(f.elems, span{len(f.vals) - 1, len(f.vals)})
	case f.data[sp.start] == '[':
		i := jsondoc.SkipSpace(f.data, sp.start+1)
		for f.data[i] != ']' {
			st := len(f.vals)
			if f.vals, i, err = canonical.Append(f.vals, f.data, i, 1); err != nil {
				return nil, err
			}
			f.elems = append(f.elems, span{st, len(f.vals)})
			if i = jsondoc.SkipSpace(f.data, i); f.data[i] == ',' {
				i = jsondoc.SkipSpace(f.data, i+1)
			}
		}
	default:
		st := len(f.vals)
		if f.vals, _, err = canonical.Append(f.vals, f.data, sp.start, 0); err != nil {
			return nil, err
		}
		f.elems = append(f.elems, span{st, len(f.vals)})
	}
	f.slotEl[slot] = span{first, len(f.elems)}
	return f.elems[first:], nil
}

// sameFields reports whether the fields x reads are byte for byte the same
// JSON in f and g, in which case x's entries are the same too.
func sameFields(x *compiledIndex, f, g *docFields) bool {
	for _, s := range x.slots {
		a, b := f.spans[s], g.spans[s]
		if (a.start < 0) != (b.start < 0) {
			return false
		}
		if a.start >= 0 && !bytes.Equal(f.data[a.start:a.end], g.data[b.start:b.end]) {
			return false
		}
	}
	return true
}

// entrySet holds one document's entries in one index: each entry's terms
// are buf[start:terms] and its values buf[terms:end].
type entrySet struct {
	buf  []byte
	ents []entrySpan
	odo  []int
}

type entrySpan struct{ start, terms, end int }

func (es *entrySet) reset() { es.buf, es.ents = es.buf[:0], es.ents[:0] }

func (es *entrySet) bytes(e entrySpan) []byte { return es.buf[e.start:e.end] }

// entries computes x's entries for the scanned document into es: the cross
// product of its fields' elements, sorted, duplicates removed.
func (f *docFields) entries(x *compiledIndex, es *entrySet) error {
	es.reset()
	es.odo = resizeInts(es.odo, len(x.slots))
	for _, s := range x.slots {
		els, err := f.elements(s)
		if err != nil {
			return err
		}
		if len(els) == 0 {
			return nil // an empty array: no entries
		}
	}
	total := 1
	for _, s := range x.slots {
		if total *= f.slotEl[s].end - f.slotEl[s].start; total > index.MaxEntriesPerDocument {
			return fmt.Errorf("%w: index %q would have more than %d entries for one document",
				index.ErrTooManyEntries, x.def.Name, index.MaxEntriesPerDocument)
		}
	}
	for {
		e := entrySpan{start: len(es.buf)}
		for k, s := range x.slots {
			if k == x.nterms {
				e.terms = len(es.buf)
			}
			el := f.elems[f.slotEl[s].start+es.odo[k]]
			es.buf = append(es.buf, f.vals[el.start:el.end]...)
		}
		if x.nterms == len(x.slots) {
			e.terms = len(es.buf)
		}
		e.end = len(es.buf)
		es.ents = append(es.ents, e)
		k := len(x.slots) - 1
		for ; k >= 0; k-- {
			s := x.slots[k]
			if es.odo[k]++; es.odo[k] < f.slotEl[s].end-f.slotEl[s].start {
				break
			}
			es.odo[k] = 0
		}
		if k < 0 {
			break
		}
	}
	if len(es.ents) > 1 {
		slices.SortFunc(es.ents, func(a, b entrySpan) int { return bytes.Compare(es.bytes(a), es.bytes(b)) })
		es.ents = slices.CompactFunc(es.ents, func(a, b entrySpan) bool { return bytes.Equal(es.bytes(a), es.bytes(b)) })
	}
	return nil
}

func resizeInts(s []int, n int) []int {
	s = slices.Grow(s[:0], n)[:n]
	clear(s)
	return s
}
