package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

func TestCORS(t *testing.T) {
	const allowed, other = "https://app.example", "https://evil.example"
	configs := []struct {
		name    string
		origins []string
		creds   bool
		// the Access-Control-Allow-Origin wanted for allowed and other,
		// and whether credentials are allowed for allowed
		forAllowed, forOther string
		credsForAllowed      bool
	}{
		{"listed, credentials", []string{allowed}, true, allowed, "", true},
		{"listed", []string{allowed}, false, allowed, "", false},
		{"any, credentials", []string{"*"}, true, "*", "*", false},
		{"any", []string{"*"}, false, "*", "*", false},
		{"listed and any, credentials", []string{allowed, "*"}, true, allowed, "*", true},
		{"none", nil, true, "", "", false},
	}
	type request struct {
		name, method, path, body string
		header                   http.Header
		status                   int
	}
	requests := []request{
		{"stream", "POST", "/stream", `{"collection":"spells"}`, nil, 200},
		{"sse", "GET", "/sse?collection=spells", ``, nil, 200},
		{"stream 404", "POST", "/stream", `{"collection":"potions"}`, nil, 404},
		{"stream 400", "POST", "/stream", `{`, nil, 400},
		{"sse 410", "GET", "/sse?collection=spells", ``, http.Header{"Last-Event-Id": {"x"}}, 410},
		{"sse 405", "POST", "/sse?collection=spells", ``, nil, 405},
		{"write 409", "POST", "/write", `{"writes":[{"action":"create","collection":"spells","id":"1","data":{}}]}`, nil, 409},
		{"no endpoint", "GET", "/nowhere", ``, nil, 404},
		{"unauthorized", "GET", "/sse?collection=locked", ``, nil, 401},
		{"stream preflight", "OPTIONS", "/stream", ``, http.Header{"Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"content-type"}}, 204},
		{"sse preflight", "OPTIONS", "/sse?collection=spells", ``, http.Header{"Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"last-event-id"}}, 204},
		{"write preflight", "OPTIONS", "/write", ``, http.Header{"Access-Control-Request-Method": {"POST"}}, 204},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			ts, srv, b := testServer(t, func(s *Server) {
				s.AllowedOrigins = cfg.origins
				s.MaxStreamsPerConn = 2
				s.AllowCredentials = cfg.creds
				s.Authorize = func(_ *http.Request, t subscription.Target) error {
					if t.Collection == "locked" {
						return ErrUnauthorized
					}
					return nil
				}
			})
			createSpell(t, b, "1", "fire")
			c := client("h1")
			defer c.CloseIdleConnections()
			check := func(t *testing.T, resp *http.Response, origin string) {
				t.Helper()
				wantACAO := map[string]string{allowed: cfg.forAllowed, other: cfg.forOther, "": ""}[origin]
				wantCreds := origin == allowed && cfg.credsForAllowed
				h := resp.Header
				if got := h.Values("Access-Control-Allow-Origin"); strings.Join(got, ",") != wantACAO {
					t.Errorf("Origin %q: Access-Control-Allow-Origin %q, want %q", origin, got, wantACAO)
				}
				if got := h.Get("Access-Control-Allow-Credentials"); (got == "true") != wantCreds || (got != "" && got != "true") {
					t.Errorf("Origin %q: Access-Control-Allow-Credentials %q, want credentials %v", origin, got, wantCreds)
				}
				if h.Get("Access-Control-Allow-Origin") == "*" && h.Get("Access-Control-Allow-Credentials") != "" {
					t.Errorf("* with credentials")
				}
				if wantACAO != "" && wantACAO != "*" && !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
					t.Errorf("an echoed origin without Vary: Origin")
				}
				if wantACAO != "" && !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") {
					t.Errorf("Retry-After not exposed: %q", h.Get("Access-Control-Expose-Headers"))
				}
			}
			for _, origin := range []string{allowed, other, ""} {
				for _, rq := range requests {
					t.Run(fmt.Sprintf("%s/%q", rq.name, origin), func(t *testing.T) {
						h := rq.header.Clone()
						if h == nil {
							h = http.Header{}
						}
						if origin != "" {
							h.Set("Origin", origin)
						}
						resp := do(t, c, rq.method, ts.URL+rq.path, rq.body, h)
						defer resp.Body.Close()
						if resp.StatusCode != rq.status {
							t.Fatalf("%s, want %d", resp.Status, rq.status)
						}
						check(t, resp, origin)
						if rq.method == "OPTIONS" {
							ah := resp.Header.Get("Access-Control-Allow-Headers")
							for _, want := range []string{"Content-Type", "Last-Event-ID"} {
								if !strings.Contains(ah, want) {
									t.Errorf("Access-Control-Allow-Headers %q lacks %s", ah, want)
								}
							}
							want := map[string]string{"/stream": "POST", "/write": "POST"}[rq.path]
							if want == "" {
								want = "GET"
							}
							if am := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(am, want) {
								t.Errorf("Access-Control-Allow-Methods %q lacks %s", am, want)
							}
						}
					})
				}
			}
			// 429 and 503 too.
			t.Run("429", func(t *testing.T) {
				c := client("h2c")
				defer c.CloseIdleConnections()
				h := http.Header{"Origin": {allowed}}
				var open []*http.Response
				defer func() {
					for _, r := range open {
						r.Body.Close()
					}
				}()
				for {
					resp := do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, h)
					if resp.StatusCode == 200 {
						open = append(open, resp)
						if len(open) > DefaultMaxStreamsPerConn {
							t.Fatalf("no 429 after %d streams", len(open))
						}
						continue
					}
					check(t, resp, allowed)
					checkError(t, resp, http.StatusTooManyRequests, CodeTooManyStreams)
					break
				}
			})
			t.Run("503", func(t *testing.T) {
				if err := srv.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				for _, origin := range []string{allowed, other} {
					resp := do(t, c, "GET", ts.URL+"/sse?collection=spells", "", http.Header{"Origin": {origin}})
					check(t, resp, origin)
					checkError(t, resp, http.StatusServiceUnavailable, CodeShuttingDown)
				}
			})
		})
	}
}

