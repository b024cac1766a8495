package transport

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/cors"
	"github.com/tidings/tidings/subscription"
)

// Server serves a broker over HTTP: NDJSON streams (Stream), Server-Sent
// Events (SSE), the pull feed (Feed), and, if AuthorizeWrite is set, a
// write endpoint (Write). As an http.Handler it routes POST {prefix}/stream,
// GET {prefix}/sse, GET {prefix}/feed and POST {prefix}/write by the last
// path element, so it mounts under any prefix; each part can also be
// mounted on its own.
//
// Only Broker is required; every other field has a working default. Set
// the fields before serving and do not change them afterwards. For the
// per-connection stream limit, the http.Server must be set up with
// ConfigureServer.
type Server struct {
	Broker *broker.Broker

	// MaxStreamsPerConn bounds the concurrent streams of one client
	// connection; the next is refused with 429 at once. Default 100.
	MaxStreamsPerConn int
	// MaxSubscriptionsPerConn bounds the subscriptions of the streams of
	// one client connection together (a stream may carry up to
	// MaxSubscriptionsPerStream): a stream that would pass it is refused
	// with 429 too_many_subscriptions. Default 1024.
	MaxSubscriptionsPerConn int
	// BodyTimeout bounds the time to read a request body (408 beyond), so
	// that a body sent slowly or never finished does not hold a handler.
	// Default 10s.
	BodyTimeout time.Duration
	// Heartbeat is the period of heartbeats on an idle stream (a status
	// event on NDJSON, a comment line on SSE). Default 15s.
	Heartbeat time.Duration
	// MaxLifetime ends a stream after this long with an error event
	// stream_lifetime that carries the cursor to resume from. Default 1h.
	MaxLifetime time.Duration
	// WriteTimeout bounds every write to a stream: a client that stops
	// reading is cut off and everything it held is freed. Default 15s.
	WriteTimeout time.Duration
	// MaxBodyBytes caps request bodies (413 beyond). Default 1 MiB.
	MaxBodyBytes int64
	// Retry is the reconnection delay sent to EventSource. Default 2s.
	Retry time.Duration
	// ShutdownWindow spreads the end of streams at Shutdown over a random
	// delay up to this long, so that clients do not all reconnect at once.
	// Default 2s.
	ShutdownWindow time.Duration
	// Authorize, if set, is asked before a stream starts and every
	// Heartbeat during it: an error refuses the stream (401 for
	// ErrUnauthorized, 403 otherwise) or ends it with permission_denied.
	// It must be safe for concurrent use.
	Authorize func(r *http.Request, t subscription.Target) error
	// AllowedOrigins lists the origins allowed cross-origin ("*" for any).
	AllowedOrigins []string
	// AllowCredentials lets the origins listed by name (never "*") send
	// credentials.
	AllowCredentials bool
	// AuthorizeWrite, if set, serves the write endpoint and is asked about
	// every transaction before it is committed: an error refuses it (401
	// for ErrUnauthorized, 403 otherwise) and nothing is written. Without
	// it there is no write endpoint (404). To let anyone who can reach the
	// server write, return nil; CORS still keeps other origins' pages out,
	// since the endpoint takes only application/json, which a browser
	// must preflight. It must be safe for concurrent use.
	AuthorizeWrite func(r *http.Request, req *WriteRequest) error
	// Logger receives what the server has to say; slog.Default() if nil.
	Logger *slog.Logger
	// Detach serves each HTTP/1.1 stream of one subscription (SSE and
	// NDJSON) without a goroutine or net/http's buffers: the handler takes
	// the connection over (http.Hijacker) and returns, and the broker's
	// delivery workers write the stream to it. An idle stream then costs
	// a few KiB instead of about 20. The price: a client that goes away
	// is noticed at the next write (a heartbeat at the latest), not at
	// once; http.Server's Shutdown and ConnState no longer see the
	// connection (Server.Shutdown still ends the stream); middleware sees
	// the handler return at once; Authorize, when asked again during the
	// stream, gets a request whose context has ended. HTTP/2 streams,
	// multiplexed streams and ResponseWriters that cannot be hijacked are
	// served as usual.
	Detach bool

	polls    collapse // concurrent long-polls of the feed
	counters counters
	mu       sync.Mutex
	streams  map[*stream]struct{}
	closing  bool
	handlers sync.WaitGroup
}

