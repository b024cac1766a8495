package fauna

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/connlimit"
	"github.com/tidings/tidings/internal/cors"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/internal/streamset"
	"github.com/tidings/tidings/internal/wire"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
)

// Handler serves Fauna's v4 stream endpoints (POST /stream, and POST / for
// the Get the JS driver's document helper sends) and v10's event sources
// (POST /stream/1, /feed/1, and /query/1 for eventSource() queries) from the broker and
// settings of a transport.Server. It owns the root of its origin, because
// the drivers post to absolute paths: serve it from its own http.Server
// (or host), set up with transport.ConfigureServer for the per-connection
// stream limit.
type Handler struct {
	// Server gives the broker and what the Fauna front shares with the
	// native transport: Authorize (asked with the request, whose
	// Authorization header carries the driver's bearer secret, before a
	// stream or a Get), MaxStreamsPerConn, MaxSubscriptionsPerConn,
	// Heartbeat, WriteTimeout, BodyTimeout and MaxBodyBytes. Required.
	Server *transport.Server
	// TokenKey signs v10 event source tokens (HMAC-SHA256). Empty means a
	// random key per Handler: its tokens are refused by any other Handler
	// and after a restart. Give the same key to the Handlers of nodes that
	// share a log, so that a token minted on one is honoured by all.
	TokenKey []byte

	keyOnce sync.Once
	signKey []byte

	live streamset.Set // the open streams, for Shutdown

	lines   wire.FaunaLines // the Fauna lines of recent writes, shared by their subscribers
	lines10 wire.FaunaLines // the same for v10 event sources
}

// ServeHTTP answers POST /stream, POST /, POST /stream/1, /feed/1 and
// /query/1, and their CORS preflights; anything else is a 404 in Fauna's
// v4 error shape.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	known := r.URL.Path == "/stream" || r.URL.Path == "/" || r.URL.Path == "/stream/1" ||
		r.URL.Path == "/feed/1" || r.URL.Path == "/query/1"
	policy := h.corsPolicy()
	if known && policy.Preflight(w, r, "POST, OPTIONS") {
		return
	}
	policy.Set(w, r)
	switch {
	case r.URL.Path == "/stream" && r.Method == http.MethodPost:
		h.stream(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodPost:
		h.query(w, r)
	case r.URL.Path == "/stream/1" && r.Method == http.MethodPost:
		h.streamV10(w, r)
	case r.URL.Path == "/feed/1" && r.Method == http.MethodPost:
		h.feedV10(w, r)
	case r.URL.Path == "/query/1" && r.Method == http.MethodPost:
		h.queryV10(w, r)
	case known:
		w.Header().Set("Allow", "POST, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", "Use POST.")
	default:
		writeError(w, http.StatusNotFound, "bad request", "No endpoint "+strconv.Quote(r.URL.Path)+"; this server answers Fauna v4 streams and v10 event sources only.")
	}
}

// driverHeaders are the request headers the Fauna drivers send (faunadb
// 4.8.2 and fauna 2.5.0, read from their code), which a page's preflight
// asks for.
const driverHeaders = "Authorization, Content-Type, " +
	"X-FaunaDB-API-Version, X-Driver-Env, X-Last-Seen-Txn, X-Query-Timeout, X-Fauna-Tags, " +
	"X-Format, X-Typecheck, X-Performance-Hints, X-Query-Timeout-Ms, X-Linearized, " +
	"X-Max-Contention-Retries, X-Query-Tags, X-Last-Txn-Ts, Traceparent"

// corsPolicy is the transport.Server's AllowedOrigins and
// AllowCredentials, with the drivers' headers; X-Txn-Time is exposed
// because the v4 driver reads it.
func (h *Handler) corsPolicy() *cors.Policy {
	return &cors.Policy{
		Origins:       h.Server.AllowedOrigins,
		Credentials:   h.Server.AllowCredentials,
		AllowHeaders:  driverHeaders,
		ExposeHeaders: "X-Txn-Time",
	}
}

// Fauna's v4 error codes.
const (
	codeInvalidArgument = "invalid argument"
	codeNotFound        = "instance not found"
	codeUnauthorized    = "unauthorized"
	codePermission      = "permission denied"
	codeTooMany         = "too many requests"
	codeUnavailable     = "unavailable"
	codeInternal        = "internal server error"
)

