package transport

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/tidings/tidings/internal/wire"
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

// begin does what every stream does before it subscribes: it counts the
// stream and its subs subscriptions on its connection (429 beyond the
// limits), registers it for Shutdown (503 while shutting down), and arms
// its maximum lifetime. The returned context ends with the stream; end
// releases it all.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, subs int) (ctx context.Context, end func(), ok bool) {
	release, refused := acquire(r, orDefault(s.MaxStreamsPerConn, DefaultMaxStreamsPerConn),
		subs, orDefault(s.MaxSubscriptionsPerConn, DefaultMaxSubscriptionsPerConn))
	if refused != nil {
		writeError(w, refused)
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
	e.JSON = wire.AppendError(nil, txn, code, description, cursor)
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
