// Package streamset keeps the open streams of an HTTP front that is not
// transport.Server's (the Fauna and Electric fronts), so that its Shutdown
// can end them, spread over a window, and wait for their handlers.
package streamset

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Set is the open streams of a front. The zero Set is ready; it is safe
// for concurrent use.
type Set struct {
	mu       sync.Mutex
	closing  bool
	cancel   map[*context.CancelCauseFunc]struct{}
	handlers int
	idle     chan struct{} // made by Shutdown, closed when no handler is left
}

// Track registers a stream about to start: its context, which Shutdown
// cancels with its cause, and the func to call when the handler returns.
// It fails once Shutdown has begun.
func (s *Set) Track(ctx context.Context) (context.Context, func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, nil, false
	}
	if s.cancel == nil {
		s.cancel = map[*context.CancelCauseFunc]struct{}{}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	s.cancel[&cancel] = struct{}{}
	s.handlers++
	return ctx, func() {
		cancel(nil)
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.cancel, &cancel)
		s.handlers--
		if s.handlers == 0 && s.idle != nil {
			close(s.idle)
		}
	}, true
}

// Shutdown refuses new streams, cancels each open one with cause after a
// random delay within window (so that clients do not all come back at
// once), and returns when every stream handler has returned, or when ctx
// is done (then cancelling the streams left at once and returning
// ctx.Err()). It may be called more than once.
func (s *Set) Shutdown(ctx context.Context, window time.Duration, cause error) error {
	s.mu.Lock()
	s.closing = true
	var timers []*time.Timer
	for cancel := range s.cancel {
		delay := time.Duration(rand.Int64N(int64(window) + 1))
		timers = append(timers, time.AfterFunc(delay, func() { (*cancel)(cause) }))
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
		if s.handlers == 0 {
			close(s.idle)
		}
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		for _, t := range timers {
			t.Stop()
		}
		s.mu.Lock()
		for cancel := range s.cancel {
			(*cancel)(cause)
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
