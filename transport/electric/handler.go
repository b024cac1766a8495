package electric

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/cors"
	"github.com/tidings/tidings/internal/streamset"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// Handler serves GET {prefix}/v1/shape, Electric's shape endpoint, from
// the broker and settings of a transport.Server: mount it at any prefix
// (mux.Handle("/electric/", h) serves /electric/v1/shape) and give the
// client that URL. It must have a Server; the rest has defaults.
type Handler struct {
	// Server gives the broker and what this front shares with the native
	// transport: Authorize (asked with the request and the shape's target
	// before every response; with it, responses are cached privately),
	// AllowedOrigins and AllowCredentials, MaxStreamsPerConn (SSE
	// responses count), WriteTimeout and ShutdownWindow.
	Server *transport.Server
	// LongPollHold is how long a live long-poll waits for a change before
	// it answers up-to-date; default 20s, under the client's 45s.
	LongPollHold time.Duration
	// SSELifetime is how long a live SSE response lasts before the client
	// reconnects with its offset, as Electric's do (so that caches and
	// collapsing work for SSE too); default 60s, less up to a tenth so
	// that clients do not all come back at once.
	SSELifetime time.Duration
	// KeepAlive is the interval of SSE comments while idle; default 15s.
	KeepAlive time.Duration

	flights flights
	live    streamset.Set
}

// The defaults of the Handler's durations.
const (
	DefaultLongPollHold = 20 * time.Second
	DefaultSSELifetime  = 60 * time.Second
	DefaultKeepAlive    = 15 * time.Second
)

// The headers a page may read: a hidden electric-* header is, to the
// client, a missing one (MissingHeadersError).
const exposeHeaders = "electric-cursor, electric-handle, electric-offset, electric-schema, electric-up-to-date, electric-snapshot, etag, retry-after"

// ServeHTTP answers GET (and its CORS preflight) on a path that ends in
// /v1/shape; anything else is a 404 in Electric's error shape.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	policy := h.corsPolicy(r)
	shape := strings.HasSuffix(r.URL.Path, "/v1/shape")
	if shape && policy.Preflight(w, r, "GET, OPTIONS") {
		return
	}
	policy.Set(w, r)
	switch {
	case !shape:
		writeJSONError(w, http.StatusNotFound, "Not found: this server answers /v1/shape", nil)
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", "GET, OPTIONS")
		writeJSONError(w, http.StatusMethodNotAllowed, "Use GET", nil)
		return
	}
	s := h.Server
	req, err := parseRequest(r, s.Broker.Schema())
	var pe *paramError
	switch {
	case errors.As(err, &pe):
		writeParamError(w, pe)
		return
	case errors.Is(err, errForeignOffset):
		// An offset of another server (Electric's 0_inf): start again.
		h.mustRefetch(w, r, &shapeRequest{def: ""})
		return
	case err != nil:
		writeParamError(w, &paramError{"request", err.Error()})
		return
	}
	if s.Authorize != nil {
		if err := s.Authorize(r, req.target); err != nil {
			if errors.Is(err, transport.ErrUnauthorized) {
				writeJSONError(w, http.StatusUnauthorized, "Unauthorized", nil)
			} else {
				writeJSONError(w, http.StatusForbidden, "Forbidden", nil)
			}
			return
		}
	}
	switch req.offset.kind {
	case offsetInitial:
		h.initial(w, r, req)
		return
	case offsetNow:
		h.now(w, r, req)
		return
	}
	if !h.validHandle(req) {
		h.mustRefetch(w, r, req)
		return
	}
	switch {
	case req.sse:
		h.serveSSE(w, r, req)
	case req.live:
		h.longPoll(w, r, req)
	default:
		h.catchUp(w, r, req)
	}
}

// corsPolicy is the Server's origins, with the client's headers: a
// preflight allows the headers it asks for (the client sends whatever the
// application configured, auth included), as Electric does.
func (h *Handler) corsPolicy(r *http.Request) *cors.Policy {
	allow := "Authorization, Content-Type"
	if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" && isHeaderList(asked) {
		allow = asked
	}
	return &cors.Policy{
		Origins:       h.Server.AllowedOrigins,
		Credentials:   h.Server.AllowCredentials,
		AllowHeaders:  allow,
		ExposeHeaders: exposeHeaders,
	}
}

// isHeaderList reports whether s is a list of header names, so that
// nothing else is echoed into a response header.
func isHeaderList(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == ',' || c == ' ') {
			return false
		}
	}
	return len(s) <= 1024
}

