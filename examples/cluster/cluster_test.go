package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/examples/spells/site"
	"github.com/tidings/tidings/internal/browsertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if child() {
		// A server or a node of a test's cluster: this test binary again.
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// pageOf serves a node's page to chromium with site.Observer added (what
// the page shows comes back to report), everything else from the node.
func pageOf(t *testing.T, node string, report http.Handler) string {
	t.Helper()
	target, err := url.Parse(node)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // streams as they come
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(bytes.Replace(site.Page, []byte("</body>"), []byte(site.Observer+"</body>"), 1))
	})
	mux.Handle("POST /report", report)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

// write posts one write to a node's write endpoint.
func write(t *testing.T, node, body string) {
	t.Helper()
	resp, err := http.Post(node+"/tidings/write", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a write on %s: %s", node, resp.Status)
	}
}

// event is one SSE event: its id (a cursor) and data.
type event struct{ id, data string }

// sse reads an SSE stream, resuming after lastID if set, handing each
// event to each until it returns false or the stream ends.
func sse(ctx context.Context, url, lastID string, each func(event) bool) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("SSE at %s: %s", url, resp.Status)
	}
	var ev event
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		case line == "":
			if !each(ev) {
				return nil
			}
			ev = event{}
		}
	}
	return sc.Err()
}

// fireSSE is the SSE stream of the fire set.
const fireSSE = "/tidings/sse?index=spells_by_element&terms=%5B%22fire%22%5D"

// readSSE reads a node's SSE stream of the fire set, from lastID if set,
// until n events that carry an id; started is closed once the stream has
// started.
func readSSE(ctx context.Context, node, lastID string, n int, started chan<- struct{}) ([]event, error) {
	var got []event
	err := sse(ctx, node+fireSSE, lastID, func(e event) bool {
		if strings.Contains(e.data, `"type":"start"`) {
			if started != nil {
				close(started)
				started = nil
			}
		} else if e.id != "" {
			got = append(got, e)
		}
		return len(got) < n
	})
	if err == nil && len(got) < n {
		err = fmt.Errorf("SSE on %s: %d events, want %d", node, len(got), n)
	}
	return got, err
}

// change is what a set event says: its action and document id.
func change(t *testing.T, e event) string {
	t.Helper()
	var v struct {
		Event struct {
			Action   string
			Document struct{ Ref struct{ ID string } }
		}
	}
	if err := json.Unmarshal([]byte(e.data), &v); err != nil {
		t.Fatalf("%s: %v", e.data, err)
	}
	return v.Event.Action + " " + v.Event.Document.Ref.ID
}

// TestCluster runs the example: 3 NATS servers and 3 node processes. The
// page of every node (headless chromium) shows a spell written on node 0;
// an SSE subscriber's cursor from node 0 resumes on node 1 after node 0's
// process is killed, with exactly the events after it; node 0's page
// reloaded on node 1, and node 2's page, show what is written after.
func TestCluster(t *testing.T) {
	bin := browsertest.Chromium(t)
	ctx, cancel := context.WithTimeoutCause(context.Background(), 120*time.Second, errors.New("the test's deadline"))
	defer cancel()
	c, err := Start(ctx, Config{Addrs: []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop) // after the browsers: cleanups run last first
	if b := c.Banner(); !strings.Contains(b, c.Nodes[2].URL) || !strings.Contains(b, fmt.Sprint("kill -9 ", c.Nodes[0].PID())) || !strings.Contains(b, fmt.Sprint("kill -9 ", c.Servers[0].PID())) {
		t.Fatalf("the banner:\n%s", b)
	}

	shows := func(shown *browsertest.Report[map[string]string], what, set, name string) {
		t.Helper()
		shown.Wait(t, ctx, what, func(s map[string]string) bool { return strings.Contains(s[set], name) })
	}
	reports := make([]*browsertest.Report[map[string]string], 3)
	for i, n := range c.Nodes {
		reports[i] = &browsertest.Report[map[string]string]{}
		browsertest.Start(t, bin, pageOf(t, n.URL, reports[i]))
		shows(reports[i], fmt.Sprintf("node %d's page with the seeded spells", i), "fire", "Fire Beak")
	}

	// An SSE subscriber of the fire set on node 0 sees a spell written
	// on node 0, as every page does.
	started := make(chan struct{})
	sub := make(chan []event, 1)
	go func() {
		got, err := readSSE(ctx, c.Nodes[0].URL, "", 1, started)
		if err != nil {
			t.Error(err)
		}
		sub <- got
	}()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no SSE stream on node 0")
	}
	write(t, c.Nodes[0].URL, `{"writes":[{"action":"create","collection":"spells","id":"9","data":{"name":"Spark","element":"fire"}}]}`)
	for i := range c.Nodes {
		shows(reports[i], fmt.Sprintf("Spark in fire on node %d's page", i), "fire", "Spark")
	}
	got := <-sub
	if len(got) != 1 || change(t, got[0]) != "add 9" {
		t.Fatalf("the SSE subscriber on node 0: %v", got)
	}

	// Node 0 crashes. Writes on node 2; node 0's page, reloaded on node
	// 1, shows them, and so does node 2's; the subscriber's cursor,
	// resumed on node 1, gives exactly the events after it.
	c.Nodes[0].Kill()
	write(t, c.Nodes[2].URL, `{"writes":[{"action":"update","collection":"spells","id":"9","data":{"element":"water"}}]}`)
	write(t, c.Nodes[2].URL, `{"writes":[{"action":"create","collection":"spells","id":"10","data":{"name":"Ember","element":"fire"}}]}`)
	reloaded := &browsertest.Report[map[string]string]{}
	browsertest.Start(t, bin, pageOf(t, c.Nodes[1].URL, reloaded))
	shows(reloaded, "node 0's page reloaded on node 1, with Spark in water", "water", "Spark")
	shows(reloaded, "node 0's page reloaded on node 1, with Ember in fire", "fire", "Ember")
	shows(reports[2], "Spark in water on node 2's page", "water", "Spark")
	resumed, err := readSSE(ctx, c.Nodes[1].URL, got[0].id, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if change(t, resumed[0]) != "remove 9" || change(t, resumed[1]) != "add 10" {
		t.Fatalf("resumed on node 1 after node 0's cursor: %s, %s", resumed[0].data, resumed[1].data)
	}
}
