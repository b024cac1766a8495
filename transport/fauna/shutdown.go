package fauna

import (
	"context"
	"errors"

	"github.com/tidings/tidings/transport"
)

// errShutdown is the cause that ends a stream at Shutdown.
var errShutdown = errors.New("the server is shutting down")

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
	return h.live.Shutdown(ctx, orDefault(h.Server.ShutdownWindow, transport.DefaultShutdownWindow), errShutdown)
}
