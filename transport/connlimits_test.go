package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Subscriptions are bounded per connection, not only streams: many
// multiplexed streams on one HTTP/2 connection cannot hold more than
// MaxSubscriptionsPerConn together, and the one past it gets a clear 429.
func TestSubscriptionsPerConn(t *testing.T) {
	ts, _, b := testServer(t, func(s *Server) { s.MaxSubscriptionsPerConn = 300 })
	c := client("h2c")
	defer c.CloseIdleConnections()
	body := func(n, from int) string {
		subs := map[string]any{}
		for i := range n {
			subs[fmt.Sprint("s", from+i)] = map[string]any{"collection": "spells"}
		}
		b, _ := json.Marshal(map[string]any{"subscriptions": subs})
		return string(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, _ := openStream(t, ctx, c, ts.URL+"/stream", body(200, 0))
	defer first.Body.Close()
	checkError(t, do(t, c, "POST", ts.URL+"/stream", body(101, 200), nil), http.StatusTooManyRequests, CodeTooManySubscriptions)
	second, _ := openStream(t, ctx, c, ts.URL+"/stream", body(100, 200)) // exactly the limit
	defer second.Body.Close()
	if n := b.Stats().Subscriptions; n != 300 {
		t.Fatalf("%d subscriptions open, want 300", n)
	}
	checkError(t, do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil), http.StatusTooManyRequests, CodeTooManySubscriptions)
	// A stream's end gives its subscriptions back.
	second.Body.Close()
	waitFor(t, 10*time.Second, "the stream's subscriptions to be given back", func() bool {
		resp := do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// ConfigureServer sets the deadlines a public server needs, where the
// server has none, and keeps those it has.
func TestConfigureServerDeadlines(t *testing.T) {
	srv := &http.Server{}
	ConfigureServer(srv, 0)
	if srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.IdleTimeout != DefaultIdleTimeout ||
		srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("%+v", srv)
	}
	srv = &http.Server{ReadHeaderTimeout: time.Second, IdleTimeout: time.Minute}
	ConfigureServer(srv, 0)
	if srv.ReadHeaderTimeout != time.Second || srv.IdleTimeout != time.Minute {
		t.Errorf("ConfigureServer replaced the server's own deadlines: %+v", srv)
	}
}

// A body that trickles in, or never ends, is cut off after BodyTimeout
// with 408, on the stream and write endpoints, and a stream that was
// read in time lives on past it.
func TestSlowBodies(t *testing.T) {
	ts, _, b := testServer(t, func(s *Server) { s.BodyTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(ts.URL, "http://")
	for _, path := range []string{"/stream", "/write"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"coll", path)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: the server held an unfinished body: %v", path, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), CodeRequestTimeout) {
			t.Errorf("%s: %s %s", path, resp.Status, body)
		}
		conn.Close()
	}
	// The deadline is for the body alone.
	c := client("h1")
	defer c.CloseIdleConnections()
	resp := do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
	defer resp.Body.Close()
	r := newEvReader(t, resp)
	if w, err := r.next(); err != nil || w.Type != "start" {
		t.Fatalf("%+v %v", w, err)
	}
	time.Sleep(600 * time.Millisecond) // past BodyTimeout: the stream must not end
	createSpell(t, b, "1", "fire")
	if w, err := r.next(); err != nil || w.Type != "set" {
		t.Fatalf("after BodyTimeout: %+v %v", w, err)
	}
}
