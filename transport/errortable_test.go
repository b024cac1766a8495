package transport

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

// Every error the broker lists reaches the client as a response of its
// own, wrapped as the broker wraps it, never as 500.
func TestErrorTable(t *testing.T) {
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{&broker.WriteError{Op: "create", Ref: ref, Err: broker.ErrExists}, http.StatusConflict, CodeConflict},
		{&broker.WriteError{Op: "update", Ref: ref, Err: broker.ErrNotFound}, http.StatusNotFound, CodeNotFound},
		{&broker.WriteError{Op: "create", Ref: ref, Err: broker.ErrNotObject}, http.StatusBadRequest, CodeInvalidRequest},
		{&broker.WriteError{Op: "create", Ref: ref, Err: broker.ErrUnknownCollection}, http.StatusNotFound, CodeNotFound},
		{&broker.WriteError{Op: "update", Ref: ref, Err: fmt.Errorf("%w: invalid UTF-8", broker.ErrInvalidJSON)}, http.StatusBadRequest, CodeInvalidRequest},
		{&broker.WriteError{Op: "create", Ref: ref, Err: fmt.Errorf("%w: the id is not valid UTF-8", broker.ErrInvalidRef)}, http.StatusBadRequest, CodeInvalidRequest},
		{fmt.Errorf("%w: %w", broker.ErrInvalidTarget, broker.ErrInvalidRef), http.StatusBadRequest, CodeInvalidRequest},
		{&broker.WriteError{Op: "create", Ref: ref, Err: broker.ErrTooManyEntries}, http.StatusBadRequest, CodeInvalidRequest},
		{&broker.WriteError{Op: "rewrite", Ref: ref, Err: broker.ErrInvalidRewrite}, http.StatusBadRequest, CodeInvalidRequest},
		{fmt.Errorf("%w: %w", broker.ErrInvalidTarget, broker.ErrUnknownIndex), http.StatusNotFound, CodeNotFound},
		{fmt.Errorf("%w: %w", broker.ErrInvalidTarget, broker.ErrUnknownCollection), http.StatusNotFound, CodeNotFound},
		{fmt.Errorf("%w: %w", broker.ErrInvalidTarget, broker.ErrTermCount), http.StatusBadRequest, CodeInvalidRequest},
		{fmt.Errorf("%w: no kind", broker.ErrInvalidTarget), http.StatusBadRequest, CodeInvalidRequest},
		{fmt.Errorf("%w: page size 0", broker.ErrInvalidOptions), http.StatusBadRequest, CodeInvalidRequest},
		{broker.ErrHistoryUnavailable, http.StatusGone, CodeHistoryUnavailable},
		{broker.ErrInvalidCursor, http.StatusGone, CodeHistoryUnavailable},
		{broker.ErrClosed, http.StatusServiceUnavailable, CodeShuttingDown},
		{fmt.Errorf("token expired: %w", ErrUnauthorized), http.StatusUnauthorized, CodeUnauthorized},
		{ErrForbidden, http.StatusForbidden, CodePermissionDenied},
	} {
		e := errorFor(tc.err)
		if e.Status != tc.status || e.Code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, e.Status, e.Code, tc.status, tc.code)
		}
	}
}