func TestAuthorize(t *testing.T) {
	var mu sync.Mutex
	var seen []subscription.Target
	ts, _, b := testServer(t, func(s *Server) {
		s.Authorize = func(r *http.Request, t subscription.Target) error {
			mu.Lock()
			seen = append(seen, t)
			mu.Unlock()
			switch r.Header.Get("Authorization") {
			case "ok":
				return nil
			case "":
				return ErrUnauthorized
			case "expired":
				return fmt.Errorf("token expired: %w", ErrUnauthorized)
			case "reader":
				return ErrForbidden
			default:
				return errors.New("no such user")
			}
		}
	})
	createSpell(t, b, "1", "fire")
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			c := client(proto)
			defer c.CloseIdleConnections()
			// The streams of the previous protocol's run end when the
			// server sees their clients go.
			waitFor(t, 10*time.Second, "earlier streams to end", func() bool { return b.Stats().Subscriptions == 0 })
			for _, tc := range []struct {
				auth   string
				status int
				code   string
			}{
				{"", 401, CodeUnauthorized},
				{"expired", 401, CodeUnauthorized},
				{"reader", 403, CodePermissionDenied},
				{"stranger", 403, CodePermissionDenied},
			} {
				h := http.Header{"Authorization": {tc.auth}}
				checkError(t, do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, h), tc.status, tc.code)
				checkError(t, do(t, c, "GET", ts.URL+"/sse?collection=spells", "", h), tc.status, tc.code)
			}
			if n := b.Stats().Subscriptions; n != 0 {
				t.Fatalf("refused streams hold %d subscriptions", n)
			}

			// Authorize is told the target.
			h := http.Header{"Authorization": {"ok"}}
			mu.Lock()
			seen = nil
			mu.Unlock()
			for _, body := range []string{`{"collection":"spells"}`, `{"index":"spells_by_element","terms":["fire"]}`,
				`{"document":{"collection":"spells","id":"1"}}`} {
				resp := do(t, c, "POST", ts.URL+"/stream", body, h)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %s", body, resp.Status)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 3 || seen[0].Kind != subscription.KindCollection || seen[0].Collection != "spells" ||
				seen[1].Kind != subscription.KindIndex || seen[1].Index != "spells_by_element" || len(seen[1].Terms) != 1 ||
				seen[2].Kind != subscription.KindDocument || seen[2].Ref != (txlog.Ref{Collection: "spells", ID: "1"}) {
				t.Fatalf("Authorize saw %+v", seen)
			}
		})
	}
}

