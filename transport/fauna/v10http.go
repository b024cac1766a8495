package fauna

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/connlimit"
	"github.com/tidings/tidings/internal/wire"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// writeV10Error answers with v10's error shape, {"error":{"code","message"}}.
func writeV10Error(w http.ResponseWriter, status int, code, message string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeV10Err maps an error from the broker, the Authorize hook or a token.
func writeV10Err(w http.ResponseWriter, err error) {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, errBadToken):
		writeV10Error(w, http.StatusBadRequest, "invalid_argument", err.Error())
	case errors.Is(err, transport.ErrUnauthorized):
		writeV10Error(w, http.StatusUnauthorized, "unauthorized", "Unauthorized")
	case errors.Is(err, broker.ErrNotFound), errors.Is(err, broker.ErrUnknownCollection), errors.Is(err, broker.ErrUnknownIndex):
		writeV10Error(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, broker.ErrClosed):
		writeV10Error(w, http.StatusServiceUnavailable, "unavailable", "The server is shutting down.")
	case errors.Is(err, txlog.ErrHistoryUnavailable), errors.Is(err, txlog.ErrInvalidCursor):
		writeV10Error(w, http.StatusBadRequest, "invalid_cursor", err.Error())
	case errors.As(err, &maxBytes):
		writeV10Error(w, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("The body is larger than %d bytes.", maxBytes.Limit))
	case errors.Is(err, broker.ErrInvalidTarget), errors.Is(err, broker.ErrInvalidOptions),
		errors.Is(err, broker.ErrInvalidRef), errors.Is(err, broker.ErrTermCount):
		writeV10Error(w, http.StatusBadRequest, "invalid_argument", err.Error())
	default:
		writeV10Error(w, http.StatusInternalServerError, "internal_error", err.Error())
	}
}

// authorizeV10 asks the hook: ErrUnauthorized is 401, any other refusal 403.
func (h *Handler) authorizeV10(w http.ResponseWriter, r *http.Request, t subscription.Target) bool {
	if h.Server.Authorize == nil {
		return true
	}
	if err := h.Server.Authorize(r, t); err != nil {
		if errors.Is(err, transport.ErrUnauthorized) {
			writeV10Err(w, err)
		} else {
			writeV10Error(w, http.StatusForbidden, "forbidden", "Insufficient privileges to perform the action.")
		}
		return false
	}
	return true
}

// v10Options are the subscription options of a v10 event source: set
// events carry the document's data, as v10's @doc does, and a member's
// change is an update event.
func v10Options(t subscription.Target) subscription.Options {
	if t.IsSet() {
		return subscription.Options{Data: true, Updates: true}
	}
	return subscription.Options{}
}

type v10Request struct {
	Token    string `json:"token"`
	Cursor   string `json:"cursor"`
	PageSize int    `json:"page_size"`
	StartTS  *int64 `json:"start_ts"`
}

// v10Start is where a /stream/1 or /feed/1 request starts: after cursor,
// and, for a start_ts, past the events of txns up to it (a commit can be
// published after the head that start_ts was compared with, yet have a
// txn no later than start_ts).
type v10Start struct {
	cursor string
	skipTo txlog.Txn // events of txns ≤ skipTo are left out; 0 for none
}

// skip reports whether an event of txn is before the start.
func (st v10Start) skip(txn txlog.Txn) bool { return txn <= st.skipTo }

