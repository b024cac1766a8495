package broker

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/internal/queue"
	"github.com/tidings/tidings/internal/wire"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// subscriber is a subscription as the broker's registry sees it.
type subscriber struct {
	owner      *Subscription
	spec       spec
	q          queue.Queue
	slot       int    // index in its subList; guarded by Broker.mu
	collection string // for the registry's update count
}

// Subscription is one open subscription. Read its events with Events;
// Close (or the context given to Subscribe) frees everything it holds.
type Subscription struct {
	b     *Broker
	sub   subscriber
	opt   subscription.Options
	start subscription.Event
	// withheld: the stream starts with a snapshot, and offers no cursor
	// until its last page, which carries the start cursor (guarantee 2 of
	// the package doc: a snapshot is never resumed halfway).
	withheld    bool
	startCursor txlog.Cursor

	// The snapshot, when asked for: the state at the start txn.
	doc  *version             // a document stream's document
	sets *entrystore.Snapshot // a set stream's members
	docs *docTree             // and their versions
	pos  txlog.Cursor         // the last event delivered (consumer only)
	// delivered counts events handed over since the last addition to the
	// broker's shared counter: added once per wait, not per event, because
	// an atomic add per event from every consumer would bounce one cache
	// line between all the cores. Next to pos, and to what Stats reads,
	// which the consumer writes at the same moments: one cache line.
	delivered int64
	shown     atomic.Uint64 // for Stats: the position's txn
	total     atomic.Int64  // for Stats: events handed over
	stop      func() bool   // stops the context's AfterFunc
	once      sync.Once     // Close
	done      chan struct{} // closed by Close
	used      atomic.Bool   // Events, Batches or Deliver was called
	batch     []*subscription.Event
	cb        *callback // Deliver's state

	// For Stats.
	id       uint64 // SubscriptionStats.ID
	started  time.Time
	catching atomic.Bool
}

// Subscribe opens a subscription to a document or a set.
//
// The stream starts with a start event carrying the start txn T: every
// later event has a txn above T. With Options.Snapshot, snapshot events
// follow with the target's state at exactly T. Then come the events of
// every commit after T, in order, with none missing and none repeated,
// whatever commits run while the subscription starts.
//
// With Options.Cursor the subscription resumes after that event: exactly
// the events after the cursor follow, replayed from the log and then live.
// Its start event carries the cursor itself, and the txn before the
// cursor's event (the cursor's own txn when it is a start event's cursor),
// since the rest of the cursor's transaction may still follow. A cursor older than the
// retained history, or of another log, fails with ErrHistoryUnavailable.
//
// Delivery never waits for the subscriber: its events wait in a bounded
// queue (Options.Buffer, Options.BufferBytes). A subscriber that lets the
// queue overflow loses nothing: it goes on reading the log at its own pace
// and rejoins live delivery when it has caught up. Only one that falls
// behind the log's retention receives an error event history_unavailable,
// naming the cursor of the last event it received.
//
// A document stream without a cursor on a missing document fails with
// ErrNotFound, as in Fauna; an unknown collection or index, a wrong number
// of terms, or a document ref that a write would refuse (ErrInvalidRef),
// with an error wrapping subscription.ErrInvalidTarget.
func (b *Broker) Subscribe(ctx context.Context, target subscription.Target, opt subscription.Options) (*Subscription, error) {
	opt, err := opt.Normalize()
	if err != nil {
		return nil, err
	}
	var resume txlog.Cursor
	if opt.Cursor != "" {
		if resume, err = txlog.ParseCursor(opt.Cursor); err != nil {
			return nil, err
		}
	}
	if opt.Cursor != "" {
		b.awaitCursor(ctx, resume)
	}
	s := &Subscription{b: b, opt: opt, done: make(chan struct{}), started: time.Now(), id: subscriptionIDs.Add(1)}
	s.sub.owner = s
	s.sub.spec = spec{target: target, fields: opt.Fields, data: opt.Data, updates: opt.Updates}
	s.sub.q.Init(opt.Buffer, opt.BufferBytes)

	b.mu.Lock()
	if err := b.usableShared(); err != nil {
		b.mu.Unlock()
		return nil, err
	}
	cat := b.cat.Load()
	switch target.Kind {
	case subscription.KindDocument:
		if err := docTarget(cat, target.Ref); err != nil {
			b.mu.Unlock()
			return nil, err
		}
	case subscription.KindCollection, subscription.KindIndex:
		if s.sub.spec.key, err = setOf(cat, target); err != nil {
			b.mu.Unlock()
			return nil, err
		}
	default:
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: no kind", subscription.ErrInvalidTarget)
	}

	var startTxn txlog.Txn
	if opt.Cursor != "" {
		if err := b.checkResume(resume); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		s.pos = resume
		startTxn = resume.Pos.Txn
		if resume.Pos.Op != ^uint32(0) && startTxn > 0 {
			startTxn--
		}
		// Start by reading the log from the cursor.
		s.sub.q.MarkOverflowed()
	} else {
		// The state's txn, which may be a pending commit's: the stream
		// shows nothing until it is delivered (see run), and the pending
		// commits' events that reach this subscriber are skipped by
		// position, since the snapshot holds them.
		startTxn = b.head
		s.pos = txlog.Cursor{Log: b.log.ID(), Pos: txlog.AfterTxn(startTxn)}
		if target.Kind == subscription.KindDocument {
			s.doc = getVersion(b.docs, target.Ref)
			if s.doc == nil {
				b.mu.Unlock()
				return nil, fmt.Errorf("%w: %s", ErrNotFound, target.Ref)
			}
		} else if opt.Snapshot {
			s.sets, s.docs = b.store.Snapshot(), b.docs.Clone()
		}
	}
	b.subs.add(&s.sub, cat)
	b.mu.Unlock()

	b.stats.subscriptions.Add(1)
	s.startCursor = s.pos
	s.shown.Store(uint64(s.pos.Pos.Txn))
	s.start = subscription.Event{Type: subscription.TypeStart, Txn: startTxn}
	// A stream that starts with a snapshot withholds the start cursor until
	// the snapshot's last page: a client cut off in the middle of the
	// snapshot, through whatever front, then has no cursor to resume from
	// and starts again, instead of resuming after a snapshot it never got
	// whole.
	s.withheld = opt.Snapshot && opt.Cursor == ""
	if !s.withheld {
		s.start.Cursor, s.start.CursorText = s.pos, s.pos.String()
	}
	s.start.JSON = wire.AppendStart(nil, startTxn, s.start.CursorText)
	// The AfterFunc may run at once (ctx is done already) and before
	// s.stop is set: it releases without touching s.stop.
	if ctx.Done() != nil { // a context that cannot end needs no watching
		s.stop = context.AfterFunc(ctx, func() { s.once.Do(s.release) })
	}
	return s, nil
}

