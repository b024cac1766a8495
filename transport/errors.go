package transport

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/subscription"
)

// Error codes of error responses and error events.
const (
	CodeInvalidRequest     = "invalid_request"
	CodeNotFound           = "not_found"
	CodeHistoryUnavailable = subscription.CodeHistoryUnavailable
	CodeBodyTooLarge       = "body_too_large"
	CodeTooManyStreams     = "too_many_streams"
	CodeShuttingDown       = subscription.CodeShuttingDown
	CodeUnauthorized       = "unauthorized"
	CodePermissionDenied   = "permission_denied"
	CodeStreamLifetime     = "stream_lifetime"
	CodeConflict           = "conflict"
	// CodeUnsupportedMediaType: a write that is not application/json (415).
	CodeUnsupportedMediaType = "unsupported_media_type"
	// CodeRequestTimeout: a body that did not arrive within BodyTimeout (408).
	CodeRequestTimeout = "request_timeout"
	// CodeTooManySubscriptions: the connection holds MaxSubscriptionsPerConn
	// subscriptions already (429).
	CodeTooManySubscriptions = "too_many_subscriptions"
)

// Sentinel errors an Authorize hook returns (or wraps) to refuse a request:
// ErrUnauthorized is answered 401, ErrForbidden (and any other error) 403.
var (
	ErrUnauthorized = errors.New("transport: unauthorized")
	ErrForbidden    = errors.New("transport: forbidden")
)

// Error is an error response: a status and {"error":{"code","description"}}.
type Error struct {
	Status      int
	Code        string
	Description string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Description) }

func badRequest(format string, args ...any) *Error {
	return &Error{http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf(format, args...)}
}

// errorTable maps the errors a handler can get (the broker's, which it
// lists in full, and this package's own) to responses. The first match
// wins: an error may wrap several (an unknown index is also an invalid
// target), and the more telling comes first.
var errorTable = []struct {
	err         error
	status      int
	code        string
	description string // instead of the error's text, if set
}{
	{broker.ErrTermCount, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrUnknownCollection, http.StatusNotFound, CodeNotFound, ""},
	{broker.ErrUnknownIndex, http.StatusNotFound, CodeNotFound, ""},
	{broker.ErrNotFound, http.StatusNotFound, CodeNotFound, ""},
	{broker.ErrInvalidTarget, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrInvalidOptions, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrNotObject, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrInvalidJSON, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrInvalidRef, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrInvalidRewrite, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrTooManyEntries, http.StatusBadRequest, CodeInvalidRequest, ""},
	{broker.ErrHistoryUnavailable, http.StatusGone, CodeHistoryUnavailable, ""},
	{broker.ErrInvalidCursor, http.StatusGone, CodeHistoryUnavailable, ""},
	{broker.ErrExists, http.StatusConflict, CodeConflict, ""},
	{broker.ErrCutOff, http.StatusServiceUnavailable, CodeShuttingDown, "this node is cut off from the log; try another node"},
	{broker.ErrClosed, http.StatusServiceUnavailable, CodeShuttingDown, "the broker is closed"},
	{ErrUnauthorized, http.StatusUnauthorized, CodeUnauthorized, ""},
	{ErrForbidden, http.StatusForbidden, CodePermissionDenied, ""},
}

// errorFor maps an error from parsing, the broker or a hook to a response.
func errorFor(err error) *Error {
	var e *Error
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &maxBytes):
		return &Error{http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxBytes.Limit)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{http.StatusRequestTimeout, CodeRequestTimeout, "the body did not arrive in time"}
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			d := row.description
			if d == "" {
				d = err.Error()
			}
			return &Error{row.status, row.code, d}
		}
	}
	return &Error{http.StatusInternalServerError, "internal", err.Error()}
}

// writeError answers with an error response. A non-2xx status also stops
// a browser's EventSource from reconnecting in a loop.
func (s *Server) writeError(w http.ResponseWriter, e *Error) {
	s.counters.refusedWith(e.Status)
	if len(e.Description) > maxDescription {
		// Descriptions may quote the request (an unknown name): a huge
		// request does not come back whole.
		d := *e
		d.Description = strings.ToValidUTF8(d.Description[:maxDescription], "") + "…"
		e = &d
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(e.Status)
	// Not encoding/json, which leaves U+0085 raw: a description may quote
	// the request, and the body must be one line by every client's rules.
	body := append(make([]byte, 0, 48+len(e.Code)+len(e.Description)), `{"error":{"code":`...)
	body = jsondoc.AppendString(body, e.Code)
	body = append(body, `,"description":`...)
	body = jsondoc.AppendString(body, e.Description)
	w.Write(append(body, "}}\n"...))
}

// maxDescription bounds the description of an error response, in bytes.
const maxDescription = 512

// writeErr answers with the response for err, and logs the errors that are
// the server's fault.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	e := errorFor(err)
	if e.Status >= 500 && e.Status != http.StatusServiceUnavailable {
		s.logger().Error("transport: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.writeError(w, e)
}
