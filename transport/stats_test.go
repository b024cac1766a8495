package transport

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
)

// The counters and the stream list say what the test did: the streams
// open by protocol, with their remote address, connection and
// subscriptions; the requests refused, by status; every byte the clients
// read.
func TestServerStats(t *testing.T) {
	ts, srv, b := testServer(t, func(s *Server) {
		s.MaxStreamsPerConn = 2
		s.MaxBodyBytes = 256
		s.ShutdownWindow = time.Millisecond
		s.Authorize = func(r *http.Request, _ subscription.Target) error {
			switch BearerToken(r) {
			case "nobody":
				return ErrUnauthorized
			case "outsider":
				return errors.New("not yours")
			}
			return nil
		}
	})
	h2 := client("h2c")
	defer h2.CloseIdleConnections()
	const multi = `{"a":{"collection":"spells"},"b":{"index":"spells_by_element","terms":["fire"]}}`
	sse := do(t, h2, "GET", ts.URL+"/sse?collection=spells", "", nil)
	mux := do(t, h2, "GET", ts.URL+"/sse?subscriptions="+url.QueryEscape(multi), "", nil)
	nd := do(t, client("h1"), "POST", ts.URL+"/stream", `{"index":"spells_by_element","terms":["fire"]}`, nil)
	var read int64
	counted := func(resp *http.Response) { resp.Body = &countingBody{resp.Body, &read} }
	for _, resp := range []*http.Response{sse, mux, nd} {
		counted(resp)
	}
	readers := []*evReader{newEvReader(t, sse), newEvReader(t, mux), newEvReader(t, nd)}
	readers[1].multiplexed = true
	for i, r := range readers {
		if w, err := r.next(); err != nil || w.Type != "start" {
			t.Fatalf("stream %d: %+v, %v", i, w, err)
		}
	}
	if n := mustNext(t, readers[1]); n.Type != "start" {
		t.Fatalf("the multiplexed stream's second start: %+v", n)
	}

	st := srv.Stats()
	if want := map[string]int64{ProtocolSSE: 2, ProtocolNDJSON: 1}; !maps.Equal(st.Open, want) {
		t.Fatalf("open %v, want %v", st.Open, want)
	}
	var listed []StreamStats
	for s := range srv.Streams() {
		listed = append(listed, s)
	}
	if len(listed) != 3 {
		t.Fatalf("%d streams listed, want 3", len(listed))
	}
	for _, s := range listed {
		if s.Remote == "" || s.Started.IsZero() || s.Detached {
			t.Fatalf("stream %+v", s)
		}
		switch {
		case s.Protocol == ProtocolNDJSON:
			if s.ConnStreams != 1 || len(s.Subscriptions) != 1 || s.Subscriptions[""].Target.Index != "spells_by_element" {
				t.Fatalf("NDJSON stream %+v", s)
			}
		case len(s.Subscriptions) == 2:
			if s.ConnStreams != 2 || s.Subscriptions["a"].Target.Kind != subscription.KindCollection ||
				s.Subscriptions["b"].Target.Kind != subscription.KindIndex {
				t.Fatalf("multiplexed stream %+v", s)
			}
		default:
			if s.Protocol != ProtocolSSE || s.ConnStreams != 2 || s.Subscriptions[""].Target.Kind != subscription.KindCollection {
				t.Fatalf("SSE stream %+v", s)
			}
		}
	}

	// Refusals, one of each.
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	for _, c := range []struct {
		status         int
		code           string
		method, path   string
		body           string
		header         http.Header
		sameConnection bool
	}{
		{400, CodeInvalidRequest, "GET", "/sse?collection=spells&fields=nonsense", "", nil, false},
		{401, CodeUnauthorized, "GET", "/sse?collection=spells", "", bearer("nobody"), false},
		{403, CodePermissionDenied, "GET", "/sse?collection=spells", "", bearer("outsider"), false},
		{404, CodeNotFound, "GET", "/sse?collection=nowhere", "", nil, false},
		{404, CodeNotFound, "GET", "/nothing", "", nil, false},
		{410, CodeHistoryUnavailable, "GET", "/sse?collection=spells&cursor=" + staleCursor(t), "", nil, false},
		{413, CodeBodyTooLarge, "POST", "/stream", `{"collection":"` + strings.Repeat("s", 300) + `"}`, nil, false},
		{429, CodeTooManyStreams, "GET", "/sse?collection=spells", "", nil, true}, // the third stream on h2's connection
	} {
		cl := client("h1")
		if c.sameConnection {
			cl = h2
		}
		resp := do(t, cl, c.method, ts.URL+c.path, c.body, c.header)
		checkError(t, resp, c.status, c.code)
	}
	want := map[int]int64{400: 1, 401: 1, 403: 1, 404: 2, 410: 1, 413: 1, 429: 1}
	if got := srv.Stats().Refused; !maps.Equal(got, want) {
		t.Fatalf("refused %v, want %v", got, want)
	}

	// Every byte the streams wrote, the clients read, up to their ending.
	createSpell(t, b, "1", "fire")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, resp := range []*http.Response{sse, mux, nd} {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	st = srv.Stats()
	if st.BytesWritten != read || read == 0 {
		t.Fatalf("%d bytes written, %d read", st.BytesWritten, read)
	}
	if st.Open[ProtocolSSE] != 0 || st.Open[ProtocolNDJSON] != 0 || st.Refused[503] != 0 {
		t.Fatalf("after Shutdown: %+v", st)
	}
	checkError(t, do(t, client("h1"), "GET", ts.URL+"/sse?collection=spells", "", nil), 503, CodeShuttingDown)
	if n := srv.Stats().Refused[503]; n != 1 {
		t.Fatalf("%d refused with 503", n)
	}
}

// staleCursor returns a cursor of another log: resuming from it is 410.
func staleCursor(t *testing.T) string {
	t.Helper()
	sub, err := newSpellsBroker(t).Subscribe(context.Background(), subscription.Collection("spells"), subscription.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	return url.QueryEscape(sub.StartCursor().String())
}

func mustNext(t *testing.T, r *evReader) wireEvent {
	t.Helper()
	w, err := r.next()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// countingBody adds what is read through it to *n.
type countingBody struct {
	io.ReadCloser
	n *int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	k, err := c.ReadCloser.Read(p)
	*c.n += int64(k)
	return k, err
}