// Start returns the stream's start txn.
func (s *Subscription) Start() txlog.Txn { return s.start.Txn }

// StartCursor returns the cursor the start event carries: resuming from
// it gives the whole stream after the start again. It is the zero Cursor
// for a stream that starts with a snapshot, whose start cursor comes on
// the snapshot's last page instead: until then there is nothing to resume
// from, and a stream cut short starts again.
func (s *Subscription) StartCursor() txlog.Cursor { return s.start.Cursor }

// Close ends the subscription and frees its queue. An Events loop in
// progress returns. Safe to call more than once, from any goroutine.
func (s *Subscription) Close() {
	s.once.Do(func() {
		if s.stop != nil { // set before Subscribe returned, so before any Close
			s.stop()
		}
		s.release()
	})
}

// release frees what the subscription holds; once, through s.once.
func (s *Subscription) release() {
	close(s.done)
	s.sub.q.Notify() // the consumer waits on its queue alone
	b := s.b
	b.mu.Lock()
	b.subs.remove(&s.sub)
	b.mu.Unlock()
	_, _, d := s.sub.q.Take(nil)
	b.stats.buffered.Add(int64(d))
	b.stats.subscriptions.Add(-1)
}

// Events returns the subscription's events, in order: start, the snapshot
// pages if asked for, then every change. The sequence ends when the
// subscription is closed, when its context is done, or after an error
// event (history_unavailable, or shutting_down when the broker closes:
// both carry the cursor to resume from). Breaking out of the loop closes
// the subscription. It can be ranged over once.
func (s *Subscription) Events() iter.Seq[subscription.Event] {
	return func(yield func(subscription.Event) bool) {
		if !s.used.CompareAndSwap(false, true) {
			return
		}
		defer s.Close()
		s.run(&sink{one: yield})
	}
}

// Batches is Events a batch at a time: each batch holds the events that
// were ready together (a queue's worth of live events, a stretch of the
// log while catching up), so that a writer can send them with one write
// and one flush. The slice is reused: it is valid until the loop body
// returns. It can be ranged over once, and not together with Events.
func (s *Subscription) Batches() iter.Seq[[]subscription.Event] {
	return func(yield func([]subscription.Event) bool) {
		if !s.used.CompareAndSwap(false, true) {
			return
		}
		defer s.Close()
		s.run(&sink{many: yield})
	}
}

