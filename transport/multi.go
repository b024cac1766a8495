package transport

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"sync"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// part is one subscription of a multiplexed stream.
type part struct {
	name   string
	quoted []byte // the name as a JSON string
	target subscription.Target
	opt    subscription.Options
	sub    *broker.Subscription
}

// taggedBatch is a batch of one part's events, copied off its iterator.
type taggedBatch struct {
	part   int
	events []subscription.Event
}

// serveMulti runs one stream that carries many subscriptions: this is how
// a browser on HTTP/1.1 escapes its limit of 6 connections per host. Each
// subscription's events keep their order and their own cursors; each event
// names its subscription; the SSE id (and the cursor of the final error
// event) is a compound cursor that resumes every subscription exactly.
// An error event of one subscription (history_unavailable) ends the whole
// stream, naming that subscription.
func (s *Server) serveMulti(w http.ResponseWriter, r *http.Request, req StreamRequest, f framer) {
	if len(req.Subscriptions) > MaxSubscriptionsPerStream {
		writeError(w, badRequest("more than %d subscriptions", MaxSubscriptionsPerStream))
		return
	}
	if req.Collection != "" || req.Index != "" || req.Document != nil || len(req.Terms) > 0 || req.Fields.set ||
		req.Snapshot || req.Updates || req.Data || req.PageSize != 0 {
		writeError(w, badRequest("with subscriptions, give each one its target and options; only cursor goes beside them"))
		return
	}
	names := make([]string, 0, len(req.Subscriptions))
	for name := range req.Subscriptions {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]part, len(names))
	for i, name := range names {
		sr := req.Subscriptions[name]
		if len(sr.Subscriptions) > 0 {
			writeError(w, badRequest("subscription %q: subscriptions do not nest", name))
			return
		}
		p := &parts[i]
		p.name = name
		p.quoted, _ = json.Marshal(name)
		var err error
		if p.target, p.opt, err = sr.target(); err != nil {
			e := errorFor(err)
			e.Description = "subscription " + string(p.quoted) + ": " + e.Description
			writeError(w, e)
			return
		}
		if !s.authorize(w, r, p.target) {
			return
		}
	}
	hash := namesHash(names)
	if req.Cursor != "" {
		m, err := parseMultiCursor(req.Cursor, len(parts), hash)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		for i := range parts {
			parts[i].opt.Cursor = m.pos[i].String()
		}
	}

	ctx, end, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer end()
	for i := range parts {
		p := &parts[i]
		if i == 0 {
			// One heartbeat for the stream, not one per subscription.
			p.opt.Heartbeat = orDefault(s.Heartbeat, DefaultHeartbeat)
		}
		sub, err := s.Broker.Subscribe(ctx, p.target, p.opt)
		if err != nil {
			for _, q := range parts[:i] {
				q.sub.Close()
			}
			e := errorFor(err)
			e.Description = "subscription " + string(p.quoted) + ": " + e.Description
			writeError(w, e)
			return
		}
		p.sub = sub
	}

	// One goroutine per subscription copies its batches to the writer. The
	// channel is small: a slow client backs up into the subscriptions'
	// bounded queues, which overflow into reading the log, not into memory.
	ctx, stop := context.WithCancel(ctx)
	ch := make(chan taggedBatch, len(parts))
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			defer parts[i].sub.Close()
			for batch := range parts[i].sub.Batches() {
				select {
				case ch <- taggedBatch{i, slices.Clone(batch)}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	defer func() {
		// Closing the subscriptions ends their iterators, wherever they wait.
		stop()
		for _, p := range parts {
			p.sub.Close()
		}
		wg.Wait()
	}()

	sw := s.startResponse(w, f)
	last := make([]txlog.Cursor, len(parts))
	for i, p := range parts {
		last[i] = p.sub.StartCursor()
	}
	compound := func() string {
		return (&multiCursor{log: s.Broker.LogID(), names: hash, pos: last}).String()
	}
	pre := f.preamble(nil) // goes out with the first batch
	targets := make([]subscription.Target, len(parts))
	for i, p := range parts {
		targets[i] = p.target
	}
	auth := s.reauth(r, targets...)
	for {
		var tb taggedBatch
		select {
		case tb = <-ch:
		case <-ctx.Done():
			if code, ok := endCode(ctx); ok {
				id := compound()
				e := errorEvent(0, code, context.Cause(ctx).Error()+"; resume from the cursor", id)
				sw.write(f.named(pre, e, nil, id))
			}
			return
		}
		// A pooled buffer, held until the batch is written: see
		// writeBuffers.
		bp := getWriteBuffer()
		buf := append((*bp)[:0], pre...)
		pre = nil
		for {
			auth.batch()
			for i := range tb.events {
				e := &tb.events[i]
				if err := auth.check(e); err != nil {
					id := compound()
					sw.write(f.named(buf, errorEvent(e.Txn, CodePermissionDenied, err.Error(), id), nil, id))
					return
				}
				if e.HasCursor() {
					last[tb.part] = e.Cursor
				}
				id := ""
				if e.HasCursor() || e.Type == subscription.TypeError {
					id = compound()
				}
				buf = f.named(buf, e, parts[tb.part].quoted, id)
				if e.Type == subscription.TypeError {
					sw.write(buf)
					return
				}
			}
			// Drain what else is ready into the same write.
			select {
			case tb = <-ch:
				continue
			default:
			}
			break
		}
		ok := sw.write(buf)
		putWriteBuffer(bp, buf)
		if !ok {
			return
		}
	}
}
