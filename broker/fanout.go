package broker

import (
	"time"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// registry maps what a write touches to the subscribers that follow it: a
// document ref, or a set key (hashed, and confirmed by the full key). A
// write is matched with a few hash lookups, so its cost does not depend on
// how many unrelated subscriptions exist. Guarded by Broker.mu.
type registry struct {
	docs    map[txlog.Ref]*subList
	sets    entrystore.SetMap[*subList]
	updates map[string]int // collection → subscribers asking for update events
}

// subList is the subscribers of one document or set. Each knows its slot,
// so that removal is a swap, not a scan.
type subList struct{ subs []*subscriber }

func (r *registry) init() {
	r.docs = map[txlog.Ref]*subList{}
	r.updates = map[string]int{}
}

func (r *registry) add(s *subscriber, cat *entrystore.Catalog) {
	var l *subList
	if s.spec.target.Kind == subscription.KindDocument {
		if l = r.docs[s.spec.target.Ref]; l == nil {
			l = &subList{}
			r.docs[s.spec.target.Ref] = l
		}
	} else {
		var ok bool
		if l, ok = r.sets.Get(s.spec.key); !ok {
			l = &subList{}
			r.sets.Put(s.spec.key, l)
		}
		if s.spec.updates {
			s.collection = collectionOf(cat, &s.spec)
			r.updates[s.collection]++
		}
	}
	s.slot = len(l.subs)
	l.subs = append(l.subs, s)
}

func (r *registry) remove(s *subscriber) {
	var l *subList
	if s.spec.target.Kind == subscription.KindDocument {
		l = r.docs[s.spec.target.Ref]
	} else {
		l, _ = r.sets.Get(s.spec.key)
		if s.spec.updates {
			if r.updates[s.collection]--; r.updates[s.collection] == 0 {
				delete(r.updates, s.collection)
			}
		}
	}
	if l == nil || s.slot >= len(l.subs) || l.subs[s.slot] != s {
		return
	}
	last := len(l.subs) - 1
	l.subs[s.slot] = l.subs[last]
	l.subs[s.slot].slot = s.slot
	l.subs[last] = nil
	l.subs = l.subs[:last]
	if len(l.subs) == 0 {
		if s.spec.target.Kind == subscription.KindDocument {
			delete(r.docs, s.spec.target.Ref)
		} else {
			r.sets.Delete(s.spec.key)
		}
	}
}

// each calls fn for every registered subscriber. Called with mu held.
func (r *registry) each(fn func(*subscriber)) {
	for _, l := range r.docs {
		for _, s := range l.subs {
			fn(s)
		}
	}
	for _, l := range r.sets.All() {
		for _, s := range l.subs {
			fn(s)
		}
	}
}

// publish delivers a committed record to every subscriber it concerns.
// Called with mu held, right after the commit, so deliveries are in txn
// order. It never waits: a push to a full queue overflows it, and that
// subscriber goes on from the log.
//
// Each event is encoded once per write and variant, and the same *Event is
// pushed to every subscriber of that variant (Guarantee 8 in the package
// doc).
func (b *Broker) publish(cat *entrystore.Catalog, rec txlog.Record, diffs []entrystore.Diff, start time.Time) {
	if len(b.subs.docs) == 0 && b.subs.sets.Len() == 0 {
		return
	}
	// The bytes queued, summed here and added to the shared counter once:
	// an atomic add per push would bounce its cache line between the
	// committer and every consumer.
	var queued, overflows int64
	// When the commit's first event went into a queue (for the FirstQueue
	// latency): one branch per push, one clock reading per commit.
	var first time.Time
	defer func() {
		b.stats.buffered.Add(queued)
		if overflows > 0 {
			b.stats.overflows.Add(overflows)
		}
		if !first.IsZero() {
			b.stats.firstQueue.observe(first.Sub(start))
			b.stats.lastQueue.observe(time.Since(start))
		}
	}()
	push := func(s *subscriber, evs []*subscription.Event) {
		for _, e := range evs {
			ok, d := s.q.Push(e)
			queued += int64(d)
			if d < 0 {
				overflows++
			}
			if ok && first.IsZero() {
				first = time.Now()
			}
		}
	}
	for op := range rec.Writes {
		w := &rec.Writes[op]
		we := writeEvents{cat: cat, log: b.log.ID(), txn: rec.Txn, op: op, w: w}
		if l := b.subs.docs[w.Ref]; l != nil {
			for _, s := range l.subs {
				push(s, we.docEvents(&s.spec))
			}
		}
		if w.Action == txlog.ActionRewrite || b.subs.sets.Len() == 0 {
			continue
		}
		we.changes = diffs[op].Changes()
		for i := range we.changes {
			k := we.changes[i].Set
			if firstChange(we.changes[:i], k) {
				if l, ok := b.subs.sets.Get(k); ok {
					for _, s := range l.subs {
						push(s, we.setEvents(&s.spec))
					}
				}
			}
		}
		if w.Action == txlog.ActionUpdate && b.subs.updates[w.Ref.Collection] > 0 {
			for _, k := range we.memberSets() {
				if we.changedSet(k) {
					continue
				}
				if l, ok := b.subs.sets.Get(k); ok {
					for _, s := range l.subs {
						if s.spec.updates {
							push(s, we.setEvents(&s.spec))
						}
					}
				}
			}
		}
	}
}

// firstChange reports whether no change before this one is for set k.
func firstChange(before []entrystore.Change, k entrystore.SetKey) bool {
	for i := range before {
		if before[i].Set == k {
			return false
		}
	}
	return true
}