// readUntilError reads a stream's events until its error event, which it
// returns with the cursor of the last event before it; the response must
// then end cleanly.
func readUntilError(t testing.TB, r *evReader) (errEvent wireEvent, last string) {
	t.Helper()
	for {
		w, err := r.next()
		if err != nil {
			t.Fatalf("before the error event: %v", err)
		}
		if w.Type == "error" {
			if _, err := r.next(); err != io.EOF {
				t.Fatalf("after the error event: %v, want a clean end", err)
			}
			return w, last
		}
		if w.Cursor != "" {
			last = w.Cursor
		}
	}
}

// Authorize is asked again on every heartbeat: when it refuses, the
// stream ends with permission_denied and the cursor to resume from.
func TestAuthorizeRecheck(t *testing.T) {
	for _, kind := range []string{"ndjson", "sse"} {
		for _, proto := range protocols {
			t.Run(kind+"/"+proto, func(t *testing.T) {
				var deny atomic.Bool
				var asked atomic.Int32
				ts, _, b := testServer(t, func(s *Server) {
					s.Heartbeat = 10 * time.Millisecond
					s.Authorize = func(*http.Request, subscription.Target) error {
						asked.Add(1)
						if deny.Load() {
							return errors.New("access revoked")
						}
						return nil
					}
				})
				c := client(proto)
				defer c.CloseIdleConnections()
				var resp *http.Response
				if kind == "ndjson" {
					resp = do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
				} else {
					resp = do(t, c, "GET", ts.URL+"/sse?collection=spells", "", nil)
				}
				defer resp.Body.Close()
				r := newEvReader(t, resp)
				if w, err := r.next(); err != nil || w.Type != "start" {
					t.Fatalf("%+v %v", w, err)
				}
				createSpell(t, b, "1", "fire")
				w, err := r.next()
				if err != nil || w.Type != "set" {
					t.Fatalf("%+v %v", w, err)
				}
				// Heartbeats come, and each asks again, while allowed.
				waitFor(t, 10*time.Second, "heartbeats", func() bool { return asked.Load() >= 3 })
				deny.Store(true)
				e, last := readUntilError(t, r)
				if e.Event.Code != CodePermissionDenied || e.Event.Cursor != w.Cursor || (last != "" && last != w.Cursor) {
					t.Fatalf("error %s, want permission_denied with the cursor %s", e.Raw, w.Cursor)
				}
				waitFor(t, 10*time.Second, "the subscription to be freed", func() bool { return b.Stats().Subscriptions == 0 })
			})
		}
	}
}

