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
}

// serve runs one stream: it checks the request, subscribes, and writes
// every batch of events with one write and one flush, until the client
// goes, the broker ends the stream, or the server does (shutdown, maximum
// lifetime, a refused re-authorization), in which case it ends the stream
// with an error event that carries the cursor to resume from.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, req StreamRequest, f framer) {
	target, opt, err := req.target()
	if err != nil {
		writeError(w, errorFor(err))
		return
	}
	if s.Authorize != nil {
		if err := s.Authorize(r, target); err != nil {
			writeError(w, authError(err))
			return
		}
	}
	release, ok := acquire(r, orDefault(s.MaxStreamsPerConn, DefaultMaxStreamsPerConn))
	if !ok {
		writeError(w, &Error{http.StatusTooManyRequests, CodeTooManyStreams,
			fmt.Sprintf("this connection has %d streams open already; open another connection", orDefault(s.MaxStreamsPerConn, DefaultMaxStreamsPerConn))})
		return
	}
	defer release()

	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	st := &stream{cancel: cancel}
	if !s.register(st) {
		writeError(w, &Error{http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down"})
		return
	}
	defer s.unregister(st)
	defer st.stopTimers()
	st.endAfter(orDefault(s.MaxLifetime, DefaultMaxLifetime), errLifetime)

	opt.Heartbeat = orDefault(s.Heartbeat, DefaultHeartbeat)
	sub, err := s.Broker.Subscribe(ctx, target, opt)
	if err != nil {
		writeError(w, errorFor(err))
		return
	}
	defer sub.Close()

	f.header(w.Header())
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	writeTimeout := orDefault(s.WriteTimeout, DefaultWriteTimeout)
	write := func(buf []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // not every writer has deadlines
		if _, err := w.Write(buf); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	buf := f.preamble(nil)
	var last txlog.Cursor
	ended := false
	for batch := range sub.Batches() {
		for i := range batch {
			e := &batch[i]
			if e.Type == subscription.TypeStatus && s.Authorize != nil {
				if err := s.Authorize(r, target); err != nil {
					buf = f.event(buf, errorEvent(e.Txn, CodePermissionDenied, err.Error(), last))
					write(buf)
					return
				}
			}
			buf = f.event(buf, e)
			if e.HasCursor() {
				last = e.Cursor
			}
			ended = e.Type == subscription.TypeError
		}
		if !write(buf) {
			return
		}
		buf = buf[:0]
	}
	if ended {
		return
	}
	var code string
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errShutdown):
		code = CodeShuttingDown
	case errors.Is(cause, errLifetime):
		code = CodeStreamLifetime
	default:
		return // the client went away
	}
	write(f.event(buf, errorEvent(last.Pos.Txn, code, context.Cause(ctx).Error()+"; resume from the cursor", last)))
}

func errorEvent(txn txlog.Txn, code, description string, c txlog.Cursor) *subscription.Event {
	e := &subscription.Event{Type: subscription.TypeError, Txn: txn, Action: code}
	e.JSON = subscription.AppendError(nil, txn, code, description, c.String())
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