// sink hands events to the consumer: one at a time (Events) or in batches
// (Batches), flushed where the consumer would otherwise wait.
type sink struct {
	one  func(subscription.Event) bool
	many func([]subscription.Event) bool
	buf  []subscription.Event
}

// maxBatch bounds a batch, so that a long catch-up is written in pieces.
const maxBatch = 256

func (k *sink) put(e *subscription.Event) bool {
	if k.one != nil {
		return k.one(*e)
	}
	k.buf = append(k.buf, *e)
	return len(k.buf) < maxBatch || k.flush()
}

// flush hands over the batch; it reports false when the consumer stopped.
func (k *sink) flush() bool {
	if k.many == nil || len(k.buf) == 0 {
		return true
	}
	ok := k.many(k.buf)
	clear(k.buf)
	k.buf = k.buf[:0]
	return ok
}

// run is the consumer: it yields from the queue while live, and reads the
// log while the queue is overflowed.
func (s *Subscription) run(k *sink) {
	defer s.countDelivered()
	if !s.begin(k) {
		return
	}
	var timer *time.Timer
	var beat <-chan time.Time
	if s.opt.Heartbeat > 0 {
		timer = time.NewTimer(s.opt.Heartbeat)
		defer timer.Stop()
		beat = timer.C
	}
	for {
		got, overflowed, ok := s.drain(k, &s.batch)
		if !ok {
			return
		}
		if got {
			if timer != nil {
				timer.Reset(s.opt.Heartbeat)
			}
			continue
		}
		if overflowed {
			if !s.catchUp(k) {
				return
			}
			continue
		}
		// Wait for the queue's signal alone: a close of the subscription or
		// of the broker signals it too (Queue.Notify). A select over the
		// broker's closing channel as well would make every consumer lock
		// that one channel at every wake, on every core.
		s.countDelivered()
		if beat == nil {
			<-s.sub.q.Wake()
		} else {
			select {
			case <-s.sub.q.Wake():
			case <-beat:
				if !s.heartbeat(k) {
					return
				}
				timer.Reset(s.opt.Heartbeat)
			}
		}
		if s.stopped(k) {
			return
		}
	}
}

// begin delivers the start event and the snapshot, once the start txn is
// published. It reports whether the stream goes on.
func (s *Subscription) begin(k *sink) bool {
	// The start txn may be a pending commit's: nothing is shown until it is
	// durable and delivered.
	if err := s.b.awaitPublished(s.start.Txn, s.done); err != nil {
		if !errors.Is(err, ErrClosed) {
			// The log failed: the start txn may be lost. A resumed stream
			// may go on from its cursor after a restart; a new one must
			// start again.
			if s.opt.Cursor == "" {
				s.pos = txlog.Cursor{}
			}
			s.fail(k, subscription.CodeShuttingDown, "the broker stopped: its log failed")
		}
		return false
	}
	if !s.deliver(k, &s.start) {
		return false
	}
	// Handed over (a consumer that keeps it has its own copy): a stream
	// that lasts hours need not hold its start's text.
	s.start.JSON, s.start.CursorText = nil, ""
	return s.snapshot(k) && k.flush()
}

// drain delivers what the queue holds, taking it into *scratch (kept
// for the next time). It reports whether it delivered anything, whether
// the queue has overflowed (the log has the rest), and whether the
// stream goes on.
func (s *Subscription) drain(k *sink, scratch *[]*subscription.Event) (got, overflowed, ok bool) {
	batch, overflowed, d := s.sub.q.Take((*scratch)[:0])
	if d != 0 {
		s.b.stats.buffered.Add(int64(d))
	}
	ok = true
	for i, e := range batch {
		batch[i] = nil
		if ok && e.After(s.pos) && !s.deliver(k, e) {
			ok = false
		}
	}
	*scratch = batch[:0]
	return len(batch) > 0, overflowed, ok && k.flush()
}

// heartbeat delivers a status event with the head's txn.
func (s *Subscription) heartbeat(k *sink) bool {
	st := subscription.Event{Type: subscription.TypeStatus, Txn: s.b.Head()}
	st.JSON = wire.AppendStatus(nil, st.Txn)
	return s.deliver(k, &st) && k.flush()
}

