package transport

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
)

// remoteAddrs records, through the Authorize hook, the client address of
// every stream request: the connection it came on, as the server sees it.
type remoteAddrs struct {
	mu    sync.Mutex
	addrs []string
}

func (ra *remoteAddrs) authorize(r *http.Request, _ subscription.Target) error {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.addrs = append(ra.addrs, r.RemoteAddr)
	return nil
}

func (ra *remoteAddrs) last() string {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.addrs[len(ra.addrs)-1]
}

func (ra *remoteAddrs) distinct() map[string]int {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	m := map[string]int{}
	for _, a := range ra.addrs {
		m[a]++
	}
	return m
}

// openStream opens an NDJSON stream and reads its start event. The stream
// lives until ctx is cancelled or its body closed.
func openStream(t testing.TB, ctx context.Context, c *http.Client, url, body string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		checkError(t, resp, 200, "")
		t.FailNow()
	}
	r := bufio.NewReader(resp.Body)
	if w := readNDJSON(t, r); w.Type != "start" {
		resp.Body.Close()
		t.Fatalf("first event %+v", w)
	}
	return resp, r
}

// readNDJSON reads one event line, which must end with \r\n.
func readNDJSON(t testing.TB, r *bufio.Reader) wireEvent {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasSuffix(l, "\r\n") {
		t.Fatalf("line %q: %v", l, err)
	}
	w, err := parseWire([]byte(l))
	if err != nil {
		t.Fatalf("%q: %v", l, err)
	}
	return w
}

// 100 streams on one HTTP/2 connection are all live; the 101st is refused
// at once with 429; another connection is served; a slot freed is usable.
func TestStreamLimitHTTP2(t *testing.T) {
	var ra remoteAddrs
	ts, _, b := testServer(t, func(s *Server) { s.Authorize = ra.authorize })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c1 := client("h2c")
	defer c1.CloseIdleConnections()

	type open struct {
		resp   *http.Response
		r      *bufio.Reader
		cancel context.CancelFunc
	}
	var streams []open
	defer func() {
		for _, s := range streams {
			s.cancel()
			s.resp.Body.Close()
		}
	}()
	for range DefaultMaxStreamsPerConn {
		sctx, scancel := context.WithCancel(ctx)
		resp, r := openStream(t, sctx, c1, ts.URL+"/stream", `{"collection":"spells"}`)
		streams = append(streams, open{resp, r, scancel})
		if resp.ProtoMajor != 2 {
			t.Fatalf("HTTP/%d", resp.ProtoMajor)
		}
	}
	if d := ra.distinct(); len(d) != 1 {
		t.Fatalf("the %d streams came on %d connections: %v", DefaultMaxStreamsPerConn, len(d), d)
	}
	conn1 := ra.last()

	// All live: one commit reaches each of them.
	txn := createSpell(t, b, "1", "fire")
	for i, s := range streams {
		if w := readNDJSON(t, s.r); w.Type != "set" || w.Txn != uint64(txn) || w.Event.Document.Ref.ID != "1" {
			t.Fatalf("stream %d: %+v", i, w)
		}
	}

	// The 101st, on the same connection: 429 at once, not a hang.
	t0 := time.Now()
	resp := do(t, c1, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
	if resp.ProtoMajor != 2 || ra.last() != conn1 {
		t.Fatalf("the 101st came on another connection: %s, not %s", ra.last(), conn1)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	checkError(t, resp, http.StatusTooManyRequests, CodeTooManyStreams)
	t.Logf("the 101st stream was refused in %v", time.Since(t0))

	// Another connection is served, and its stream is live too.
	c2 := client("h2c")
	defer c2.CloseIdleConnections()
	sctx, scancel := context.WithCancel(ctx)
	resp2, r2 := openStream(t, sctx, c2, ts.URL+"/stream", `{"collection":"spells"}`)
	streams = append(streams, open{resp2, r2, scancel})
	if ra.last() == conn1 {
		t.Fatalf("the second client came on the first connection")
	}
	txn = createSpell(t, b, "2", "fire")
	for i, s := range streams {
		if w := readNDJSON(t, s.r); w.Type != "set" || w.Txn != uint64(txn) {
			t.Fatalf("stream %d: %+v", i, w)
		}
	}

	// Ending one stream of the first connection frees its slot: a new
	// stream there is served once the handler has returned (until then
	// it may still be refused, never left hanging).
	streams[0].cancel()
	streams[0].resp.Body.Close()
	for {
		if ctx.Err() != nil {
			t.Fatal("the freed slot was never usable")
		}
		resp := do(t, c1, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
		if ra.last() != conn1 {
			resp.Body.Close()
			t.Fatalf("the retry came on another connection")
		}
		if resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		checkError(t, resp, http.StatusTooManyRequests, CodeTooManyStreams)
	}
}

// On HTTP/1.1 every stream has its own connection: the limit per
// connection never bites, however many streams one client opens.
func TestStreamLimitHTTP1(t *testing.T) {
	const limit, n = 2, 6
	var ra remoteAddrs
	ts, _, b := testServer(t, func(s *Server) {
		s.MaxStreamsPerConn = limit
		s.Authorize = ra.authorize
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := client("h1")
	defer c.CloseIdleConnections()
	var rs []*bufio.Reader
	for range n {
		resp, r := openStream(t, ctx, c, ts.URL+"/stream", `{"collection":"spells"}`)
		defer resp.Body.Close()
		if resp.ProtoMajor != 1 {
			t.Fatalf("HTTP/%d", resp.ProtoMajor)
		}
		rs = append(rs, r)
	}
	if d := ra.distinct(); len(d) != n {
		t.Fatalf("%d streams on %d connections: %v", n, len(d), d)
	}
	txn := createSpell(t, b, "1", "fire")
	for i, r := range rs {
		if w := readNDJSON(t, r); w.Type != "set" || w.Txn != uint64(txn) {
			t.Fatalf("stream %d: %+v", i, w)
		}
	}
}

// A small limit on HTTP/2 applies per connection and to both kinds of
// stream, SSE included.
func TestStreamLimitCountsSSE(t *testing.T) {
	ts, _, _ := testServer(t, func(s *Server) { s.MaxStreamsPerConn = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := client("h2c")
	defer c.CloseIdleConnections()
	resp, _ := openStream(t, ctx, c, ts.URL+"/stream", `{"collection":"spells"}`)
	defer resp.Body.Close()
	sse := do(t, c, "GET", ts.URL+"/sse?collection=spells", "", nil)
	defer sse.Body.Close()
	if sse.StatusCode != 200 {
		t.Fatalf("second stream: %s", sse.Status)
	}
	checkError(t, do(t, c, "GET", ts.URL+"/sse?collection=spells", "", nil), http.StatusTooManyRequests, CodeTooManyStreams)
	checkError(t, do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil), http.StatusTooManyRequests, CodeTooManyStreams)
}
