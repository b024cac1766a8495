package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// A term with HTML in it, that the page must escape.
const htmlTerm = `<b>fire</b>&`

// rig is a broker with a transport.Server and the admin view on one real
// HTTP server: two SSE streams and an NDJSON one that keep reading, an
// in-process subscription that keeps up, and one that stalls.
type rig struct {
	b       *broker.Broker
	ts      *httptest.Server
	cl      *http.Client
	stalled *broker.Subscription
	keeping *broker.Subscription
	commits int64
}

func newRig(t *testing.T) *rig {
	t.Helper()
	b, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &transport.Server{Broker: b}
	mux := http.NewServeMux()
	mux.Handle("/tidings/", srv)
	mux.Handle("/admin/", &Handler{Broker: b, Transport: srv})
	ts := httptest.NewUnstartedServer(mux)
	transport.ConfigureServer(ts.Config, 0)
	ts.Start()
	cl := &http.Client{Transport: &http.Transport{}}
	r := &rig{b: b, ts: ts, cl: cl}

	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	stalledDone := make(chan struct{})
	var readers []chan struct{}
	t.Cleanup(func() {
		cancel() // ends the streams' requests
		for _, done := range readers {
			<-done
		}
		close(release)
		<-stalledDone
		sctx, stop := context.WithTimeout(context.Background(), 0)
		defer stop()
		srv.ShutdownWindow = 1
		srv.Shutdown(sctx)
		cl.CloseIdleConnections()
		ts.Close()
		b.Close()
	})

	// Streams that read whatever comes.
	terms, _ := json.Marshal([]string{htmlTerm})
	for _, req := range []*http.Request{
		mustRequest(t, ctx, "GET", ts.URL+"/tidings/sse?collection=spells", ""),
		mustRequest(t, ctx, "GET", ts.URL+"/tidings/sse?index=spells_by_element&terms="+url.QueryEscape(string(terms)), ""),
		mustRequest(t, ctx, "POST", ts.URL+"/tidings/stream", `{"index":"spells_by_element","terms":["water"]}`),
	} {
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s", req.Method, req.URL, resp.Status)
		}
		done := make(chan struct{})
		readers = append(readers, done)
		go func() {
			defer close(done)
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
		}()
	}

	// In process: one that keeps up, and one that takes its start event
	// and then stops reading, with room for two events.
	if r.keeping, err = b.Subscribe(ctx, subscription.Collection("spells"), subscription.Options{}); err != nil {
		t.Fatal(err)
	}
	r.keeping.Deliver(func([]subscription.Event) bool { return true })
	if r.stalled, err = b.Subscribe(ctx, subscription.Collection("spells"), subscription.Options{Buffer: 2}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(stalledDone)
		for range r.stalled.Events() {
			<-release
			return
		}
	}()
	return r
}