// A stream that is never idle is asked again too: "every Heartbeat during
// it", not only when a heartbeat is sent. So is a multiplexed stream.
func TestAuthorizeRecheckOnBusyStream(t *testing.T) {
	for _, body := range []string{`{"collection":"spells"}`, `{"subscriptions":{"a":{"collection":"spells"},"b":{"index":"spells_by_element","terms":["fire"]}}}`} {
		multiplexed := strings.Contains(body, "subscriptions")
		t.Run(map[bool]string{false: "single", true: "multiplexed"}[multiplexed], func(t *testing.T) {
			var deny atomic.Bool
			ts, _, b := testServer(t, func(s *Server) {
				// Much longer than any gap between commits, so that the
				// stream sends no heartbeat at all.
				s.Heartbeat = 200 * time.Millisecond
				s.Authorize = func(*http.Request, subscription.Target) error {
					if deny.Load() {
						return errors.New("access revoked")
					}
					return nil
				}
			})
			c := client("h2c")
			defer c.CloseIdleConnections()
			resp := do(t, c, "POST", ts.URL+"/stream", body, nil)
			defer resp.Body.Close()
			r := newEvReader(t, resp)
			r.multiplexed = multiplexed
			// Commits come faster than the heartbeat, until the stream ends.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			defer close(stop)
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
						return tx.Create(txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}, []byte(`{"element":"fire"}`))
					})
					if err != nil {
						return
					}
				}
			})
			var last string
			for range 20 {
				w, err := r.next()
				if err != nil {
					t.Fatal(err)
				}
				last = w.Cursor
			}
			deny.Store(true)
			deadline := time.Now().Add(20 * time.Second)
			for {
				w, err := r.next()
				if err != nil {
					t.Fatal(err)
				}
				if w.Type == "error" {
					if w.Event.Code != CodePermissionDenied || w.Event.Cursor == "" || !multiplexed && w.Event.Cursor != last {
						t.Fatalf("error %s, want permission_denied with the cursor %s", w.Raw, last)
					}
					return
				}
				if w.Type == "status" {
					t.Fatalf("a heartbeat on a busy stream: %+v", w)
				}
				last = w.Cursor
				if time.Now().After(deadline) {
					t.Fatalf("access revoked, and the busy stream goes on after %v", 20*time.Second)
				}
			}
		})
	}
}

