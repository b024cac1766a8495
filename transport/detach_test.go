package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
)

// detachedEndpoints are the two stream endpoints a detached stream serves.
var detachedEndpoints = []struct{ name, method, path, body string }{
	{"sse", "GET", "/sse?collection=spells", ""},
	{"ndjson", "POST", "/stream", `{"collection":"spells"}`},
}

// A detached stream over HTTP/1.1 is a chunked response that ends with
// the connection: events in order with their cursors, and at Shutdown the
// shutting_down event with the cursor, the last chunk (a clean end of the
// body, not a cut) and Shutdown's return once the stream is released.
func TestDetach(t *testing.T) {
	for _, ep := range detachedEndpoints {
		t.Run(ep.name, func(t *testing.T) {
			ts, srv, b := testServer(t, func(s *Server) { s.Detach = true; s.ShutdownWindow = time.Millisecond })
			resp := do(t, client("h1"), ep.method, ts.URL+ep.path, ep.body, nil)
			defer resp.Body.Close()
			if resp.StatusCode != 200 || !resp.Close || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Fatalf("status %d, close %v, transfer encoding %q: want a chunked response that ends with the connection",
					resp.StatusCode, resp.Close, resp.TransferEncoding)
			}
			r := newEvReader(t, resp)
			if w, err := r.next(); err != nil || w.Type != "start" {
				t.Fatalf("first event %+v, %v", w, err)
			}
			var last string
			for i, id := range []string{"a", "b", "c"} {
				createSpell(t, b, id, "fire")
				w, err := r.next()
				if err != nil || w.Event.Action != "add" || w.Event.Document.Ref.ID != id {
					t.Fatalf("event %d: %+v, %v", i, w, err)
				}
				last = w.Cursor
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			w, err := r.next()
			if err != nil || w.Type != "error" || w.Event.Code != CodeShuttingDown || w.Event.Cursor != last {
				t.Fatalf("ending %+v, %v; want shutting_down with the cursor %s", w, err, last)
			}
			if w, err := r.next(); err != io.EOF {
				t.Fatalf("after the ending: %+v, %v; want the body's clean end", w, err)
			}
			if n := b.Stats().Subscriptions; n != 0 {
				t.Fatalf("%d subscriptions open after Shutdown", n)
			}
		})
	}
}

// A client that goes away is noticed at the next write, a heartbeat at
// the latest, and its stream released.
func TestDetachClientGone(t *testing.T) {
	ts, _, b := testServer(t, func(s *Server) { s.Detach = true; s.Heartbeat = 20 * time.Millisecond })
	for _, ep := range detachedEndpoints {
		resp := do(t, client("h1"), ep.method, ts.URL+ep.path, ep.body, nil)
		if w, err := newEvReader(t, resp).next(); err != nil || w.Type != "start" || !resp.Close {
			t.Fatalf("%s: first event %+v, %v (close %v)", ep.name, w, err, resp.Close)
		}
		resp.Body.Close()
	}
	waitFor(t, 10*time.Second, "the streams of clients gone to be released", func() bool { return b.Stats().Subscriptions == 0 })
}

// Authorize is asked again during a detached stream, with the request it
// was asked first, and its refusal ends the stream.
func TestDetachReauthorize(t *testing.T) {
	var calls atomic.Int64
	ts, _, _ := testServer(t, func(s *Server) {
		s.Detach = true
		s.Heartbeat = 20 * time.Millisecond
		s.Authorize = func(r *http.Request, tg subscription.Target) error {
			if r.URL.Query().Get("collection") != "spells" {
				return errors.New("not the request of the stream")
			}
			if calls.Add(1) > 2 {
				return errors.New("revoked")
			}
			return nil
		}
	})
	resp := do(t, client("h1"), "GET", ts.URL+"/sse?collection=spells", "", nil)
	defer resp.Body.Close()
	if !resp.Close {
		t.Fatal("not detached")
	}
	r := newEvReader(t, resp)
	for {
		w, err := r.next()
		if err != nil {
			t.Fatalf("stream ended with %v before permission_denied", err)
		}
		if w.Type == "error" {
			if w.Event.Code != CodePermissionDenied {
				t.Fatalf("ending %+v", w)
			}
			break
		}
	}
	if _, err := r.next(); err != io.EOF {
		t.Fatalf("after the ending: %v", err)
	}
}

// Streams that cannot be detached are served as usual: HTTP/2, and a
// stream of several subscriptions.
func TestDetachNotApplicable(t *testing.T) {
	ts, _, b := testServer(t, func(s *Server) { s.Detach = true })
	for _, tc := range []struct {
		name, proto, path string
	}{
		{"h2c", "h2c", "/sse?collection=spells"},
		{"multiplexed", "h1", `/sse?subscriptions=` + `{"a":{"collection":"spells"},"b":{"collection":"spells"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, client(tc.proto), "GET", ts.URL+tc.path, "", nil)
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("status %d, close %v: want a stream served by net/http", resp.StatusCode, resp.Close)
			}
			r := newEvReader(t, resp)
			r.multiplexed = tc.name == "multiplexed"
			if w, err := r.next(); err != nil || w.Type != "start" {
				t.Fatalf("first event %+v, %v", w, err)
			}
			createSpell(t, b, tc.name, "fire")
			for {
				w, err := r.next()
				if err != nil {
					t.Fatal(err)
				}
				if w.Event.Action == "add" && w.Event.Document.Ref.ID == tc.name {
					break
				}
			}
		})
	}
}