// validHandle reports whether the request's handle names this shape of
// this log and its offset is not before the handle's start or beyond the
// head. Whether the log still holds the offset is the read's to say
// (ErrHistoryUnavailable, a 409 too).
func (h *Handler) validHandle(req *shapeRequest) bool {
	b := h.Server.Broker
	hash, s, err := parseHandle(req.handle)
	if err != nil || hash != shapeHash(b.LogID(), req.def) {
		return false
	}
	return s <= req.offset.txn && req.offset.txn <= b.Head()
}

// mustRefetch answers 409: the client drops its rows and starts again from
// -1 with the new handle. The handle differs from the request's and from
// the one the client says it dropped, or the client would take the answer
// for a stale cached one.
func (h *Handler) mustRefetch(w http.ResponseWriter, r *http.Request, req *shapeRequest) {
	b := h.Server.Broker
	s := b.Head()
	nh := makeHandle(b.LogID(), req.def, s)
	for nh == req.handle || nh == req.expired || nh == r.URL.Query().Get("handle") {
		s++
		nh = makeHandle(b.LogID(), req.def, s)
	}
	hd := w.Header()
	hd.Set("Electric-Handle", nh)
	hd.Set("Content-Type", "application/json")
	h.cacheControl(hd, "max-age=60, must-revalidate")
	w.WriteHeader(http.StatusConflict)
	w.Write([]byte(mustRefetchBody))
}

// cacheControl sets Cache-Control as Electric does, but private (and
// varying on Authorization) when responses depend on who asks.
func (h *Handler) cacheControl(hd http.Header, v string) {
	if h.Server.Authorize != nil {
		hd.Set("Cache-Control", "private, "+v)
		hd.Add("Vary", "Authorization")
		return
	}
	hd.Set("Cache-Control", "public, "+v)
}

// initial answers offset=-1: the shape's rows at one txn, S, and the
// handle for them. Concurrent identical requests share one snapshot.
func (h *Handler) initial(w http.ResponseWriter, r *http.Request, req *shapeRequest) {
	res, ok := h.flights.do(r.Context(), nil, "s\x00"+req.def, func(ctx context.Context) *result { return h.snapshot(ctx, req) })
	if !ok {
		return
	}
	if res.err != nil {
		h.writeReadError(w, r, req, res.err)
		return
	}
	handle := makeHandle(h.Server.Broker.LogID(), req.def, res.h)
	off := offset{offsetAt, res.h}.String()
	hd := w.Header()
	hd.Set("Electric-Handle", handle)
	hd.Set("Electric-Offset", off)
	hd.Set("Electric-Schema", schemaHeader)
	h.cacheControl(hd, "max-age=604800, s-maxage=3600, stale-while-revalidate=2629746")
	h.writeBody(w, r, `"`+handle+":-1:"+off+`"`, res.json)
}

// now answers offset=now: nothing but up-to-date at the head.
func (h *Handler) now(w http.ResponseWriter, r *http.Request, req *shapeRequest) {
	b := h.Server.Broker
	head := b.Head()
	handle := makeHandle(b.LogID(), req.def, head)
	off := offset{offsetAt, head}.String()
	hd := w.Header()
	hd.Set("Electric-Handle", handle)
	hd.Set("Electric-Offset", off)
	hd.Set("Electric-Schema", schemaHeader)
	hd.Set("Electric-Up-To-Date", "")
	h.cacheControl(hd, "max-age=60, stale-while-revalidate=300")
	h.writeBody(w, r, `"`+handle+":now:"+off+`"`, appendUpToDate([]byte{'['}, head))
}

// catchUp answers a request without live: the changes after its offset,
// at once.
func (h *Handler) catchUp(w http.ResponseWriter, r *http.Request, req *shapeRequest) {
	from := req.offset.txn
	res, ok := h.flights.do(r.Context(), nil, "c\x00"+req.def+"\x00"+req.offset.String(), func(ctx context.Context) *result {
		return h.read(ctx, req, from, false)
	})
	if !ok {
		return
	}
	if res.err != nil {
		h.writeReadError(w, r, req, res.err)
		return
	}
	hd := w.Header()
	h.changeHeaders(hd, req, res)
	hd.Set("Electric-Schema", schemaHeader)
	h.cacheControl(hd, "max-age=60, stale-while-revalidate=300")
	h.writeBody(w, r, etag(req, res, false), res.json)
}

