package transport

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/tidings/tidings/internal/connlimit"
	"github.com/tidings/tidings/internal/wire"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Why a stream's context ended, when the server ended it.
var (
	errShutdown = errors.New("the server is shutting down")
	errLifetime = errors.New("the stream reached its maximum lifetime")
)

// stream is one open stream, as Shutdown sees it. It is part of the
// stream's pump, and ends the stream without a context of its own: a
// derived context per stream costs its allocations, the parent's Done
// channel and a map of children, for as long as the stream lasts.
type stream struct {
	mu       sync.Mutex
	cause    error // why the server ended the stream, once it has
	ps       *parts
	cancel   context.CancelFunc // a multiplexed stream's wait, once it waits
	release  func()             // the connection's count
	lifetime *time.Timer
	timers   []*time.Timer // Shutdown's

	// For Streams.
	protocol, remote string
	started          time.Time
	detached         bool
	counted          bool // in the Server's count of open streams
	conn             *connlimit.Counter
}

// endAfter ends the stream with cause after d.
func (st *stream) endAfter(d time.Duration, cause error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.timers = append(st.timers, time.AfterFunc(d, func() { st.end(cause) }))
}

// end ends the stream with cause: it closes its subscriptions, which ends
// their iterators wherever they wait, and a multiplexed stream's wait.
func (st *stream) end(cause error) {
	st.mu.Lock()
	if st.cause == nil {
		st.cause = cause
	}
	ps, cancel := st.ps, st.cancel
	st.mu.Unlock()
	if ps != nil {
		ps.closeSubs()
	}
	if cancel != nil {
		cancel()
	}
}

// watch hands the stream its subscriptions (and a multiplexed stream's
// cancel, or nil), for end; when the stream has ended already, it ends
// them at once.
func (st *stream) watch(ps *parts, cancel context.CancelFunc) {
	st.mu.Lock()
	st.ps, st.cancel = ps, cancel
	ended := st.cause != nil
	st.mu.Unlock()
	if ended {
		st.end(nil)
	}
}

// ended is why the server ended the stream, or nil.
func (st *stream) ended() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cause
}

func (st *stream) stopTimers() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lifetime.Stop()
	for _, t := range st.timers {
		t.Stop()
	}
}

// begin does what every stream does before it subscribes: it counts the
// stream and its subs subscriptions on its connection (429 beyond the
// limits), registers it for Shutdown (503 while shutting down), and arms
// its maximum lifetime. finish releases it all.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, st *stream, subs int) bool {
	release, refused := acquire(r, orDefault(s.MaxStreamsPerConn, DefaultMaxStreamsPerConn),
		subs, orDefault(s.MaxSubscriptionsPerConn, DefaultMaxSubscriptionsPerConn))
	if refused != nil {
		s.writeError(w, refused)
		return false
	}
	st.release = release
	st.conn = connlimit.From(r.Context())
	if !s.register(st) {
		release()
		s.writeError(w, &Error{http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down"})
		return false
	}
	st.mu.Lock()
	st.lifetime = time.AfterFunc(orDefault(s.MaxLifetime, DefaultMaxLifetime), func() { st.end(errLifetime) })
	st.mu.Unlock()
	return true
}

// finish releases what begin took.
func (s *Server) finish(st *stream) {
	if st.counted {
		s.counters.open[protocolIndex(st.protocol)].Add(-1)
	}
	st.stopTimers()
	s.unregister(st)
	st.release()
}

// endCode is the error code of a stream the server ended (cause, from
// stream.ended), if it did.
func endCode(cause error) (string, bool) {
	switch {
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