// v10Source reads a /stream/1 or /feed/1 body: the token's target, and
// where to start: after the request's cursor, after its start_ts (µs
// since the epoch, which is what txns are), or else after the token's
// minting.
func (h *Handler) v10Source(w http.ResponseWriter, r *http.Request) (v10Request, subscription.Target, v10Start, bool) {
	body, ok := h.body(w, r, true)
	if !ok {
		return v10Request{}, subscription.Target{}, v10Start{}, false
	}
	var req v10Request
	if err := json.Unmarshal(body, &req); err != nil || req.Token == "" {
		writeV10Error(w, http.StatusBadRequest, "invalid_request", `The body must be {"token":"…"}; got `+compact(body))
		return req, subscription.Target{}, v10Start{}, false
	}
	if req.StartTS != nil && (req.Cursor != "" || *req.StartTS < 0) {
		writeV10Error(w, http.StatusBadRequest, "invalid_request", "start_ts is a positive number of µs, and cannot go with a cursor.")
		return req, subscription.Target{}, v10Start{}, false
	}
	target, cursor, err := h.parseToken(req.Token)
	if err != nil {
		writeV10Err(w, err)
		return req, subscription.Target{}, v10Start{}, false
	}
	start := v10Start{cursor: cursor}
	switch {
	case req.Cursor != "":
		start.cursor = req.Cursor
	case req.StartTS != nil:
		// The log is read after the txn start_ts, or after the head
		// when start_ts is later (reading beyond the head is refused).
		b := h.Server.Broker
		at := txlog.Txn(*req.StartTS)
		start.skipTo = at
		at = min(at, b.Head())
		start.cursor = txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(at)}.String()
	}
	if !h.authorizeV10(w, r, target) {
		return req, subscription.Target{}, v10Start{}, false
	}
	return req, target, start, true
}

