package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
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

// errorFor maps an error from parsing, the broker or a hook to a response.
func errorFor(err error) *Error {
	var e *Error
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &maxBytes):
		return &Error{http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxBytes.Limit)}
	case errors.Is(err, index.ErrTermCount):
		return &Error{http.StatusBadRequest, CodeInvalidRequest, err.Error()}
	case errors.Is(err, index.ErrUnknownCollection), errors.Is(err, index.ErrUnknownIndex), errors.Is(err, broker.ErrNotFound):
		return &Error{http.StatusNotFound, CodeNotFound, err.Error()}
	case errors.Is(err, subscription.ErrInvalidTarget), errors.Is(err, subscription.ErrInvalidOptions),
		errors.Is(err, broker.ErrNotObject), errors.Is(err, broker.ErrInvalidRewrite):
		return &Error{http.StatusBadRequest, CodeInvalidRequest, err.Error()}
	case errors.Is(err, txlog.ErrHistoryUnavailable), errors.Is(err, txlog.ErrInvalidCursor):
		return &Error{http.StatusGone, CodeHistoryUnavailable, err.Error()}
	case errors.Is(err, broker.ErrExists):
		return &Error{http.StatusConflict, CodeConflict, err.Error()}
	case errors.Is(err, broker.ErrClosed):
		return &Error{http.StatusServiceUnavailable, CodeShuttingDown, "the broker is closed"}
	case errors.Is(err, ErrUnauthorized):
		return &Error{http.StatusUnauthorized, CodeUnauthorized, err.Error()}
	case errors.Is(err, ErrForbidden):
		return &Error{http.StatusForbidden, CodePermissionDenied, err.Error()}
	}
	return &Error{http.StatusInternalServerError, "internal", err.Error()}
}

// writeError answers with an error response. A non-2xx status also stops
// a browser's EventSource from reconnecting in a loop.
func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(e.Status)
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": e.Code, "description": e.Description}})
	w.Write(append(body, '\n'))
}

// writeErr answers with the response for err, and logs the errors that are
// the server's fault.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	e := errorFor(err)
	if e.Status >= 500 && e.Status != http.StatusServiceUnavailable {
		s.logger().Error("transport: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, e)
}
