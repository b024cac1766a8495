package fauna

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/tidings/tidings/transport"
)

// errShutdown is the cause that ends a stream at Shutdown.
var errShutdown = errors.New("the server is shutting down")

// streams are the Handler's open streams, for Shutdown.
type streams struct {
	closing  bool
	cancel   map[*context.CancelCauseFunc]struct{}
	handlers int
	idle     chan struct{} // made by Shutdown, closed when no handler is left
}

// track registers a stream about to start: its context, which Shutdown
// cancels with errShutdown, and the func to call when the handler returns.
// It fails once Shutdown has begun.
func (h *Handler) track(ctx context.Context) (context.Context, func(), bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.live.closing {
		return nil, nil, false
	}
	if h.live.cancel == nil {
		h.live.cancel = map[*context.CancelCauseFunc]struct{}{}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	h.live.cancel[&cancel] = struct{}{}
	h.live.handlers++
	return ctx, func() {
		cancel(nil)
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.live.cancel, &cancel)
		h.live.handlers--
		if h.live.handlers == 0 && h.live.idle != nil {
			close(h.live.idle)
		}
	}, true
}

// Shutdown ends every stream of the front, each after a random delay
// within the transport.Server's ShutdownWindow so that drivers do not all
// come back at once, refuses new streams with 503, and returns when every
// stream handler has returned, or when ctx is done (then ending the
// streams left at once). A v4 stream ends with an error event
// shutting_down (the v4 drivers never resume: the application hears why);
// a v10 stream ends cleanly, which the v10 driver answers by reconnecting
// with its cursor, to another node behind a balancer or to this one
// restarted. Call it before http.Server.Shutdown, which does not wait for
// streams, and before closing the broker. transport.Server's Shutdown and
// MaxLifetime do not reach these streams: the drivers do not resume (v4)
// or give up after a few reconnections (v10), so no lifetime is imposed.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.live.closing = true
	window := orDefault(h.Server.ShutdownWindow, transport.DefaultShutdownWindow)
	var timers []*time.Timer
	for cancel := range h.live.cancel {
		delay := time.Duration(rand.Int64N(int64(window) + 1))
		timers = append(timers, time.AfterFunc(delay, func() { (*cancel)(errShutdown) }))
	}
	if h.live.idle == nil {
		h.live.idle = make(chan struct{})
		if h.live.handlers == 0 {
			close(h.live.idle)
		}
	}
	idle := h.live.idle
	h.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		for _, t := range timers {
			t.Stop()
		}
		h.mu.Lock()
		for cancel := range h.live.cancel {
			(*cancel)(errShutdown)
		}
		h.mu.Unlock()
		return ctx.Err()
	}
}