// streamV10 serves POST /stream/1: the token's events after its cursor,
// one line per write and flush; a write's line is shared by its streams.
func (h *Handler) streamV10(w http.ResponseWriter, r *http.Request) {
	s := h.Server
	_, target, start, ok := h.v10Source(w, r)
	if !ok {
		return
	}
	maxStreams := orDefault(s.MaxStreamsPerConn, transport.DefaultMaxStreamsPerConn)
	release, _, refusal := connlimit.From(r.Context()).Acquire(maxStreams, 1,
		orDefault(s.MaxSubscriptionsPerConn, transport.DefaultMaxSubscriptionsPerConn))
	if refusal != connlimit.Accepted {
		writeV10Error(w, http.StatusTooManyRequests, "limit_exceeded",
			fmt.Sprintf("This connection has %d streams open already; open another connection.", maxStreams))
		return
	}
	defer release()
	opt := v10Options(target)
	opt.Cursor = start.cursor
	opt.Heartbeat = orDefault(s.Heartbeat, transport.DefaultHeartbeat)
	// At Shutdown the stream ends cleanly: the driver reconnects with its
	// cursor.
	ctx, done, ok := h.live.Track(r.Context())
	if !ok {
		writeV10Error(w, http.StatusServiceUnavailable, "unavailable", "The server is shutting down.")
		return
	}
	defer done()
	sub, err := s.Broker.Subscribe(ctx, target, opt)
	if err != nil {
		writeV10Err(w, err)
		return
	}
	defer sub.Close()

	hd := w.Header()
	hd.Set("Content-Type", "application/json;charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	writeTimeout := orDefault(s.WriteTimeout, transport.DefaultWriteTimeout)
	heartbeat := opt.Heartbeat
	recheck := time.Now().Add(heartbeat)
	last := start.cursor
	var buf []byte
	for e := range sub.Events() {
		if s.Authorize != nil && !time.Now().Before(recheck) {
			recheck = time.Now().Add(heartbeat)
			if err := s.Authorize(r, target); err != nil {
				code := "forbidden"
				if errors.Is(err, transport.ErrUnauthorized) {
					code = "unauthorized"
				}
				buf = append(appendV10Error(buf[:0], code, "Authorization was withdrawn."), '\r', '\n')
				rc.SetWriteDeadline(time.Now().Add(writeTimeout))
				if _, err := w.Write(buf); err == nil {
					rc.Flush()
				}
				return
			}
		}
		var line []byte
		ok := true
		switch e.Type {
		case subscription.TypeVersion, subscription.TypeSet:
			if start.skip(e.Txn) {
				last = e.CursorString()
				continue
			}
			// The events of a write: their v10 line is shared.
			line, err = h.lines10.Shared(e.JSON, "", buildV10)
			ok = !errors.Is(err, wire.ErrNoFaunaForm)
			if !ok {
				err = nil
			}
		default:
			// This stream's own (start, status, its end).
			buf, ok, err = appendV10(buf[:0], e.JSON, last)
			line = append(buf, '\r', '\n')
		}
		if err != nil {
			h.logger().Error("fauna: an event has no v10 form", "error", err)
			line = append(appendV10Error(buf[:0], "internal_error", "an event could not be encoded"), '\r', '\n')
			ok, e.Type = true, subscription.TypeError
		}
		if !ok {
			continue
		}
		if e.HasCursor() {
			last = e.CursorString()
		}
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(line); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		if e.Type == subscription.TypeError || e.Type == subscription.TypeHistoryRewrite {
			return
		}
	}
}

// buildV10 makes the shared v10 line of a write's event.
func buildV10(native []byte) ([]byte, error) {
	line, ok, err := appendV10(nil, native, "")
	if err == nil && !ok {
		err = wire.ErrNoFaunaForm
	}
	return append(line, '\r', '\n'), err
}

// Page sizes of /feed/1: Fauna's default and its maximum.
const (
	feedDefaultPage = 16
	feedMaxPage     = 16000
)

// feedV10 serves POST /feed/1: a page of the token's events after its
// cursor, from the broker's ReadPage.
func (h *Handler) feedV10(w http.ResponseWriter, r *http.Request) {
	req, target, start, ok := h.v10Source(w, r)
	if !ok {
		return
	}
	n := req.PageSize
	if n <= 0 {
		n = feedDefaultPage
	}
	if n > feedMaxPage {
		writeV10Error(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("page_size is at most %d.", feedMaxPage))
		return
	}
	opt := v10Options(target)
	opt.Cursor = start.cursor
	page, err := h.Server.Broker.ReadPage(r.Context(), target, opt, n, false)
	if err != nil {
		writeV10Err(w, err)
		return
	}
	out := []byte(`{"events":[`)
	first := true
	for _, e := range page.Events {
		if start.skip(e.Txn) {
			continue
		}
		at := len(out)
		if !first {
			out = append(out, ',')
		}
		var ok bool
		out, ok, err = appendV10(out, e.JSON, "")
		if err != nil {
			writeV10Err(w, err)
			return
		}
		if !ok {
			out = out[:at]
			continue
		}
		first = false
	}
	out = fmt.Appendf(out, `],"cursor":%q,"has_next":%t,"stats":%s}`, page.Cursor.String(), page.More, v10Stats)
	hd := w.Header()
	hd.Set("Content-Type", "application/json;charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.Write(append(out, '\n'))
}

// queryV10 serves POST /query/1 for the queries that make an event source
// (fql.go).
func (h *Handler) queryV10(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r, true)
	if !ok {
		return
	}
	target, err := parseEventSource(body, h.Server.Broker.Schema())
	switch {
	case errors.Is(err, errQuery):
		writeV10Error(w, http.StatusBadRequest, "invalid_query",
			err.Error()+`. This server answers only coll.all(), Set.single(coll.byId(id)) (or coll.byId(id)) and coll.index(terms…), each followed by .eventSource().`)
		return
	case errors.Is(err, errNoIndex):
		writeV10Error(w, http.StatusNotFound, "not_found", err.Error())
		return
	}
	if !h.authorizeV10(w, r, target) {
		return
	}
	tok, err := h.Token(target)
	if err != nil {
		writeV10Err(w, err)
		return
	}
	out, _ := json.Marshal(map[string]any{
		"data": map[string]string{"@stream": tok}, "static_type": "EventSource", "summary": "",
		"txn_ts": h.Server.Broker.Head(), "schema_version": 0,
		"stats": json.RawMessage(v10Stats),
	})
	hd := w.Header()
	hd.Set("Content-Type", "application/json;charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.Write(append(out, '\n'))
}