// writeError answers with Fauna's v4 error shape, which the JS driver
// needs to raise its typed errors.
func writeError(w http.ResponseWriter, status int, code, description string) {
	b := append([]byte(`{"errors":[{"position":[],"code":`), jsondoc.AppendString(nil, code)...)
	b = append(b, `,"description":`...)
	b = jsondoc.AppendString(b, description)
	b = append(b, "}]}\n"...)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

// writeErr maps an error from the broker or the Authorize hook.
func writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, transport.ErrUnauthorized):
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "Unauthorized")
	case errors.Is(err, broker.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, "Document not found.")
	case errors.Is(err, broker.ErrUnknownCollection):
		writeError(w, http.StatusNotFound, codeNotFound, "Collection not found.")
	case errors.Is(err, broker.ErrUnknownIndex):
		writeError(w, http.StatusNotFound, codeNotFound, "Index not found.")
	case errors.Is(err, broker.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "The server is shutting down.")
	case errors.Is(err, broker.ErrInvalidTarget), errors.Is(err, broker.ErrInvalidOptions),
		errors.Is(err, broker.ErrInvalidRef), errors.Is(err, broker.ErrTermCount):
		writeError(w, http.StatusBadRequest, codeInvalidArgument, err.Error())
	default:
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			writeError(w, http.StatusRequestEntityTooLarge, codeInvalidArgument, fmt.Sprintf("The body is larger than %d bytes.", maxBytes.Limit))
			return
		}
		writeError(w, http.StatusInternalServerError, codeInternal, err.Error())
	}
}

// authorize asks the hook: ErrUnauthorized is 401, any other refusal 403.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, t subscription.Target) bool {
	if h.Server.Authorize == nil {
		return true
	}
	err := h.Server.Authorize(r, t)
	switch {
	case err == nil:
		return true
	case errors.Is(err, transport.ErrUnauthorized):
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "Unauthorized")
	default:
		writeError(w, http.StatusForbidden, codePermission, "Insufficient privileges to perform the action.")
	}
	return false
}

// body reads a request's body, answering a failure in v4's error shape,
// or v10's when v10 is set.
func (h *Handler) body(w http.ResponseWriter, r *http.Request, v10 bool) ([]byte, bool) {
	limit := h.Server.MaxBodyBytes
	if limit <= 0 {
		limit = transport.DefaultMaxBodyBytes
	}
	// A body sent slowly or never finished must not hold the handler.
	rc := http.NewResponseController(w)
	d := orDefault(h.Server.BodyTimeout, transport.DefaultBodyTimeout)
	rc.SetReadDeadline(time.Now().Add(d))
	// As in the native transport: should a read stay blocked past the
	// deadline, setting it again, in the past, wakes it.
	late := time.AfterFunc(d+d/2, func() { rc.SetReadDeadline(time.Now()) })
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	late.Stop()
	if err == nil {
		// Cleared only for a whole body: the server discards the rest of
		// an unfinished one before it answers, and must not wait for it.
		rc.SetReadDeadline(time.Time{})
	}
	if err != nil && v10 {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			writeV10Error(w, http.StatusRequestTimeout, "invalid_request", "The body did not arrive in time.")
		} else {
			writeV10Err(w, err)
		}
		return nil, false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		writeError(w, http.StatusRequestTimeout, codeInvalidArgument, "The body did not arrive in time.")
		return nil, false
	}
	if err != nil {
		writeErr(w, err)
		return nil, false
	}
	return b, true
}

