package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Why a stream's context ended, when the server ended it.
var (
	errShutdown = errors.New("the server is shutting down")
	errLifetime = errors.New("the stream reached its maximum lifetime")
)

// stream is one open stream, as Shutdown sees it.
type stream struct {
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	timers []*time.Timer
}

// endAfter ends the stream with cause after d.
func (st *stream) endAfter(d time.Duration, cause error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.timers = append(st.timers, time.AfterFunc(d, func() { st.cancel(cause) }))
}

func (st *stream) stopTimers() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, t := range st.timers {
		t.Stop()
	}
}

// framer writes one wire format: NDJSON or SSE.
type framer interface {
	header(h http.Header)
	preamble(dst []byte) []byte
	event(dst []byte, e *subscription.Event) []byte
	// named frames an event of a multiplexed stream: name is the
	// subscription's JSON-quoted name, id the stream's compound cursor
	// (used by SSE, whose Last-Event-ID must resume every subscription).
	named(dst []byte, e *subscription.Event, name []byte, id string) []byte
}

// serve runs one stream of one subscription: it checks the request,
// subscribes, and writes every batch of events with one write and one
// flush, until the client goes, the broker ends the stream, or the server
// does (shutdown, maximum lifetime, a refused re-authorization), in which
// case it ends the stream with an error event that carries the cursor to
// resume from.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, req StreamRequest, f framer) {
	if len(req.Subscriptions) > 0 {
		s.serveMulti(w, r, req, f)
		return
	}
	target, opt, err := req.target()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !s.authorize(w, r, target) {
		return
	}
	ctx, end, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer end()

	opt.Heartbeat = orDefault(s.Heartbeat, DefaultHeartbeat)
	sub, err := s.Broker.Subscribe(ctx, target, opt)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	defer sub.Close()

	sw := s.startResponse(w, f)
	pre := f.preamble(nil) // goes out with the first batch
	var last txlog.Cursor
	ended := false
	auth := s.reauth(r, target)
	// A snapshot cannot be resumed halfway: until its last page the stream
	// offers no cursor (the start event goes without its SSE id), so that
	// a client cut off mid-snapshot starts again and gets all of it; the
	// last page carries the start cursor, from which the changes resume.
	snapshotting := opt.Snapshot && opt.Cursor == ""
	var start txlog.Cursor
	for batch := range sub.Batches() {
		bp := getWriteBuffer()
		buf := append((*bp)[:0], pre...)
		pre = nil
		auth.batch()
		for i := range batch {
			e := &batch[i]
			if err := auth.check(e); err != nil {
				buf = f.event(buf, errorEvent(e.Txn, CodePermissionDenied, err.Error(), cursorText(last)))
				sw.write(buf)
				return
			}
			if snapshotting {
				cp := *e
				switch {
				case e.Type == subscription.TypeStart:
					start, cp.Cursor, cp.CursorText = e.Cursor, txlog.Cursor{}, ""
				case e.Type == subscription.TypeSnapshot && e.Action == subscription.ActionLastPage:
					cp.Cursor, cp.CursorText = start, start.String()
					snapshotting = false
				}
				e = &cp
			}
			buf = f.event(buf, e)
			if e.HasCursor() {
				last = e.Cursor
			}
			ended = e.Type == subscription.TypeError
		}
		ok := sw.write(buf)
		putWriteBuffer(bp, buf)
		if !ok {
			s.logger().Debug("transport: stream cut: the client went away or stopped reading", "remote", r.RemoteAddr, "cursor", cursorText(last))
			return
		}
	}
	if ended {
		return
	}
	if code, ok := endCode(ctx); ok {
		sw.write(f.event(pre, errorEvent(last.Pos.Txn, code, context.Cause(ctx).Error()+"; resume from the cursor", cursorText(last))))
	}
}

// reauthorization asks Authorize again every Heartbeat during a stream:
// on a heartbeat when the stream is idle, and before the next batch when
// it is busy (a busy stream sends no heartbeats).
type reauthorization struct {
	s       *Server
	r       *http.Request
	targets []subscription.Target
	period  time.Duration
	next    time.Time
	due     bool
}

func (s *Server) reauth(r *http.Request, targets ...subscription.Target) *reauthorization {
	period := orDefault(s.Heartbeat, DefaultHeartbeat)
	return &reauthorization{s: s, r: r, targets: targets, period: period, next: time.Now().Add(period)}
}

// batch is called at the start of each batch of events.
func (a *reauthorization) batch() {
	a.due = a.s.Authorize != nil && !time.Now().Before(a.next)
}