// stopped reports whether the stream has ended: closed, or its broker
// closing (it delivers what is queued and shutting_down) or cut off.
func (s *Subscription) stopped(k *sink) bool {
	// Two selects of one channel each: a receive that would block returns
	// at once without locking the channel, where one select over both
	// locks both, and every consumer shares b.closing.
	select {
	case <-s.done:
		return true
	default:
	}
	select {
	case <-s.b.closing:
		s.shutdown(k)
		return true
	default:
	}
	if s.b.cutOff.Load() {
		s.cutOff(k)
		return true
	}
	return false
}

// cutOff ends the stream of a node cut off from its shared log, with
// what it has queued (all of it in the log) and the cursor after it.
func (s *Subscription) cutOff(k *sink) {
	s.end(k, "this node is cut off from the log; resume from the cursor on another node")
}

// countDelivered adds the events delivered since the last call to the
// broker's counter.
func (s *Subscription) countDelivered() {
	if s.delivered != 0 {
		s.b.stats.delivered.Add(s.take())
	}
}

// take publishes the subscription's figures (position, events handed
// over) for Stats, and returns the events handed over since the last
// take, for the broker's counter.
func (s *Subscription) take() int64 {
	n := s.delivered
	s.delivered = 0
	s.total.Add(n)
	s.shown.Store(uint64(s.pos.Pos.Txn))
	return n
}

// deliver yields e and records its cursor as the position.
func (s *Subscription) deliver(k *sink, e *subscription.Event) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	s.delivered++
	if !k.put(e) {
		return false
	}
	if e.HasCursor() {
		s.pos = e.Cursor
	}
	return true
}

// shutdown delivers what is still queued and then the shutting_down error.
func (s *Subscription) shutdown(k *sink) {
	s.end(k, "the broker is shutting down; resume from the cursor")
}

// end delivers what is still queued and then shutting_down, saying why.
func (s *Subscription) end(k *sink, why string) {
	batch, overflowed, d := s.sub.q.Take(nil)
	s.b.stats.buffered.Add(int64(d))
	if !overflowed {
		for _, e := range batch {
			if e.After(s.pos) && !s.deliver(k, e) {
				return
			}
		}
	}
	s.fail(k, subscription.CodeShuttingDown, why)
}

// fail delivers an error event naming the cursor to resume from.
func (s *Subscription) fail(k *sink, code, description string) {
	e := subscription.Event{Type: subscription.TypeError, Txn: s.pos.Pos.Txn, Action: code}
	cursor := ""
	if s.pos != (txlog.Cursor{}) && !s.withheld {
		cursor = s.pos.String()
	}
	e.JSON = wire.AppendError(nil, e.Txn, code, description, cursor)
	if s.deliver(k, &e) {
		k.flush()
	}
}

// catchUp reads the log from the position until it has read everything
// committed, then rejoins live delivery: under the commit lock, when the
// log holds nothing it has not read, pushes resume, and from there on the
// queue holds exactly what follows. It returns false when the stream ends.
func (s *Subscription) catchUp(k *sink) bool {
	b := s.b
	b.stats.catchingUp.Add(1)
	s.catching.Store(true)
	defer func() {
		s.catching.Store(false)
		b.stats.catchingUp.Add(-1)
	}()
	from := before(s.pos.Pos)
	for {
		cat := b.cat.Load()
		// The subscriber's own buffers and set diff: see replay.
		rp, err := newReplay(cat, s.pos.Log, &s.sub.spec)
		if err != nil {
			// Subscribe found the set in this catalog.
			s.fail(k, "internal", err.Error())
			return false
		}
		for rec, err := range b.log.Read(txlog.Cursor{Log: s.pos.Log, Pos: from}) {
			if err != nil {
				return s.readFailed(k, err)
			}
			writes, first := rec.After(from)
			for i := range writes {
				w := &writes[i]
				we := writeEvents{cat: cat, log: s.pos.Log, txn: rec.Txn, op: first + i, w: w, rp: rp}
				rp.reset()
				if rp.set != nil && w.Action != txlog.ActionRewrite {
					if err := rp.set.Diff(w.Ref, w.Before, w.After); err != nil {
						// The write was diffed when it was committed.
						b.logger.Error("broker: replaying a write for a subscriber", "txn", rec.Txn, "err", err)
						continue
					}
					we.changes = rp.set.Changes()
				}
				for _, e := range we.eventsFor(&s.sub.spec) {
					if e.After(s.pos) && !s.deliver(k, e) {
						return false
					}
				}
			}
			from = rec.Last()
			s.shown.Store(uint64(s.pos.Pos.Txn)) // for Stats: it moves as it reads
			select {
			case <-b.closing:
				s.shutdown(k)
				return false
			default:
			}
			if b.cutOff.Load() {
				s.cutOff(k)
				return false
			}
		}
		if !k.flush() {
			return false
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			s.shutdown(k)
			return false
		}
		if b.published <= from.Txn {
			// Nothing delivered that this reader has not read: live again.
			// Pending commits it read already (durable, so in the log, but
			// not yet delivered) will be pushed too, and skipped by position.
			s.sub.q.Rejoin()
			b.mu.Unlock()
			return true
		}
		b.mu.Unlock()
	}
}

