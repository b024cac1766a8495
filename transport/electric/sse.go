package electric

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/tidings/tidings/internal/connlimit"
	"github.com/tidings/tidings/transport"
)

// errShutdown is the cause that ends live responses at Shutdown.
var errShutdown = errors.New("the server is shutting down")

// Shutdown ends the live responses, each after a random delay within the
// Server's ShutdownWindow: an SSE response ends (its client reconnects
// with its offset, to another node behind a balancer or to this one
// restarted) and a long-poll answers 503 with Retry-After (its client
// retries). New live requests get 503 too. It returns when their handlers
// have, or when ctx is done. Call it before http.Server.Shutdown, which
// does not wait for responses that never go idle.
func (h *Handler) Shutdown(ctx context.Context) error {
	return h.live.Shutdown(ctx, orDefault(h.Server.ShutdownWindow, transport.DefaultShutdownWindow), errShutdown)
}

// liveStart counts a live response against the connection's stream limit
// and registers it for Shutdown; it answers 429 or 503 itself when it
// cannot. The context ends at Shutdown with errShutdown.
func (h *Handler) liveStart(w http.ResponseWriter, r *http.Request) (context.Context, func(), bool) {
	s := h.Server
	maxStreams := s.MaxStreamsPerConn
	if maxStreams <= 0 {
		maxStreams = transport.DefaultMaxStreamsPerConn
	}
	maxSubs := s.MaxSubscriptionsPerConn
	if maxSubs <= 0 {
		maxSubs = transport.DefaultMaxSubscriptionsPerConn
	}
	release, _, refusal := connlimit.From(r.Context()).Acquire(maxStreams, 1, maxSubs)
	if refusal != connlimit.Accepted {
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusTooManyRequests, "This connection has "+strconv.Itoa(maxStreams)+" live requests open already", nil)
		return nil, nil, false
	}
	ctx, done, ok := h.live.Track(r.Context())
	if !ok {
		release()
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "The server is shutting down", nil)
		return nil, nil, false
	}
	return ctx, func() { done(); release() }, true
}

// serveSSE answers live=true with live_sse: an event stream of the
// shape's changes, each group of txns followed by up-to-date with the txn
// it brings the client to, for about SSELifetime. Its reads are the
// long-poll's, collapsed alike: every client of the shape at the same
// position shares one read and one encoding.
//
// It never ends in under a second but at Shutdown or when the log loses
// the client's position (the client takes three short streams in a row
// for a proxy that buffers, and falls back to long-polling), and never
// sends must-refetch inside the stream (the client would empty its rows
// for good): when the position is lost it ends, and the reconnection gets
// the 409.
func (h *Handler) serveSSE(w http.ResponseWriter, r *http.Request, req *shapeRequest) {
	pos := req.offset.txn
	// First what is there already, which also checks that the log still
	// holds the offset: a 409 must come before the stream.
	first, ok := h.flights.do(r.Context(), nil, "c\x00"+req.def+"\x00"+req.offset.String(), func(ctx context.Context) *result {
		return h.read(ctx, req, pos, false)
	})
	if !ok {
		return
	}
	if first.err != nil {
		h.writeReadError(w, r, req, first.err)
		return
	}
	ctx, done, ok := h.liveStart(w, r)
	if !ok {
		return
	}
	defer done()

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	h.cacheControl(hd, "max-age=59")
	hd.Set("X-Accel-Buffering", "no")
	hd.Set("Electric-Handle", req.handle)
	// The request's offset: should the stream break before its first
	// up-to-date, the client resumes from there, losing nothing.
	hd.Set("Electric-Offset", req.offset.String())
	hd.Set("Electric-Cursor", liveCursor(time.Now(), req.cursor))
	hd.Set("Electric-Up-To-Date", "")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	writeTimeout := orDefault(h.Server.WriteTimeout, transport.DefaultWriteTimeout)
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// send writes a read's messages, or a bare up-to-date when the log
	// moved past the client's position without touching the shape, which
	// keeps an idle client's offset within retention.
	send := func(res *result) bool {
		switch {
		case res.changed():
			pos = max(pos, res.h)
			return write(res.sseBody())
		case res.h > pos:
			pos = res.h
			return write(append(append([]byte("data: "), appendUpToDate(nil, pos)...), "\n\n"...))
		}
		return true
	}
	if first.changed() || first.h > pos {
		if !send(first) {
			return
		}
	} else if rc.Flush() != nil {
		return
	}

	lifetime := orDefault(h.SSELifetime, DefaultSSELifetime)
	end := time.Now().Add(lifetime - time.Duration(rand.Int64N(int64(lifetime/10)+1)))
	keepAlive := orDefault(h.KeepAlive, DefaultKeepAlive)
	// One timer for the stream's waits, and the read's key and func made
	// again only when the position moves: a thousand streams waiting on
	// one read should cost little more than the read.
	timer := time.NewTimer(keepAlive)
	defer timer.Stop()
	var key string
	var read func(context.Context) *result
	keyPos := pos + 1
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		timer.Reset(min(keepAlive, end.Sub(now)))
		if keyPos != pos {
			keyPos, key, read = pos, liveKey(req, pos), h.holdRead(req, pos)
		}
		res, ok := h.flights.do(ctx, timer.C, key, read)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			if !time.Now().Before(end) {
				return
			}
			// Idle for KeepAlive: say so, and bring the position on.
			from := pos
			res, ok = h.flights.do(ctx, nil, "c\x00"+req.def+"\x00"+offset{offsetAt, from}.String(), func(ctx context.Context) *result {
				return h.read(ctx, req, from, false)
			})
			if !ok || res.err != nil || !write([]byte(": keep-alive\n\n")) || !send(res) {
				return
			}
			continue
		}
		if res.err != nil || !send(res) {
			return
		}
	}
}