// Shutdown ends every stream with shutting_down and its own cursor, each
// response finished cleanly, and returns when every handler has returned.
func TestShutdown(t *testing.T) {
	ts, srv, b := testServer(t, func(s *Server) { s.ShutdownWindow = 50 * time.Millisecond })
	createSpell(t, b, "1", "fire")
	type stream struct {
		name string
		resp *http.Response
		r    *evReader
		last string
	}
	var streams []*stream
	defer func() {
		for _, s := range streams {
			s.resp.Body.Close()
		}
	}()
	for _, proto := range protocols {
		c := client(proto)
		defer c.CloseIdleConnections()
		for _, rq := range []struct{ method, path, body string }{
			{"POST", "/stream", `{"collection":"spells"}`},
			{"POST", "/stream", `{"index":"spells_by_element","terms":["fire"]}`},
			{"POST", "/stream", `{"document":{"collection":"spells","id":"1"}}`},
			{"GET", "/sse?collection=spells", ``},
			{"GET", "/sse?collection=spells&id=1", ``},
		} {
			resp := do(t, c, rq.method, ts.URL+rq.path, rq.body, nil)
			s := &stream{name: proto + " " + rq.path + " " + rq.body, resp: resp}
			streams = append(streams, s)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %s", s.name, resp.Status)
			}
			s.r = newEvReader(t, resp)
			if w, err := s.r.next(); err != nil || w.Type != "start" {
				t.Fatalf("%s: %+v %v", s.name, w, err)
			}
		}
	}
	// Every stream has one event after its start: a set add of spells/2,
	// or the update of spells/1.
	commit(t, b, func(tx *broker.Tx) error {
		if err := tx.Create(txlog.Ref{Collection: "spells", ID: "2"}, []byte(`{"element":"fire"}`)); err != nil {
			return err
		}
		return tx.Update(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{"level":2}`))
	})
	for _, s := range streams {
		w, err := s.r.next()
		if err != nil || w.Cursor == "" {
			t.Fatalf("%s: %+v %v", s.name, w, err)
		}
		s.last = w.Cursor
	}
	if n := b.Stats().Subscriptions; n != int64(len(streams)) {
		t.Fatalf("%d subscriptions for %d streams", n, len(streams))
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	for _, s := range streams {
		e, last := readUntilError(t, s.r)
		if e.Event.Code != CodeShuttingDown || e.Event.Cursor != s.last || (last != "" && last != s.last) {
			t.Errorf("%s: %s, want shutting_down with the cursor %s", s.name, e.Raw, s.last)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every handler has returned, and closed its subscription, by then.
	if n := b.Stats().Subscriptions; n != 0 {
		t.Fatalf("Shutdown returned with %d subscriptions open", n)
	}
}

// Shutdown returns only when every stream handler has returned: here one
// is held inside the Authorize hook's re-check, where ending its stream
// cannot reach it.
func TestShutdownWaitsForHandlers(t *testing.T) {
	var hold atomic.Bool
	entered := make(chan struct{})
	release := make(chan struct{})
	ts, srv, b := testServer(t, func(s *Server) {
		s.Heartbeat = 5 * time.Millisecond
		s.ShutdownWindow = time.Millisecond
		s.Authorize = func(*http.Request, subscription.Target) error {
			if hold.CompareAndSwap(true, false) {
				close(entered)
				<-release
			}
			return nil
		}
	})
	c := client("h2c")
	defer c.CloseIdleConnections()
	resp := do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
	defer resp.Body.Close()
	r := newEvReader(t, resp)
	if w, err := r.next(); err != nil || w.Type != "start" {
		t.Fatalf("%+v %v", w, err)
	}
	hold.Store(true)
	<-entered // the handler is held in the re-check

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// A negative check, so a bounded wait: Shutdown must not return while
	// the handler is held.
	select {
	case err := <-done:
		close(release)
		t.Fatalf("Shutdown returned (%v) while a stream handler was still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := b.Stats().Subscriptions; n != 0 {
		t.Fatalf("Shutdown returned with %d subscriptions open", n)
	}
	e, _ := readUntilError(t, r)
	if e.Event.Code != CodeShuttingDown {
		t.Fatalf("%s", e.Raw)
	}
}

// Shutdown gives up when its context ends, leaving the streams that have
// not ended yet running.
func TestShutdownContext(t *testing.T) {
	ts, srv, b := testServer(t, func(s *Server) { s.ShutdownWindow = time.Hour })
	c := client("h1")
	defer c.CloseIdleConnections()
	resp := do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
	defer resp.Body.Close()
	r := newEvReader(t, resp)
	if w, err := r.next(); err != nil || w.Type != "start" {
		t.Fatalf("%+v %v", w, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	txn := createSpell(t, b, "1", "fire")
	if w, err := r.next(); err != nil || w.Type != "set" || w.Txn != uint64(txn) {
		t.Fatalf("the stream after a Shutdown that gave up: %+v %v", w, err)
	}
	checkError(t, do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil), http.StatusServiceUnavailable, CodeShuttingDown)
}

// A stream ends at MaxLifetime with stream_lifetime and its cursor, by
// finishing its response: on HTTP/1.1 the connection is used again.
func TestMaxLifetime(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			var ra remoteAddrs
			ts, _, _ := testServer(t, func(s *Server) {
				s.MaxLifetime = 30 * time.Millisecond
				s.Authorize = ra.authorize
			})
			c := client(proto)
			defer c.CloseIdleConnections()
			var addr string
			for i := range 2 {
				resp := do(t, c, "GET", ts.URL+"/sse?collection=spells", "", nil)
				r := newEvReader(t, resp)
				w, err := r.next()
				if err != nil || w.Type != "start" {
					t.Fatalf("%+v %v", w, err)
				}
				e, _ := readUntilError(t, r)
				resp.Body.Close()
				if e.Event.Code != CodeStreamLifetime || e.Event.Cursor != w.Cursor {
					t.Fatalf("%s, want stream_lifetime with the cursor %s", e.Raw, w.Cursor)
				}
				if i == 0 {
					addr = ra.last()
				} else if ra.last() != addr {
					t.Fatalf("the second stream came on a new connection (%s, then %s): the first was cut, not finished", addr, ra.last())
				}
			}
		})
	}
}

// A client that stops reading is cut off after the write timeout, and
// everything its stream held is freed, while commits go on unhindered.
func TestWriteTimeout(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			ts, srv, b := testServer(t, func(s *Server) { s.WriteTimeout = 50 * time.Millisecond })
			c := client(proto)
			defer c.CloseIdleConnections()
			resp := do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells","data":true}`, nil)
			defer resp.Body.Close()
			r := newEvReader(t, resp)
			if w, err := r.next(); err != nil || w.Type != "start" {
				t.Fatalf("%+v %v", w, err)
			}
			// The client reads no more. 16 MiB of events: more than the
			// socket buffers and the HTTP/2 flow-control window.
			pad := strings.Repeat("x", 64<<10)
			for i := range 256 {
				commit(t, b, func(tx *broker.Tx) error {
					return tx.Create(txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}, []byte(`{"pad":"`+pad+`"}`))
				})
			}
			waitFor(t, 5*time.Second, "the stalled stream to be cut off", func() bool { return b.Stats().Subscriptions == 0 })
			if st := srv.Stats(); st.WriteTimeouts != 1 || st.Open[ProtocolNDJSON] != 0 {
				t.Fatalf("stats %+v: want the one write timeout, no stream open", st)
			}
			// The response was cut, not finished.
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Fatalf("the stalled stream's response ended cleanly")
			}
		})
	}
}