// longPoll answers live=true without SSE: the changes after its offset
// as soon as there are some, else up-to-date after LongPollHold.
// Concurrent identical requests share the wait, the read and the body.
func (h *Handler) longPoll(w http.ResponseWriter, r *http.Request, req *shapeRequest) {
	ctx, done, ok := h.liveStart(w, r)
	if !ok {
		return
	}
	defer done()
	res, ok := h.flights.do(ctx, nil, liveKey(req, req.offset.txn), h.holdRead(req, req.offset.txn))
	if !ok {
		if errors.Is(context.Cause(ctx), errShutdown) {
			w.Header().Set("Retry-After", "1")
			writeJSONError(w, http.StatusServiceUnavailable, "The server is shutting down", nil)
		}
		return
	}
	if res.err != nil {
		h.writeReadError(w, r, req, res.err)
		return
	}
	hd := w.Header()
	h.changeHeaders(hd, req, res)
	hd.Set("Electric-Cursor", liveCursor(time.Now(), req.cursor))
	h.cacheControl(hd, "max-age=5, stale-while-revalidate=5")
	h.writeBody(w, r, etag(req, res, !res.changed()), res.json)
}

// liveKey names a waiting read: the shape, and where it starts.
func liveKey(req *shapeRequest, from txlog.Txn) string {
	return "l\x00" + req.def + "\x00" + strconv.FormatUint(uint64(from), 10)
}

// changeHeaders are those of a response with changes: the handle, and
// the offset the response brings the client to.
func (h *Handler) changeHeaders(hd http.Header, req *shapeRequest, res *result) {
	hd.Set("Electric-Handle", req.handle)
	hd.Set("Electric-Offset", offset{offsetAt, res.h}.String())
	if res.upToDate {
		hd.Set("Electric-Up-To-Date", "")
	}
}

// etag is Electric's: the handle, the request's offset and the response's;
// with unique, also the read's number, for an empty live answer whose
// offsets alone may repeat.
func etag(req *shapeRequest, res *result, unique bool) string {
	e := `"` + req.handle + ":" + req.offset.String() + ":" + offset{offsetAt, res.h}.String()
	if unique {
		e += ":" + strconv.FormatUint(res.seq, 10)
	}
	return e + `"`
}

// writeBody writes a 200 with its ETag, or a 304 to a request that has
// it already.
func (h *Handler) writeBody(w http.ResponseWriter, r *http.Request, tag string, body []byte) {
	hd := w.Header()
	hd.Set("ETag", tag)
	if r.Header.Get("If-None-Match") == tag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// writeReadError answers a read that failed: 409 when the offset is no
// longer in the log (the client starts again), 503 with Retry-After while
// the broker closes (the client retries), 500 otherwise.
func (h *Handler) writeReadError(w http.ResponseWriter, r *http.Request, req *shapeRequest, err error) {
	switch {
	case errors.Is(err, txlog.ErrHistoryUnavailable), errors.Is(err, txlog.ErrInvalidCursor):
		h.mustRefetch(w, r, req)
	case errors.Is(err, broker.ErrClosed), errors.Is(err, errSnapshotCut):
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "The server is shutting down", nil)
	case errors.Is(err, broker.ErrUnknownCollection), errors.Is(err, broker.ErrUnknownIndex):
		writeParamError(w, &paramError{"table", err.Error()})
	default:
		h.logger().Error("electric: reading a shape", "error", err)
		writeJSONError(w, http.StatusInternalServerError, "Internal error", nil)
	}
}

// Electric's cursor counts 20-second buckets from its epoch.
var cursorEpoch = time.Date(2024, 10, 9, 0, 0, 0, 0, time.UTC)

// liveCursor is the electric-cursor of a live response: the end of the
// current 20 s bucket, so that clients at one offset share a URL (and a
// cache entry, and a collapsed read); when that is the request's own
// cursor, a number derived from it, so that the next URL differs, yet is
// the same for every identical request.
func liveCursor(now time.Time, req string) string {
	c := int64(math.Ceil(now.Sub(cursorEpoch).Seconds()/20)) * 20
	if s := strconv.FormatInt(c, 10); s != req {
		return s
	}
	return strconv.FormatInt(c+1+int64(xxhash.Sum64String(req)%3600), 10)
}

func (h *Handler) logger() *slog.Logger {
	if h.Server.Logger != nil {
		return h.Server.Logger
	}
	return slog.Default()
}