// check is called before each event; it returns Authorize's refusal of
// any of the stream's targets, when a check is due.
func (a *reauthorization) check(e *subscription.Event) error {
	if a.s.Authorize == nil || !(a.due || e.Type == subscription.TypeStatus) {
		return nil
	}
	a.due, a.next = false, time.Now().Add(a.period)
	for _, t := range a.targets {
		if err := a.s.Authorize(a.r, t); err != nil {
			return err
		}
	}
	return nil
}

// cursorText is the cursor to resume from, or "" where there is none yet
// (in the middle of a snapshot: start again).
func cursorText(c txlog.Cursor) string {
	if c.Log == (txlog.ID{}) {
		return ""
	}
	return c.String()
}

// authorize asks the Authorize hook, answering 401 or 403 on refusal.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, t subscription.Target) bool {
	if s.Authorize == nil {
		return true
	}
	if err := s.Authorize(r, t); err != nil {
		writeError(w, authError(err))
		return false
	}
	return true
}

// begin does what every stream does before it subscribes: it counts the
// stream on its connection (429 beyond the limit), registers it for
// Shutdown (503 while shutting down), and arms its maximum lifetime. The
// returned context ends with the stream; end releases it all.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) (ctx context.Context, end func(), ok bool) {
	max := orDefault(s.MaxStreamsPerConn, DefaultMaxStreamsPerConn)
	release, ok := acquire(r, max)
	if !ok {
		writeError(w, &Error{http.StatusTooManyRequests, CodeTooManyStreams,
			fmt.Sprintf("this connection has %d streams open already; open another connection", max)})
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	st := &stream{cancel: cancel}
	if !s.register(st) {
		cancel(nil)
		release()
		writeError(w, &Error{http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down"})
		return nil, nil, false
	}
	st.endAfter(orDefault(s.MaxLifetime, DefaultMaxLifetime), errLifetime)
	return ctx, func() {
		st.stopTimers()
		cancel(nil)
		s.unregister(st)
		release()
	}, true
}

// streamWriter writes a stream's bytes under a write deadline and flushes.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *Server) startResponse(w http.ResponseWriter, f framer) *streamWriter {
	f.header(w.Header())
	w.WriteHeader(http.StatusOK)
	return &streamWriter{w: w, rc: http.NewResponseController(w), timeout: orDefault(s.WriteTimeout, DefaultWriteTimeout)}
}

// writeBuffers are the buffers streams frame their batches in, shared:
// a stream holds one only from the start of a batch to the end of its
// write. A buffer of each stream's own would grow to its largest batch
// and stay that size: with thousands of streams and batches of a hundred
// events, the growing alone (allocating, zeroing, copying) costs a large
// share of the server's time, and the buffers hold memory in proportion
// to the streams. Shared, a few buffers grow once, and a batch still goes
// out in one write (splitting it would cost more syscalls: each write of
// a chunked response costs up to three).
var writeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer: a larger buffer (a long catch-up) is left to the GC
// rather than kept.
const maxPooledBuffer = 1 << 20

func getWriteBuffer() *[]byte { return writeBuffers.Get().(*[]byte) }

// putWriteBuffer returns bp, which buf (grown from it) replaces.
func putWriteBuffer(bp *[]byte, buf []byte) {
	if cap(buf) > maxPooledBuffer {
		return
	}
	*bp = buf[:0]
	writeBuffers.Put(bp)
}

func (sw *streamWriter) write(buf []byte) bool {
	sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout)) // not every writer has deadlines
	if _, err := sw.w.Write(buf); err != nil {
		return false
	}
	return sw.rc.Flush() == nil
}

// endCode is the error code of a stream the server ended, if it did.
func endCode(ctx context.Context) (string, bool) {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errShutdown):
		return CodeShuttingDown, true
	case errors.Is(cause, errLifetime):
		return CodeStreamLifetime, true
	}
	return "", false // the client went away
}

func errorEvent(txn txlog.Txn, code, description, cursor string) *subscription.Event {
	e := &subscription.Event{Type: subscription.TypeError, Txn: txn, Action: code}
	e.JSON = subscription.AppendError(nil, txn, code, description, cursor)
	return e
}

// authError is the response to an error from Authorize: 401 for
// ErrUnauthorized, 403 for anything else.
func authError(err error) *Error {
	if e := errorFor(err); e.Status == http.StatusUnauthorized {
		return e
	}
	return &Error{http.StatusForbidden, CodePermissionDenied, err.Error()}
}