// readFailed turns a log error into the stream's end.
func (s *Subscription) readFailed(k *sink, err error) bool {
	switch {
	case errors.Is(err, txlog.ErrHistoryUnavailable):
		s.fail(k, subscription.CodeHistoryUnavailable,
			"this subscriber fell behind the retained history; start again with a snapshot")
	case errors.Is(err, txlog.ErrClosed):
		s.shutdown(k)
	case s.b.shared != nil:
		// A shared log's servers out of reach: another node may have them.
		s.b.logger.Warn("broker: reading the shared log for a subscriber", "err", err)
		s.cutOff(k)
	default:
		s.b.logger.Error("broker: reading the log for a subscriber", "err", err)
		s.fail(k, "internal", err.Error())
	}
	return false
}

// checkResume reports whether the log still holds what resuming after c
// needs: what follows c, and the rest of c's own write, which is read
// again from just before it (a write's later events share its position).
// A cursor whose write retention dropped fails with
// ErrHistoryUnavailable here, before anything is delivered, as it does
// for every front.
func (b *Broker) checkResume(c txlog.Cursor) error {
	if err := txlog.CheckCursor(b.log, c); err != nil {
		return err
	}
	return txlog.CheckCursor(b.log, txlog.Cursor{Log: c.Log, Pos: before(c.Pos)})
}

// before returns the position just before p's write, so that reading after
// it yields that write again: a cursor in the middle of a write's events
// needs the rest of them.
func before(p txlog.Pos) txlog.Pos {
	if p.Op == ^uint32(0) {
		return p
	}
	if p.Op > 0 {
		return txlog.Pos{Txn: p.Txn, Op: p.Op - 1}
	}
	if p.Txn == 0 {
		return txlog.Pos{}
	}
	return txlog.AfterTxn(p.Txn - 1)
}

// snapshotPage delivers one page of the snapshot. The last page carries
// the start cursor, withheld until then.
func (s *Subscription) snapshotPage(k *sink, ms []wire.Member, f subscription.Fields, withData, last bool) bool {
	e := subscription.Event{Type: subscription.TypeSnapshot, Txn: s.start.Txn}
	if last {
		e.Action = subscription.ActionLastPage
		e.Cursor, e.CursorText = s.startCursor, s.startCursor.String()
	}
	e.JSON = wire.AppendSnapshot(nil, e.Txn, e.CursorText, ms, f, withData, last)
	if !s.deliver(k, &e) {
		return false
	}
	if last {
		s.withheld = false
	}
	return true
}

// snapshot delivers the snapshot pages, if asked for.
func (s *Subscription) snapshot(k *sink) bool {
	if !s.opt.Snapshot || s.opt.Cursor != "" {
		return true
	}
	f := s.opt.Fields
	if s.sub.spec.target.Kind == subscription.KindDocument {
		ms := []wire.Member{{Ref: s.doc.ref, TS: s.doc.ts, Data: s.doc.data}}
		return s.snapshotPage(k, ms, f&^subscription.FieldIndex|subscription.FieldDocument, true, true)
	}
	f = f | subscription.FieldDocument
	var pos entrystore.Position
	var entries []entrystore.Entry
	members := make([]wire.Member, 0, s.opt.SnapshotPageSize)
	for {
		var more bool
		var err error
		entries, more, err = s.sets.Page(entries[:0], s.sub.spec.key, pos, s.opt.SnapshotPageSize)
		if err != nil {
			s.fail(k, "internal", err.Error())
			return false
		}
		members = members[:0]
		for _, e := range entries {
			m := wire.Member{Ref: e.Ref, Terms: e.Terms, Values: e.Values}
			if v := getVersion(s.docs, e.Ref); v != nil {
				m.TS, m.Data = v.ts, v.data
			}
			members = append(members, m)
		}
		if !s.snapshotPage(k, members, f, s.opt.Data, !more) || !k.flush() {
			return false
		}
		if !more {
			s.sets, s.docs = nil, nil
			return true
		}
		pos = entries[len(entries)-1].Position()
	}
}