// Defaults of Server.
const (
	DefaultMaxStreamsPerConn       = 100
	DefaultMaxSubscriptionsPerConn = 1024
	DefaultBodyTimeout             = 10 * time.Second
	DefaultHeartbeat               = 15 * time.Second
	DefaultMaxLifetime             = time.Hour
	DefaultWriteTimeout            = 15 * time.Second
	DefaultMaxBodyBytes            = 1 << 20
	DefaultRetry                   = 2 * time.Second
	DefaultShutdownWindow          = 2 * time.Second
)

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

func (s *Server) logger() *slog.Logger { return orDefault(s.Logger, slog.Default()) }

// ServeHTTP routes by the last element of the path: stream, sse, feed,
// write.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	for len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	name := p[lastSlash(p)+1:]
	switch name {
	case "stream":
		s.Stream().ServeHTTP(w, r)
	case "sse":
		s.SSE().ServeHTTP(w, r)
	case "feed":
		s.Feed().ServeHTTP(w, r)
	case "write":
		if s.AuthorizeWrite != nil {
			s.Write().ServeHTTP(w, r)
			return
		}
		fallthrough
	default:
		s.cors(w, r)
		s.writeError(w, &Error{http.StatusNotFound, CodeNotFound, "no endpoint " + r.URL.Path})
	}
}

func lastSlash(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i
		}
	}
	return -1
}

// cors sets the CORS headers of a response, errors included, by the rule
// of internal/cors: an arbitrary Origin is never reflected with
// credentials.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	s.corsPolicy().Set(w, r)
}

func (s *Server) corsPolicy() *cors.Policy {
	return &cors.Policy{
		Origins:       s.AllowedOrigins,
		Credentials:   s.AllowCredentials,
		AllowHeaders:  "Content-Type, Authorization, Last-Event-ID",
		ExposeHeaders: "Retry-After",
	}
}

// endpoint wraps a handler with what every endpoint does first: answer a
// CORS preflight, set the CORS headers (errors included), refuse any
// method but methods with 405, and a query string that is not valid UTF-8
// with 400.
func (s *Server) endpoint(fn http.HandlerFunc, methods ...string) http.Handler {
	allow := strings.Join(methods, ", ") + ", OPTIONS"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The checks are a call of their own, so that their frame is not
		// on the stack of a stream while it waits (see open).
		if s.admit(w, r, methods, allow) {
			fn(w, r)
		}
	})
}

// admit does endpoint's checks; it reports whether the request goes on to
// the handler, or was answered.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, methods []string, allow string) bool {
	if s.preflight(w, r, allow) {
		return false
	}
	s.cors(w, r)
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", allow)
		s.writeError(w, &Error{http.StatusMethodNotAllowed, CodeInvalidRequest, "use " + methods[0]})
		return false
	}
	if r.URL.RawQuery != "" {
		if err := checkQuery(r.URL.Query()); err != nil {
			s.writeErr(w, r, err)
			return false
		}
	}
	return true
}

// preflight answers a CORS preflight; it reports whether r was one.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request, methods string) bool {
	return s.corsPolicy().Preflight(w, r, methods)
}

// Shutdown ends every stream with an error event shutting_down carrying
// its cursor, each after a random delay within ShutdownWindow, refuses new
// streams with 503, and returns when every stream handler has returned or
// ctx is done. Call it before http.Server.Shutdown, which does not wait
// for streams (they never go idle).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	window := orDefault(s.ShutdownWindow, DefaultShutdownWindow)
	for st := range s.streams {
		delay := time.Duration(rand.Int64N(int64(window) + 1))
		st.endAfter(delay, errShutdown)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// register adds a stream, or refuses it while shutting down.
func (s *Server) register(st *stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.streams == nil {
		s.streams = map[*stream]struct{}{}
	}
	s.streams[st] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) unregister(st *stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
	s.handlers.Done()
}
