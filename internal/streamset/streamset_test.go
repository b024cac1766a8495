package streamset

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errBye = errors.New("bye")

// TestShutdown: open streams are cancelled with the cause within the
// window, new ones are refused, and Shutdown returns when their handlers
// have.
func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Set
		ended := make(chan time.Duration, 3)
		start := time.Now()
		for range 3 {
			ctx, done, ok := s.Track(context.Background())
			if !ok {
				t.Fatal("refused before Shutdown")
			}
			go func() {
				defer done()
				<-ctx.Done()
				if context.Cause(ctx) != errBye {
					t.Errorf("cause %v", context.Cause(ctx))
				}
				ended <- time.Since(start)
			}()
		}
		if err := s.Shutdown(context.Background(), 2*time.Second, errBye); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if d := <-ended; d > 2*time.Second {
				t.Errorf("a stream ended after %v, beyond the window", d)
			}
		}
		if _, _, ok := s.Track(context.Background()); ok {
			t.Fatal("a stream accepted after Shutdown")
		}
		if err := s.Shutdown(context.Background(), time.Second, errBye); err != nil {
			t.Fatalf("a second Shutdown: %v", err)
		}
	})
}

// TestShutdownDeadline: when ctx ends first, the streams left are
// cancelled at once and Shutdown says so.
func TestShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Set
		ctx, done, _ := s.Track(context.Background())
		stuck := make(chan struct{})
		go func() { <-stuck; done() }()
		sctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if err := s.Shutdown(sctx, time.Hour, errBye); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		if context.Cause(ctx) != errBye {
			t.Fatalf("the stream left: %v", context.Cause(ctx))
		}
		close(stuck)
	})
}