func (h *Handler) logger() *slog.Logger {
	if h.Server.Logger != nil {
		return h.Server.Logger
	}
	return slog.Default()
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// stream serves POST /stream: one subscription, its events in Fauna's v4
// form, one event per write and flush (the Python driver reads each
// HTTP/2 DATA frame as one event).
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	s := h.Server
	fields, err := subscription.ParseFields(r.URL.Query().Get("fields"))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidArgument, err.Error())
		return
	}
	body, ok := h.body(w, r, false)
	if !ok {
		return
	}
	target, err := parseTarget(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidArgument, err.Error())
		return
	}
	if !h.authorize(w, r, target) {
		return
	}
	maxStreams := orDefault(s.MaxStreamsPerConn, transport.DefaultMaxStreamsPerConn)
	release, _, refusal := connlimit.From(r.Context()).Acquire(maxStreams, 1,
		orDefault(s.MaxSubscriptionsPerConn, transport.DefaultMaxSubscriptionsPerConn))
	if refusal != connlimit.Accepted {
		writeError(w, http.StatusTooManyRequests, codeTooMany,
			fmt.Sprintf("This connection has %d streams open already; open another connection.", maxStreams))
		return
	}
	defer release()
	ctx, done, ok := h.live.Track(r.Context())
	if !ok {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "The server is shutting down.")
		return
	}
	defer done()
	sub, err := s.Broker.Subscribe(ctx, target, subscription.Options{
		Fields:    fields,
		Heartbeat: orDefault(s.Heartbeat, transport.DefaultHeartbeat),
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	defer sub.Close()
	collection := ""
	if target.Kind == subscription.KindCollection {
		collection = target.Collection
	}

	hd := w.Header()
	hd.Set("Content-Type", "application/json;charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Txn-Time", strconv.FormatUint(uint64(sub.Start()), 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	writeTimeout := orDefault(s.WriteTimeout, transport.DefaultWriteTimeout)
	var buf []byte
	heartbeat := orDefault(s.Heartbeat, transport.DefaultHeartbeat)
	recheck := time.Now().Add(heartbeat)
	for e := range sub.Events() {
		// Authorize is asked again every Heartbeat, as the native
		// transport does, so that a revoked secret ends the stream.
		if s.Authorize != nil && !time.Now().Before(recheck) {
			recheck = time.Now().Add(heartbeat)
			if err := s.Authorize(r, target); err != nil {
				code := codePermission
				if errors.Is(err, transport.ErrUnauthorized) {
					code = codeUnauthorized
				}
				buf, _ = wire.AppendFaunaV4(buf[:0], wire.AppendError(nil, e.Txn, code, "Authorization was withdrawn.", ""), "")
				buf = append(buf, '\r', '\n')
				rc.SetWriteDeadline(time.Now().Add(writeTimeout))
				if _, err := w.Write(buf); err == nil {
					rc.Flush()
				}
				return
			}
		}
		var line []byte
		switch e.Type {
		case subscription.TypeVersion, subscription.TypeSet, subscription.TypeHistoryRewrite:
			// The events of a write: their Fauna line is shared.
			line, err = h.lines.Line(e.JSON, collection)
		default:
			// This stream's own (start, status, its end).
			buf, err = wire.AppendFaunaV4(buf[:0], e.JSON, collection)
			buf = append(buf, '\r', '\n')
			line = buf
		}
		if errors.Is(err, wire.ErrNoFaunaForm) {
			continue
		}
		if err != nil {
			h.logger().Error("fauna: an event has no Fauna form", "error", err)
			buf, _ = wire.AppendFaunaV4(buf[:0], wire.AppendError(nil, e.Txn, "internal", "an event could not be encoded", ""), "")
			line = append(buf, '\r', '\n')
			e.Type = subscription.TypeError
		}
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(line); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		if e.Type == subscription.TypeError {
			return
		}
	}
	if errors.Is(context.Cause(ctx), errShutdown) {
		// The v4 drivers never resume: say why the stream ends.
		buf, _ = wire.AppendFaunaV4(buf[:0], wire.AppendError(nil, s.Broker.Head(), "shutting_down", "The server is shutting down.", ""), "")
		buf = append(buf, '\r', '\n')
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(buf); err == nil {
			rc.Flush()
		}
	}
}

// query serves POST / for the one query the v4 stream helpers send: the
// JS driver's client.stream.document() asks {"get": <ref>} for its
// snapshot. Any other query is a 400.
func (h *Handler) query(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r, false)
	if !ok {
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || len(m) != 1 || m["get"] == nil {
		writeError(w, http.StatusBadRequest, codeInvalidArgument,
			"This server answers only Get(ref) of a document, which the stream helpers send; got "+compact(body))
		return
	}
	ref, err := parseRef(m["get"])
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidArgument, err.Error())
		return
	}
	if !h.authorize(w, r, subscription.Document(ref)) {
		return
	}
	b := h.Server.Broker
	head := b.Head()
	doc, found := b.Get(ref)
	if !found {
		// A document stream on the same ref tells an unknown collection
		// from a missing document; Get need not.
		writeError(w, http.StatusNotFound, codeNotFound, "Document not found.")
		return
	}
	if doc.TS > head {
		head = doc.TS
	}
	out := append([]byte(nil), `{"resource":`...)
	out, err = wire.AppendFaunaDoc(out, doc.Ref, doc.TS, doc.Data)
	if err != nil {
		writeErr(w, err)
		return
	}
	out = append(out, "}\n"...)
	hd := w.Header()
	hd.Set("Content-Type", "application/json;charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Txn-Time", strconv.FormatUint(uint64(head), 10))
	w.Write(out)
}
