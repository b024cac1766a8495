package transport

import (
	"context"
	"net/http"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// framer writes one wire format: NDJSON or SSE.
type framer interface {
	header(h http.Header)
	protocol() string // ProtocolSSE or ProtocolNDJSON
	preamble(dst []byte) []byte
	// frame appends one event. name is the subscription's JSON-quoted name
	// on a stream of several subscriptions, nil for the only one or for an
	// event of the whole stream (its end); id is what resumes the stream
	// after this event (SSE's id), "" for none.
	frame(dst []byte, e *subscription.Event, name []byte, id string) []byte
}

// open starts one stream of one or several subscriptions (its parts): it
// checks the request, subscribes, and writes the response's header. It
// returns nil, having answered, when the stream does not start; otherwise
// the pump's run writes every batch of events with one write and one
// flush, until the client goes, the broker ends the stream, or the server
// does (shutdown, maximum lifetime, a refused re-authorization), in which
// case it ends the stream with an error event that carries the cursor to
// resume from.
//
// Single and multiplexed streams share this one writer, so that what a
// stream promises (order, resumable cursors, the snapshot rule the broker
// keeps, re-authorization, the ending events) is written once.
//
// Opening and running are two calls, so that the frames of the handler
// that wait while the stream is idle stay small: a goroutine's stack
// shrinks at GC only when less than a quarter of it is in use, and the
// request's parsing and the subscribing need large frames.
func (s *Server) open(w http.ResponseWriter, r *http.Request, req *StreamRequest, f framer) *pump {
	// One allocation for the stream's state, which lives as long as it.
	p := &pump{s: s, r: r, f: f}
	if err := s.parts(r, req, &p.ps); err != nil {
		s.writeErr(w, r, err)
		return nil
	}
	p.st.protocol, p.st.remote, p.st.started = f.protocol(), r.RemoteAddr, time.Now()
	if !s.begin(w, r, &p.st, len(p.ps.list)) {
		return nil
	}
	started := false
	defer func() {
		if !started {
			s.finish(&p.st)
		}
	}()
	// The subscriptions end with the request's context (the client went
	// away); the server ends them through p.st. The only subscription of
	// a stream is closed by runOne when the request's context ends: one
	// more watcher of that context would cost its map of children and an
	// entry for as long as the stream lasts.
	ctx := r.Context()
	if !p.ps.multi() {
		ctx = context.Background()
	}
	if err := p.ps.subscribe(ctx, s.Broker, orDefault(s.Heartbeat, DefaultHeartbeat)); err != nil {
		s.writeErr(w, r, err)
		return nil
	}
	if !s.detach(w, r, f, p) {
		s.startResponse(w, f, &p.sw)
	}
	p.sw.counters = &s.counters
	p.st.mu.Lock()
	p.st.detached, p.st.counted = p.sw.conn != nil, true
	p.st.mu.Unlock()
	s.counters.open[protocolIndex(p.st.protocol)].Add(1)
	p.st.watch(&p.ps, nil)
	p.pre = f.preamble(nil)
	if s.Authorize == nil && p.sw.conn != nil {
		r = nil // a detached stream keeps no request it does not need
	}
	s.reauth(&p.auth, r, &p.ps)
	p.r = r
	started = true
	return p
}

// openAside runs open on a goroutine of its own, and waits for it. The
// handler's goroutine, which waits for as long as the stream lasts, then
// never runs the deep calls of parsing, authorizing and subscribing: its
// stack stays as small as it started (a goroutine's stack that grew
// shrinks at GC only by halves, and only while less than a quarter is in
// use, which net/http's frames below the handler already exceed at 4
// KiB). A panic in open (an Authorize hook's, say) is raised again on the
// handler's goroutine, where net/http recovers it as before.
func openAside(open func(http.ResponseWriter, *http.Request) *pump, w http.ResponseWriter, r *http.Request) *pump {
	type result struct {
		p      *pump
		panicV any
	}
	ch := make(chan result, 1)
	go func() {
		done := false
		defer func() {
			if !done {
				ch <- result{panicV: recover()}
			}
		}()
		p := open(w, r)
		done = true
		ch <- result{p: p}
	}()
	res := <-ch
	if res.panicV != nil {
		panic(res.panicV)
	}
	return res.p
}

// pump is a stream's state, and writes its batches of events, framed, to
// the response.
type pump struct {
	s    *Server
	r    *http.Request
	f    framer
	ps   parts
	st   stream
	sw   streamWriter
	auth reauthorization
	pre  []byte // the preamble, which goes out with the first batch
}

// run pumps the stream, then closes its subscriptions and releases it.
func (p *pump) run() {
	if p.sw.conn != nil {
		// Detached: the workers write it, and its end releases it.
		p.ps.list[0].sub.Deliver(p.writeBatch)
		return
	}
	defer p.close()
	if len(p.ps.list) == 1 {
		p.runOne()
	} else {
		p.runMany()
	}
}

func (p *pump) close() {
	p.ps.close()
	p.s.finish(&p.st)
}

// runOne pumps the batches of a stream's only subscription, the common
// case. The broker's delivery workers frame and write them
// (broker.Subscription.Deliver), while the handler waits for the end in
// a shallow frame: with thousands of streams, a commit wakes a few
// workers instead of a goroutine per stream (which starved the committer
// and shrank batches to one event), and an idle stream's goroutine keeps
// a small stack, since the deep write path runs on the workers'. A write
// that blocks on a slow client holds one worker, which the broker
// replaces after a few milliseconds.
func (p *pump) runOne() {
	sub := p.ps.list[0].sub
	ended := sub.Deliver(p.writeBatch)
	select {
	case <-ended:
	case <-p.r.Context().Done(): // the client went away
		sub.Close()
		<-ended
	}
	p.end()
}

// writeBatch writes a batch of the only subscription's events; false
// ends the stream. A nil batch is the end (see Deliver), which runOne
// handles, or detachedEnd on a detached stream.
func (p *pump) writeBatch(batch []subscription.Event) bool {
	if batch == nil {
		if p.sw.conn != nil {
			p.detachedEnd()
		}
		return false
	}
	return p.write(func(buf []byte) ([]byte, bool) { return p.frame(buf, 0, batch) })
}

// runMany pumps the batches of several subscriptions: what is ready is
// drained into one write.
func (p *pump) runMany() {
	ctx, cancel := context.WithCancel(p.r.Context())
	defer cancel()
	p.st.watch(&p.ps, cancel)
	ch, stop := p.ps.multiplex(ctx)
	defer stop()
	for {
		var tb taggedBatch
		select {
		case tb = <-ch:
		case <-ctx.Done():
			p.end()
			return
		}
		ok := p.write(func(buf []byte) ([]byte, bool) {
			for {
				var more bool
				if buf, more = p.frame(buf, tb.part, tb.events); !more {
					return buf, false
				}
				select {
				case tb = <-ch:
				default:
					return buf, true
				}
			}
		})
		if !ok {
			return
		}
	}
}

// write frames into a pooled buffer and writes it with one write and one
// flush. It reports whether the stream goes on: fill reports false when
// the stream ends with what it framed (an error event), and the write
// fails when the client went away or stopped reading.
func (p *pump) write(fill func(buf []byte) ([]byte, bool)) bool {
	bp := getWriteBuffer()
	buf, start := p.sw.begin((*bp)[:0])
	buf = append(buf, p.pre...)
	p.pre = nil
	buf, more := fill(buf)
	ok := p.sw.write(buf, start)
	putWriteBuffer(bp, buf)
	if !ok {
		p.s.logger().Debug("transport: stream cut: the client went away or stopped reading", "remote", p.st.remote, "cursor", p.ps.resume())
	}
	return ok && more
}

// frame appends the events of one batch of part i. It reports false when
// the stream ends with them: an error event (which the broker sends last),
// or a refused re-authorization, which it frames itself.
func (p *pump) frame(buf []byte, i int, batch []subscription.Event) ([]byte, bool) {
	pt := &p.ps.list[i]
	p.auth.batch()
	for j := range batch {
		e := &batch[j]
		if err := p.auth.check(e); err != nil {
			return p.ending(buf, e.Txn, CodePermissionDenied, err.Error()), false
		}
		if e.HasCursor() {
			pt.last = e.Cursor
		}
		buf = p.f.frame(buf, e, pt.quoted, p.ps.id(e))
		if e.Type == subscription.TypeError {
			return buf, false
		}
	}
	return buf, true
}

// end writes the stream's ending when the server ended it (shutdown,
// maximum lifetime); nothing when the client went away.
func (p *pump) end() {
	cause := p.st.ended()
	if code, ok := endCode(cause); ok {
		p.write(func(buf []byte) ([]byte, bool) {
			return p.ending(buf, p.ps.lastTxn(), code, cause.Error()+"; resume from the cursor"), false
		})
	}
}

// ending appends an error event of the whole stream, with the cursor that
// resumes all of it.
func (p *pump) ending(buf []byte, txn txlog.Txn, code, description string) []byte {
	cursor := p.ps.resume()
	id := ""
	if p.ps.multi() {
		id = cursor // SSE resumes a multiplexed stream from its error event too
	}
	return p.f.frame(buf, errorEvent(txn, code, description, cursor), nil, id)
}