func mustRequest(t *testing.T, ctx context.Context, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// commit creates n spells of element fire, one commit each.
func (r *rig) commit(t *testing.T, n int) {
	t.Helper()
	for range n {
		r.commits++
		id := fmt.Sprint(r.commits)
		if _, err := r.b.Commit(context.Background(), func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"fire"}`))
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// get fetches the view at path with an Accept header (none if empty).
func (r *rig) get(t *testing.T, method, path, accept string) (*http.Response, string) {
	t.Helper()
	req := mustRequest(t, context.Background(), method, r.ts.URL+path, "")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := r.cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func (r *rig) report(t *testing.T, path, accept string) Report {
	t.Helper()
	resp, body := r.get(t, "GET", path, accept)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET %s: %s %v\n%s", path, resp.Status, resp.Header, body)
	}
	var rep Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
	return rep
}

// eventually polls check, on the JSON view, until it returns "" or 10s
// pass: the streams' writers take their events from another goroutine.
func (r *rig) eventually(t *testing.T, check func(Report) string) Report {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep := r.report(t, "/admin/?format=json", "")
		why := check(rep)
		if why == "" {
			return rep
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(rep, "", "  ")
			t.Fatalf("%s\n%s", why, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled checks that the view lists 5 subscriptions, the stalled one
// first and behind, and every other one keeping up.
func (r *rig) settled(stalledID uint64) func(Report) string {
	return func(rep Report) string {
		if len(rep.Subscriptions) != 5 {
			return fmt.Sprintf("%d listed", len(rep.Subscriptions))
		}
		if first := rep.Subscriptions[0]; first.ID != stalledID || first.Lag <= 0 || first.Behind <= 0 {
			return "the stalled subscription is not first, or not behind"
		}
		for _, e := range rep.Subscriptions[1:] {
			if e.Lag != 0 || e.Behind != 0 || e.Queued != 0 {
				return fmt.Sprintf("subscription %d is behind", e.ID)
			}
		}
		return ""
	}
}

// The JSON view lists the stalled subscription first, behind, and every
// other one keeping up; the streams with their protocol and address; the
// totals as the test made them.
func TestJSON(t *testing.T) {
	r := newRig(t)
	r.eventually(t, func(rep Report) string {
		if rep.Streams != 3 || rep.Total != 5 {
			return fmt.Sprintf("%d streams and %d subscriptions listed, want 3 and 5", rep.Streams, rep.Total)
		}
		return ""
	})
	r.commit(t, 5) // more than the stalled one's queue holds
	stalledID := r.stalled.Stats().ID
	rep := r.eventually(t, r.settled(stalledID))

	first := rep.Subscriptions[0]
	if first.Stream != nil || first.Target != `Documents(Collection("spells"))` || first.Kind != "collection" ||
		first.Overflows != 1 || first.Behind != 5 {
		t.Fatalf("the stalled subscription: %+v", first)
	}
	protocols := map[string]int{}
	inProcess := 0
	for _, e := range rep.Subscriptions {
		if e.Started.IsZero() {
			t.Fatalf("subscription %+v", e)
		}
		if e.Stream == nil {
			inProcess++
			continue
		}
		s := e.Stream
		protocols[s.Protocol]++
		host, _, err := net.SplitHostPort(s.Remote)
		if err != nil || host != "127.0.0.1" || s.Started.IsZero() || s.Detached || s.ConnStreams != 1 ||
			s.Subscriptions != 1 || s.Name != "" {
			t.Fatalf("stream of subscription %d: %+v", e.ID, s)
		}
	}
	if inProcess != 2 || protocols[transport.ProtocolSSE] != 2 || protocols[transport.ProtocolNDJSON] != 1 {
		t.Fatalf("%d in process, streams by protocol %v", inProcess, protocols)
	}

	// The totals, the broker's and the transport's.
	if rep.Broker.Commits != 5 || rep.Broker.Subscriptions != 5 || rep.Broker.Overflows != 1 ||
		rep.Broker.Commit.Count != 5 || rep.Broker.Commit.P50 <= 0 || rep.Broker.Commit.P99 < rep.Broker.Commit.P50 {
		t.Fatalf("broker totals %+v", rep.Broker)
	}
	if tr := rep.Transport; tr == nil || tr.Open[transport.ProtocolSSE] != 2 || tr.Open[transport.ProtocolNDJSON] != 1 ||
		tr.BytesWritten == 0 {
		t.Fatalf("transport totals %+v", rep.Transport)
	}

	// Asked for by Accept, the same; with a limit, the most behind.
	if rep := r.report(t, "/admin/", "application/json"); rep.Total != 5 || len(rep.Subscriptions) != 5 {
		t.Fatalf("with Accept: application/json: %+v", rep)
	}
	rep = r.report(t, "/admin/?format=json&limit=1", "")
	if rep.Total != 5 || rep.Limit != 1 || len(rep.Subscriptions) != 1 || rep.Subscriptions[0].ID != stalledID {
		t.Fatalf("limit=1: %+v", rep)
	}
	if rep := r.report(t, "/admin/?format=json&limit=0", ""); rep.Total != 5 || len(rep.Subscriptions) != 0 ||
		rep.Subscriptions == nil {
		t.Fatalf("limit=0: %+v", rep)
	}
}

// The page shows the same in a table, escaped; other methods get 405, a
// bad limit or format 400.
func TestPage(t *testing.T) {
	r := newRig(t)
	r.eventually(t, func(rep Report) string {
		if rep.Streams != 3 {
			return "streams not open yet"
		}
		return ""
	})
	r.commit(t, 5)
	r.eventually(t, r.settled(r.stalled.Stats().ID))
	resp, body := r.get(t, "GET", "/admin/", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET /admin/: %s %v", resp.Status, resp.Header)
	}
	for _, want := range []string{
		`<tr class="behind"><td class="n">` + fmt.Sprint(r.stalled.Stats().ID) + `</td><td class="t">Documents(Collection(&#34;spells&#34;))</td>`,
		`<td class="t">Match(Index(&#34;spells_by_element&#34;), &#34;&lt;b&gt;fire&lt;/b&gt;&amp;&#34;)</td>`,
		`<td>in process</td>`,
		`<td>sse from 127.0.0.1:`,
		`<td>ndjson from 127.0.0.1:`,
		`5 of 5 (3 streams), the most behind first.`,
		`<th>sse streams open</th><td class="n">2</td>`,
		`<a href="?format=json">JSON</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page has no %s", want)
		}
	}
	if strings.Contains(body, htmlTerm) || strings.Contains(body, "<script") {
		t.Error("the page has the target's HTML unescaped, or a script")
	}
	if n := strings.Count(body, "<tr class=\"behind\">"); n != 1 {
		t.Errorf("%d rows behind, want 1", n)
	}
	if t.Failed() || os.Getenv("ADMIN_DUMP") != "" {
		t.Log(body)
	}

	// With a limit, a link to list them all.
	_, body = r.get(t, "GET", "/admin/?limit=2", "")
	if !strings.Contains(body, "2 of 5 (3 streams)") || !strings.Contains(body, `<a href="?limit=5">List all 5</a>`) {
		t.Errorf("limit=2: %s", body)
	}

	if resp, _ := r.get(t, "HEAD", "/admin/", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: %s", resp.Status)
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"POST", "/admin/", http.StatusMethodNotAllowed},
		{"DELETE", "/admin/?format=json", http.StatusMethodNotAllowed},
		{"GET", "/admin/?limit=-1", http.StatusBadRequest},
		{"GET", "/admin/?limit=many", http.StatusBadRequest},
		{"GET", "/admin/?format=xml", http.StatusBadRequest},
	} {
		resp, _ := r.get(t, c.method, c.path, "")
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %s, want %d", c.method, c.path, resp.Status, c.status)
		}
		if c.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, resp.Header.Get("Allow"))
		}
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                    "0",
		-time.Second:                         "0",
		512 * time.Microsecond:               "512µs",
		1234567 * time.Nanosecond:            "1.2ms",
		2345678901 * time.Nanosecond:         "2.35s",
		3*time.Minute + 12*time.Second + 400: "3m12s",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%d) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 20: "3.0 MiB"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}
