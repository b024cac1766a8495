package broker

import (
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/internal/wire"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// spec is what decides a subscriber's events: its target and the options
// that shape them. Subscribers with equal variants receive the very same
// events, so the broker encodes each event once per variant.
type spec struct {
	target  subscription.Target
	key     entrystore.SetKey // set targets
	fields  subscription.Fields
	data    bool // set events carry the document's data
	updates bool // set streams receive update events
}

// variant packs what shapes the encoding into a byte.
func (s *spec) variant() uint8 {
	v := uint8(s.fields)
	if s.data {
		v |= 1 << 6
	}
	if s.updates {
		v |= 1 << 7
	}
	return v
}

// writeEvents computes the events of one write, for any subscriber, and
// caches them by set and variant. Live delivery builds one per write and
// shares its events among all subscribers; a subscriber catching up from
// the log builds one per write it reads. Both go through the same code, so
// an event read from the log is byte for byte the event delivered live.
type writeEvents struct {
	cat     *entrystore.Catalog
	log     txlog.ID
	txn     txlog.Txn
	op      int
	w       *txlog.Write
	changes []entrystore.Change // the write's membership changes; nil for a rewrite
	// rp, when replaying for one subscriber: the events are built with its
	// buffers, its set's diff stands for changes, and nothing is cached.
	rp *replay

	diff    []byte // DiffData(before, after), computed on first need
	members []entrystore.SetKey
	cache   []cachedEvents
}

type cachedEvents struct {
	set     entrystore.SetKey // the zero key for the document
	variant uint8
	events  []*subscription.Event
}

func (we *writeEvents) lookup(set entrystore.SetKey, variant uint8) ([]*subscription.Event, bool) {
	if we.rp != nil {
		return nil, false
	}
	for i := range we.cache {
		if c := &we.cache[i]; c.set == set && c.variant == variant {
			return c.events, true
		}
	}
	return nil, false
}

func (we *writeEvents) cursor(seq uint32) txlog.Cursor {
	return txlog.Cursor{Log: we.log, Pos: txlog.Pos{Txn: we.txn, Op: uint32(we.op)}, Seq: seq}
}

// store caches the events of a set and variant, and returns them.
func (we *writeEvents) store(set entrystore.SetKey, variant uint8, evs []*subscription.Event) []*subscription.Event {
	if we.rp == nil {
		we.cache = append(we.cache, cachedEvents{set, variant, evs})
	}
	return evs
}

// dst returns where to append an event's JSON.
func (we *writeEvents) dst() []byte {
	if we.rp != nil {
		return we.rp.dst()
	}
	// Room for the envelope and the document at once: growing from nil
	// costs several allocations and copies per event, on the commit path.
	return make([]byte, 0, 256+len(we.w.After))
}

// event returns e, built on the stack, as an event to hand out.
func (we *writeEvents) event(e *subscription.Event) *subscription.Event {
	if we.rp != nil {
		return we.rp.event(e)
	}
	p := new(subscription.Event)
	*p = *e
	return p
}

// json takes the encoded JSON of an event begun with newEvent.
func (we *writeEvents) json(b []byte) []byte {
	if we.rp != nil {
		return we.rp.keep(b)
	}
	return b
}

func (we *writeEvents) cursorText(c txlog.Cursor) string {
	if we.rp != nil {
		return we.rp.cursorText(c)
	}
	return c.String()
}

// docEvents returns the event of the write for a document stream: a
// version event, or a history_rewrite.
func (we *writeEvents) docEvents(s *spec) []*subscription.Event {
	v := s.variant()
	if evs, ok := we.lookup(entrystore.SetKey{}, v); ok {
		return evs
	}
	w := we.w
	c := we.cursor(0)
	dst := we.dst()
	e := subscription.Event{Txn: we.txn, Cursor: c, CursorText: we.cursorText(c)}
	if w.Action == txlog.ActionRewrite {
		e.Type, e.Action = subscription.TypeHistoryRewrite, "insert"
		if w.After == nil {
			e.Action = "remove"
		}
		e.JSON = we.json(wire.AppendHistoryRewrite(dst, we.txn, e.CursorText, e.Action, w.Ref, w.BeforeTxn, w.After, s.fields))
	} else {
		e.Type, e.Action = subscription.TypeVersion, w.Action.String()
		ver := wire.Version{Action: e.Action, Ref: w.Ref, Txn: we.txn, Cursor: e.CursorText,
			BeforeTxn: w.BeforeTxn, Before: w.Before, After: w.After}
		if s.fields&subscription.FieldDiff != 0 {
			ver.Diff = we.dataDiff()
		}
		if we.rp != nil {
			ver.Memo = &we.rp.memo
		}
		e.JSON = we.json(wire.AppendVersion(dst, &ver, s.fields))
	}
	p := we.event(&e)
	if we.rp != nil {
		we.rp.ptrs = append(we.rp.ptrs[:0], p)
		return we.rp.ptrs
	}
	return we.store(entrystore.SetKey{}, v, []*subscription.Event{p})
}

func (we *writeEvents) dataDiff() []byte {
	if we.diff == nil {
		d, err := jsondoc.DiffData(we.w.Before, we.w.After)
		if err != nil {
			// Images in the log were checked as JSON objects on commit.
			d = []byte("{}")
		}
		we.diff = d
	}
	return we.diff
}

// setEvents returns the events of the write for a stream on the set key:
// its removes and adds in the diff's order, or, for a member that changed
// and stayed, an update when the spec asks for updates.
func (we *writeEvents) setEvents(s *spec) []*subscription.Event {
	if we.w.Action == txlog.ActionRewrite {
		return nil
	}
	key := s.key
	v := s.variant()
	if evs, ok := we.lookup(key, v); ok {
		return evs
	}
	var evs []*subscription.Event
	if we.rp != nil {
		evs = we.rp.ptrs[:0]
	}
	for i := range we.changes {
		c := &we.changes[i]
		if c.Set != s.key {
			continue
		}
		action, data := "add", we.w.After
		if c.Action == entrystore.Remove {
			action = "remove"
			if data == nil {
				data = we.w.Before
			}
		}
		evs = append(evs, we.setEvent(s, uint32(len(evs)), action, data, c.Entry.Terms, c.Entry.Values))
	}
	if len(evs) == 0 && s.updates && we.w.Action == txlog.ActionUpdate {
		if terms, values, ok := we.memberEntry(s.key); ok {
			evs = append(evs, we.setEvent(s, 0, "update", we.w.After, terms, values))
		}
	}
	if we.rp != nil {
		we.rp.ptrs = evs
	}
	return we.store(key, v, evs)
}

// memberEntry reports whether the document is in the set k after the
// write, with the terms and values of its first entry there.
func (we *writeEvents) memberEntry(k entrystore.SetKey) (terms, values canonical.Tuple, ok bool) {
	if we.rp != nil {
		e, ok := we.rp.set.Member()
		return e.Terms, e.Values, ok
	}
	if !we.isMember(k) {
		return "", "", false
	}
	terms, values = we.entryOf(k)
	return terms, values, true
}

func (we *writeEvents) setEvent(s *spec, seq uint32, action string, data []byte, terms, values canonical.Tuple) *subscription.Event {
	c := we.cursor(seq)
	text := we.cursorText(c)
	ch := wire.SetChange{Action: action, Ref: we.w.Ref, Txn: we.txn, Cursor: text,
		Data: data, Terms: terms, Values: values}
	if action == "update" && s.fields&subscription.FieldDiff != 0 {
		ch.Diff = we.dataDiff()
	}
	if we.rp != nil {
		ch.Memo = &we.rp.memo
	}
	e := subscription.Event{Type: subscription.TypeSet, Txn: we.txn, Cursor: c, CursorText: text, Action: action,
		JSON: we.json(wire.AppendSet(we.dst(), &ch, s.fields, s.data))}
	return we.event(&e)
}

// memberSets returns the sets the document is in after the write: its
// collection and every index set of its entries. Only update events need
// it, and only when someone asked for them.
func (we *writeEvents) memberSets() []entrystore.SetKey {
	if we.members != nil || we.w.After == nil {
		return we.members
	}
	ref := we.w.Ref
	if k, err := we.cat.CollectionSet(ref.Collection); err == nil {
		we.members = append(we.members, k)
	}
	for _, def := range we.cat.Indexes() {
		if def.Collection != ref.Collection {
			continue
		}
		entries, err := we.cat.Entries(def.Name, ref, we.w.After)
		if err != nil {
			continue
		}
		for _, e := range entries {
			k, err := we.cat.MatchTerms(def.Name, e.Terms)
			if err == nil && !containsKey(we.members, k) {
				we.members = append(we.members, k)
			}
		}
	}
	return we.members
}

func (we *writeEvents) isMember(k entrystore.SetKey) bool { return containsKey(we.memberSets(), k) }

// entryOf returns the terms and values of the document's first entry in
// the set k after the write (a collection set has none).
func (we *writeEvents) entryOf(k entrystore.SetKey) (terms, values canonical.Tuple) {
	if k.Kind() != entrystore.SetIndex {
		return "", ""
	}
	entries, _ := we.cat.Entries(k.Name(), we.w.Ref, we.w.After)
	for _, e := range entries {
		if mk, err := we.cat.MatchTerms(k.Name(), e.Terms); err == nil && mk == k {
			return e.Terms, e.Values
		}
	}
	return "", ""
}

// changedSets reports whether the write changed k's membership.
func (we *writeEvents) changedSet(k entrystore.SetKey) bool {
	for i := range we.changes {
		if we.changes[i].Set == k {
			return true
		}
	}
	return false
}

func containsKey(ks []entrystore.SetKey, k entrystore.SetKey) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// eventsFor returns the events of one write for one subscriber, as live
// delivery would have given them.
func (we *writeEvents) eventsFor(s *spec) []*subscription.Event {
	if s.target.Kind == subscription.KindDocument {
		if we.w.Ref != s.target.Ref {
			return nil
		}
		return we.docEvents(s)
	}
	coll := ""
	if we.rp != nil {
		coll = we.rp.coll
	} else {
		coll = collectionOf(we.cat, s)
	}
	if we.w.Ref.Collection != coll {
		return nil
	}
	return we.setEvents(s)
}

// collectionOf returns the collection whose documents a set spec follows.
func collectionOf(cat *entrystore.Catalog, s *spec) string {
	if s.target.Kind == subscription.KindCollection {
		return s.target.Collection
	}
	def, _ := cat.Index(s.target.Index)
	return def.Collection
}