// A multiplexed stream ends at MaxLifetime like any other: with one error
// event (valid JSON, on NDJSON too) carrying the compound cursor, from
// which every subscription resumes.
func TestMultiplexedStreamLifetime(t *testing.T) {
	const subs = `{"a":{"collection":"spells"},"b":{"index":"spells_by_element","terms":["fire"]}}`
	for _, kind := range []string{"ndjson", "sse"} {
		t.Run(kind, func(t *testing.T) {
			ts, _, b := testServer(t, func(s *Server) { s.MaxLifetime = 30 * time.Millisecond })
			c := client("h2c")
			defer c.CloseIdleConnections()
			open := func(cursor string) *http.Response {
				if kind == "ndjson" {
					body := `{"subscriptions":` + subs + `}`
					if cursor != "" {
						body = `{"subscriptions":` + subs + `,"cursor":"` + cursor + `"}`
					}
					return do(t, c, "POST", ts.URL+"/stream", body, nil)
				}
				var h http.Header
				if cursor != "" {
					h = http.Header{"Last-Event-Id": {cursor}}
				}
				return do(t, c, "GET", ts.URL+"/sse?subscriptions="+url.QueryEscape(subs), "", h)
			}
			resp := open("")
			r := newEvReader(t, resp)
			r.multiplexed = true
			e, _ := readUntilError(t, r)
			resp.Body.Close()
			if e.Event.Code != CodeStreamLifetime || e.Event.Cursor == "" {
				t.Fatalf("%s, want stream_lifetime with a cursor", e.Raw)
			}
			txn := createSpell(t, b, "1", "fire") // while no stream is open
			resp = open(e.Event.Cursor)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				checkError(t, resp, 200, "")
			}
			r = newEvReader(t, resp)
			r.multiplexed = true
			got := 0
			for got < 2 {
				w, err := r.next()
				if err != nil {
					t.Fatal(err)
				}
				if w.Type == "set" {
					if w.Txn != uint64(txn) {
						t.Fatalf("%+v", w)
					}
					got++ // one for each subscription
				}
			}
		})
	}
}
