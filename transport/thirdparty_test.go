package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"

	"github.com/tidings/tidings/subscription"
)

// goSSESeen is one thing the go-sse client reported: an event, or, with
// err set, the end of a connection (its OnRetry, just before it
// reconnects).
type goSSESeen struct {
	ev  gosse.Event
	err error
}

func (s goSSESeen) String() string {
	if s.err != nil {
		return "retry(" + s.err.Error() + ")"
	}
	return fmt.Sprintf("%s id=%.12s data=%.60s", s.ev.Type, s.ev.LastEventID, s.ev.Data)
}

func goSSESets(seen []goSSESeen) int {
	n := 0
	for _, s := range seen {
		if s.err == nil && s.ev.Type == "set" {
			n++
		}
	}
	return n
}

// TestThirdPartySSEClient reads our SSE stream with the client of
// github.com/tmaxmax/go-sse, over HTTP/1.1 and h2c, through a server-side
// break of two kinds: the stream's maximum lifetime (the server writes a
// stream_error event and finishes the response cleanly), and a cut of
// every client connection (httptest's CloseClientConnections). After each
// break the client reconnects by itself with Last-Event-ID, which the
// server sees; across the breaks every committed write arrives exactly
// once, in order.
//
// What the client does, as this test shows: stream_error is an ordinary
// named event to it (it dispatches it, with LastEventID still the cursor
// of the last event that had an id, and does not stop); the clean end of
// the body is "connection to server lost: EOF", after which it reconnects
// with the server's retry: delay, sending Last-Event-ID; a cut connection
// is the same with the read error.
func TestThirdPartySSEClient(t *testing.T) {
	for _, cut := range []string{"lifetime", "connection"} {
		for _, proto := range protocols {
			t.Run(cut+"/"+proto, func(t *testing.T) { testGoSSEResume(t, cut, proto) })
		}
	}
}

func testGoSSEResume(t *testing.T, cut, proto string) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), 30*time.Second, errors.New("test deadline"))
	defer cancel()

	var lastEventIDs watched[string] // of every stream request, in order
	ts, _, b := testServer(t, func(s *Server) {
		s.Retry = 10 * time.Millisecond
		if cut == "lifetime" {
			s.MaxLifetime = 400 * time.Millisecond
		}
		// Authorize is asked once at the start of each stream (and on
		// heartbeats, every 15s, longer than this test).
		s.Authorize = func(r *http.Request, _ subscription.Target) error {
			lastEventIDs.add(r.Header.Get("Last-Event-ID"))
			return nil
		}
	})
	hc := client(proto)
	defer hc.CloseIdleConnections()

	var seen watched[goSSESeen]
	clientCtx, stopClient := context.WithCancel(context.Background())
	defer stopClient()
	req, err := http.NewRequestWithContext(clientCtx, http.MethodGet, ts.URL+"/sse?collection=spells", nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := &gosse.Client{
		HTTPClient: hc,
		Backoff:    gosse.Backoff{InitialInterval: 10 * time.Millisecond},
		OnRetry:    func(err error, _ time.Duration) { seen.add(goSSESeen{err: err}) },
	}
	conn := sc.NewConnection(req)
	conn.SubscribeToAll(func(ev gosse.Event) { seen.add(goSSESeen{ev: ev}) })
	connected := make(chan error, 1)
	go func() { connected <- conn.Connect() }()
	defer func() {
		stopClient()
		if err := <-connected; !errors.Is(err, context.Canceled) {
			t.Errorf("Connect returned %v, want context.Canceled", err)
		}
	}()

	hasType := func(typ string) func([]goSSESeen) bool {
		return func(s []goSSESeen) bool {
			for _, x := range s {
				if x.err == nil && x.ev.Type == typ {
					return true
				}
			}
			return false
		}
	}
	seen.waitFor(t, ctx, "start", hasType("start"))

	want := commitSpells(t, b, "a", 3, 2)
	seen.waitFor(t, ctx, "the first events", func(s []goSSESeen) bool { return goSSESets(s) >= len(want) })
	switch cut {
	case "lifetime":
		seen.waitFor(t, ctx, "stream_error", hasType(SSEErrorEvent))
	case "connection":
		ts.CloseClientConnections()
	}
	// Commits while the client is away (or reconnecting).
	want = append(want, commitSpells(t, b, "b", 3, 1)...)
	ids := lastEventIDs.waitFor(t, ctx, "a reconnect", func(s []string) bool { return len(s) >= 2 })
	if ids[0] != "" || ids[1] == "" {
		t.Fatalf("Last-Event-ID of the first two requests: %q, want none, then a cursor", ids[:2])
	}
	// Commits after the reconnect.
	want = append(want, commitSpells(t, b, "c", 3, 1)...)
	all := seen.waitFor(t, ctx, "every event", func(s []goSSESeen) bool { return goSSESets(s) >= len(want) })

	// Every write once, in order, its id the cursor in its data.
	var got []committed
	cursors := map[string]bool{}
	breaks, empty := 0, 0
	last, ended := "", false
	for _, s := range all {
		if s.err != nil {
			if cut == "lifetime" && !ended {
				t.Errorf("break %d without a stream_error before it", breaks+1)
			}
			ended = false
			// The next request resumes from the last id before the break.
			breaks++
			ids := lastEventIDs.snapshot()
			if breaks < len(ids) && ids[breaks] != last {
				t.Errorf("reconnect %d sent Last-Event-ID %q; the client had %q", breaks, ids[breaks], last)
			}
			if cut == "connection" || breaks > 1 {
				t.Logf("break %d: %v", breaks, s.err)
			}
			continue
		}
		last = s.ev.LastEventID
		switch s.ev.Type {
		case "":
			if s.ev.Data == "" {
				empty++ // the "retry:" block at the start of each response
				continue
			}
			t.Errorf("unnamed event %q", s.ev.Data)
		case "set":
			w, err := parseWire([]byte(s.ev.Data))
			if err != nil {
				t.Fatal(err)
			}
			if w.Cursor != s.ev.LastEventID || cursors[w.Cursor] {
				t.Errorf("set event id %q, cursor %q (seen before: %v)", s.ev.LastEventID, w.Cursor, cursors[w.Cursor])
			}
			cursors[w.Cursor] = true
			got = append(got, committed{w.Txn, w.Event.Document.Ref.ID})
		case "start":
		case SSEErrorEvent:
			w, err := parseWire([]byte(s.ev.Data))
			if err != nil || w.Event.Code != CodeStreamLifetime || w.Event.Cursor != last {
				t.Errorf("stream_error %s (client's last id %q): %v", s.ev.Data, last, err)
			}
			ended = true
		default:
			t.Errorf("unexpected event %v", s)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("received %d writes:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
	}
	if breaks == 0 {
		t.Error("no break seen by the client")
	}
	if cut == "lifetime" {
		// On a clean end of the body the client reports EOF and reconnects.
		for _, s := range all {
			if s.err != nil && !errors.Is(s.err, io.EOF) {
				t.Errorf("break after a clean end: %v, want EOF", s.err)
			}
		}
	}
	t.Logf("%s/%s: %d writes exactly once across %d breaks; %d requests; go-sse dispatched %d empty unnamed events (one per retry: block); first break: %v",
		cut, proto, len(got), breaks, len(lastEventIDs.snapshot()), empty, firstBreak(all))
}

func firstBreak(s []goSSESeen) string {
	for _, x := range s {
		if x.err != nil {
			return strings.TrimSpace(x.err.Error())
		}
	}
	return "none"
}
