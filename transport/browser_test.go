package transport

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/internal/browsertest"
)

// browserPage opens an EventSource on the same origin, records every
// event it gets (its own open and error events, and the stream's start,
// set and stream_error events: id and data), shows them, and POSTs the
// whole record to /report after each one, one POST at a time, so that the
// last POST the server gets is everything the page has.
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>tidings EventSource</title>
<style>body{font:13px monospace} li{white-space:nowrap}</style></head>
<body><h1>EventSource /sse?collection=spells</h1><ol id="log"></ol>
<script>
const got = [];
let conn = 0, sending = false, again = false;
function report() {
  if (sending) { again = true; return; }
  sending = true; again = false;
  fetch("/report", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(got)})
    .catch(() => {})
    .finally(() => { sending = false; if (again) report(); });
}
const es = new EventSource("/sse?collection=spells");
function record(kind, e) {
  const r = {conn: conn, kind: kind, id: e.lastEventId || "", data: e.data || "", state: es.readyState};
  got.push(r);
  const li = document.createElement("li");
  li.textContent = "conn " + r.conn + " " + kind + " state=" + r.state + " id=" + r.id.slice(0, 16) + " " + r.data.slice(0, 90);
  document.getElementById("log").append(li);
  report();
}
es.addEventListener("open", (e) => { conn++; record("open", e); });
es.addEventListener("error", (e) => record("error", e));
for (const k of ["start", "set", "stream_error"]) es.addEventListener(k, (e) => record(k, e));
</script></body></html>
`

// pageRecord is one entry of what the page reports.
type pageRecord struct {
	Conn  int    `json:"conn"`
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Data  string `json:"data"`
	State int    `json:"state"`
}

// pageRecords is the whole record, as the page POSTs it.
type pageRecords []pageRecord

func (rs pageRecords) String() string { return joinLines(rs) }

func (r pageRecord) String() string {
	id := r.ID
	if len(id) > 10 {
		id = "…" + id[len(id)-10:] // cursors of one log share their start
	}
	return fmt.Sprintf("conn%d %s state=%d id=%s %.90s", r.Conn, r.Kind, r.State, id, r.Data)
}

// sseRequest is what the server saw of one SSE request.
type sseRequest struct {
	LastEventID string
	UserAgent   string
}

// TestBrowserEventSource opens an EventSource in headless Chromium on a
// page served by the test server, commits, lets the server end the stream
// (MaxLifetime: a stream_error event, then the response finishes
// cleanly), and checks that the browser reconnected by itself with
// Last-Event-ID (seen by the server) and that the page received every
// committed write exactly once, in order, with the id of each event its
// cursor. The page POSTs what it received to the test server.
//
// Run with -artifacts to keep eventsource.png, a screenshot of a page
// showing what the browser reported.
func TestBrowserEventSource(t *testing.T) {
	bin := browsertest.Chromium(t)
	ctx, cancel := context.WithTimeoutCause(context.Background(), 90*time.Second, errors.New("the test's deadline"))
	defer cancel()

	_, srv, b := testServer(t, func(s *Server) {
		s.MaxLifetime = 1500 * time.Millisecond
		s.Retry = 50 * time.Millisecond
	})
	var reqs watched[sseRequest]
	var records browsertest.Report[pageRecords]
	mux := http.NewServeMux()
	sseHandler := srv.SSE()
	mux.HandleFunc("GET /sse", func(w http.ResponseWriter, r *http.Request) {
		reqs.add(sseRequest{r.Header.Get("Last-Event-ID"), r.UserAgent()})
		sseHandler.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(browserPage))
	})
	mux.Handle("POST /report", &records)
	// What the page reported, as a page of its own, for the screenshot.
	mux.HandleFunc("GET /received", func(w http.ResponseWriter, r *http.Request) {
		var sb strings.Builder
		sb.WriteString(`<!doctype html><html><head><meta charset="utf-8"><style>body{font:12px monospace} li{white-space:nowrap}</style></head><body><h1>What the page's EventSource received</h1><ol>`)
		got, _ := records.Last()
		for _, rec := range got {
			fmt.Fprintf(&sb, "<li>%s</li>", html.EscapeString(rec.String()))
		}
		sb.WriteString(`</ol></body></html>`)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(sb.String()))
	})
	ts := httptest.NewUnstartedServer(mux)
	ConfigureServer(ts.Config, 0)
	ts.Start()
	t.Cleanup(ts.Close) // after chromium has gone: cleanups run last first
	browser := browsertest.Start(t, bin, ts.URL+"/")

	count := func(kind string) func(pageRecords) bool {
		return func(rs pageRecords) bool { return countKind(rs, kind) > 0 }
	}
	records.Wait(t, ctx, "the page's start event", count("start"))

	want := commitSpells(t, b, "a", 3, 2)
	records.Wait(t, ctx, "the first writes", func(rs pageRecords) bool { return countKind(rs, "set") >= len(want) })
	// The server ends the stream at its lifetime; the page gets
	// stream_error and EventSource reconnects by itself.
	records.Wait(t, ctx, "stream_error", count(SSEErrorEvent))
	want = append(want, commitSpells(t, b, "b", 3, 1)...)
	rq := reqs.waitFor(t, ctx, "the reconnect", func(rs []sseRequest) bool { return len(rs) >= 2 })
	if rq[0].LastEventID != "" || rq[1].LastEventID == "" {
		t.Fatalf("the first two SSE requests carried Last-Event-ID %q and %q; want none, then a cursor", rq[0].LastEventID, rq[1].LastEventID)
	}
	records.Wait(t, ctx, "the second connection", func(rs pageRecords) bool { return countKind(rs, "open") >= 2 })
	want = append(want, commitSpells(t, b, "c", 3, 1)...)
	got := records.Wait(t, ctx, "every write", func(rs pageRecords) bool { return countKind(rs, "set") >= len(want) })
	select {
	case <-browser.Exited():
		t.Errorf("chromium exited by itself: %v", browser.Err())
	default:
		browser.Stop()
	}
	reqList := reqs.snapshot()

	// Every write exactly once, in order, its id the cursor in its data.
	var sets []committed
	ids := map[string]bool{}
	lastID := map[int]string{} // the page's last event id, per connection
	var kinds []string
	for i, r := range got {
		kinds = append(kinds, fmt.Sprintf("%d:%s", r.Conn, r.Kind))
		switch r.Kind {
		case "set":
			w, err := parseWire([]byte(r.Data))
			if err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			if w.Cursor != r.ID || ids[r.ID] {
				t.Errorf("set event id %q, cursor %q, seen before: %v", r.ID, w.Cursor, ids[r.ID])
			}
			ids[r.ID] = true
			sets = append(sets, committed{w.Txn, w.Event.Document.Ref.ID})
		case "start":
			w, err := parseWire([]byte(r.Data))
			if err != nil || w.Cursor != r.ID {
				t.Errorf("start %v: %v", r, err)
			}
			// A resumed stream starts at the cursor it resumed from.
			if prev := lastID[r.Conn-1]; r.Conn > 1 && r.ID != prev {
				t.Errorf("connection %d started at %q, want the last id before the break, %q", r.Conn, r.ID, prev)
			}
		case SSEErrorEvent:
			w, err := parseWire([]byte(r.Data))
			if err != nil || w.Type != "error" || w.Event.Code != CodeStreamLifetime || w.Event.Cursor != r.ID || r.ID != lastID[r.Conn] {
				t.Errorf("stream_error %v (last id %q): %v", r, lastID[r.Conn], err)
			}
			// What the browser does next: its own error event, still
			// CONNECTING (0), not CLOSED (2), and then open again.
			if i+2 < len(got) && (got[i+1].Kind != "error" || got[i+1].State != 0 || got[i+2].Kind != "open") {
				t.Errorf("after stream_error: %v, %v; want error (state 0), open", got[i+1], got[i+2])
			}
		case "error":
			if r.State != 0 {
				t.Errorf("EventSource error with readyState %d: it gave up", r.State)
			}
		case "open":
			// The request that opened connection n resumed from the last
			// id the page had.
			if n := r.Conn; n > 1 && n <= len(reqList) && reqList[n-1].LastEventID != lastID[n-1] {
				t.Errorf("request %d carried Last-Event-ID %q; the page's last id was %q", n, reqList[n-1].LastEventID, lastID[n-1])
			}
		}
		if r.ID != "" {
			lastID[r.Conn] = r.ID
		}
	}
	if fmt.Sprint(sets) != fmt.Sprint(want) {
		t.Errorf("the page received %d writes:\n%v\nwant %d:\n%v", len(sets), sets, len(want), want)
	}
	if countKind(got, "open") < 2 || countKind(got, SSEErrorEvent) < 1 {
		t.Errorf("want at least one stream_error and a reopened connection: %v", kinds)
	}
	if !strings.Contains(reqList[0].UserAgent, "HeadlessChrome") {
		t.Errorf("User-Agent %q", reqList[0].UserAgent)
	}
	if t.Failed() {
		t.Logf("the page reported:\n%s", joinLines(got))
	}
	t.Logf("%s: %d writes exactly once over %d connections; SSE requests' Last-Event-ID: %q; the page saw: %s",
		reqList[0].UserAgent, len(sets), countKind(got, "open"), lastEventIDs(reqList), strings.Join(kinds, " "))

	browsertest.Screenshot(t, ctx, bin, ts.URL+"/received", "eventsource.png", "--window-size=1100,900")
}

func countKind(rs []pageRecord, kind string) int {
	n := 0
	for _, r := range rs {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

func lastEventIDs(rs []sseRequest) []string {
	var out []string
	for _, r := range rs {
		id := r.LastEventID
		if len(id) > 10 {
			id = "…" + id[len(id)-10:]
		}
		out = append(out, id)
	}
	return out
}

func joinLines[T fmt.Stringer](v []T) string {
	var sb strings.Builder
	for _, x := range v {
		sb.WriteString(x.String())
		sb.WriteByte('\n')
	}
	return sb.String()
}
