package transport

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/internal/multicursor"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// part is one subscription of a stream.
type part struct {
	name   string
	quoted []byte // the name as a JSON string; nil on a single-subscription stream
	target subscription.Target
	opt    subscription.Options
	sub    *broker.Subscription
	// last is the cursor of the last event written: where this part
	// resumes. It is zero until the part offers one (a snapshot withholds
	// it until its last page), and then it starts again.
	last txlog.Cursor
}

// parts are a stream's subscriptions: one, or several by name. Several
// subscriptions over one stream are how a browser on HTTP/1.1 escapes its
// limit of 6 connections per host. Each keeps the order and the cursors of
// its own events; each event names its subscription; the SSE id (and the
// cursor of the stream's ending) is a compound cursor that resumes every
// subscription exactly. An error event of one subscription
// (history_unavailable) ends the whole stream, naming that subscription.
type parts struct {
	list  []part
	one   [1]part        // list's array on a stream of one subscription
	log   txlog.ID       // the broker's log, for the compound cursor
	names uint32         // the hash of the sorted names, for the compound cursor
	pos   []txlog.Cursor // compound's scratch: the pump is one goroutine
	wg    sync.WaitGroup
}

// parts reads the stream's subscriptions from the request, and asks
// Authorize about each of them.
func (s *Server) parts(r *http.Request, req *StreamRequest, ps *parts) error {
	ps.log = s.Broker.LogID()
	if len(req.Subscriptions) == 0 {
		target, opt, err := req.target()
		if err != nil {
			return err
		}
		ps.one[0] = part{target: target, opt: opt}
		ps.list = ps.one[:]
		return s.authorize(r, target)
	}
	if len(req.Subscriptions) > MaxSubscriptionsPerStream {
		return badRequest("more than %d subscriptions", MaxSubscriptionsPerStream)
	}
	if req.Collection != "" || req.Index != "" || req.Document != nil || len(req.Terms) > 0 || req.Fields != 0 ||
		req.Snapshot || req.Updates || req.Data || req.PageSize != 0 {
		return badRequest("with subscriptions, give each one its target and options; only cursor goes beside them")
	}
	names := make([]string, 0, len(req.Subscriptions))
	for name := range req.Subscriptions {
		names = append(names, name)
	}
	sort.Strings(names)
	ps.list = make([]part, len(names))
	for i, name := range names {
		sr := req.Subscriptions[name]
		p := &ps.list[i]
		p.name = name
		p.quoted = jsondoc.AppendString(nil, name) // escapes U+0085 too, unlike encoding/json
		if len(sr.Subscriptions) > 0 {
			return badRequest("subscription %s: subscriptions do not nest", p.quoted)
		}
		var err error
		if p.target, p.opt, err = sr.target(); err != nil {
			return p.named(err)
		}
		if err := s.authorize(r, p.target); err != nil {
			return err
		}
	}
	ps.names = multicursor.NamesHash(names)
	if req.Cursor != "" {
		m, err := multicursor.Parse(req.Cursor, len(ps.list), ps.names)
		if err != nil {
			return err
		}
		for i := range ps.list {
			// A part the cursor has no position for (it was cut within its
			// snapshot) starts again.
			if m.Pos[i].Log != (txlog.ID{}) {
				ps.list[i].opt.Cursor = m.Pos[i].String()
			}
		}
	}
	return nil
}

// named prefixes an error with the part's name.
func (p *part) named(err error) *Error {
	e := *errorFor(err)
	e.Description = "subscription " + string(p.quoted) + ": " + e.Description
	return &e
}

func (ps *parts) multi() bool { return len(ps.list) > 1 || ps.list[0].quoted != nil }

// subscribe subscribes every part. The first one sends the heartbeats:
// one for the stream, not one per subscription.
func (ps *parts) subscribe(ctx context.Context, b *broker.Broker, heartbeat time.Duration) error {
	for i := range ps.list {
		p := &ps.list[i]
		if i == 0 {
			p.opt.Heartbeat = heartbeat
		}
		sub, err := b.Subscribe(ctx, p.target, p.opt)
		if err != nil {
			ps.close()
			if ps.multi() {
				return p.named(err)
			}
			return err
		}
		p.sub = sub
		p.last = sub.StartCursor()
	}
	return nil
}

// close closes every subscription and waits for multiplex's goroutines.
func (ps *parts) close() {
	ps.closeSubs()
	ps.wg.Wait()
}

// closeSubs closes every subscription, which ends their iterators wherever
// they wait. Safe from any goroutine once subscribe has returned.
func (ps *parts) closeSubs() {
	for i := range ps.list {
		// Only sub is read: the pump writes the rest as it goes.
		if sub := ps.list[i].sub; sub != nil {
			sub.Close()
		}
	}
}

// id is what resumes the stream after e, as SSE's id: the event's own
// cursor, or on a multiplexed stream the compound cursor (on error events
// too, so that a stream ended by one subscription resumes whole).
func (ps *parts) id(e *subscription.Event) string {
	if !ps.multi() {
		return e.CursorString()
	}
	if e.HasCursor() || e.Type == subscription.TypeError {
		return ps.compound()
	}
	return ""
}

// resume is the cursor that resumes the whole stream after what was
// written: the only part's cursor ("" before it has one: start again), or
// the compound cursor.
func (ps *parts) resume() string {
	if ps.multi() {
		return ps.compound()
	}
	return cursorText(ps.list[0].last)
}

func (ps *parts) compound() string {
	ps.pos = ps.pos[:0]
	for _, p := range ps.list {
		ps.pos = append(ps.pos, p.last)
	}
	m := multicursor.Cursor{Log: ps.log, Names: ps.names, Pos: ps.pos}
	return m.String()
}

// lastTxn is the txn of the latest cursor written, for the stream's
// ending event.
func (ps *parts) lastTxn() txlog.Txn {
	var t txlog.Txn
	for _, p := range ps.list {
		t = max(t, p.last.Pos.Txn)
	}
	return t
}

// taggedBatch is a batch of one part's events, copied off its iterator.
type taggedBatch struct {
	part   int
	events []subscription.Event
}

// multiplex starts one goroutine per part that copies its batches to the
// returned channel, until ctx or stop ends them. The channel is small: a
// slow client backs up into the subscriptions' bounded queues, which
// overflow into reading the log, not into memory.
func (ps *parts) multiplex(ctx context.Context) (<-chan taggedBatch, func()) {
	ctx, stop := context.WithCancel(ctx)
	ch := make(chan taggedBatch, len(ps.list))
	for i := range ps.list {
		sub := ps.list[i].sub
		ps.wg.Go(func() {
			defer sub.Close()
			for batch := range sub.Batches() {
				select {
				case ch <- taggedBatch{i, slices.Clone(batch)}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return ch, stop
}
