package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/examples/spells/site"
	"github.com/tidings/tidings/internal/browsertest"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// observer is site.Observer: what the page shows, POSTed to /report.
const observer = site.Observer

// move is a move for the page to make through its form.
type move struct {
	Spell   string `json:"spell"`
	Element string `json:"element"`
}

// TestPageInBrowser loads the spells page in headless Chromium and reads
// back from its DOM:
//   - the sets in natural order of ids (2 before 10), from the snapshot
//     and as spells enter;
//   - a change committed through the write endpoint: the spell left one
//     set and entered another, and its history shows the diff;
//   - a move of a spell that does not exist, made through the page's
//     form: the page shows the server's error;
//   - a restart of the server behind the same address (a new in-memory
//     broker, so a new log): EventSource's reconnection is refused with
//     410 and EventSource stops; the page says that the server's history
//     is gone and shows the new server's state from a fresh snapshot,
//     opened without Last-Event-ID.
//
// A screenshot of the page is kept as a test artifact
// (go test -run TestPageInBrowser -artifacts -outputdir DIR ./examples/spells).
func TestPageInBrowser(t *testing.T) {
	bin := browsertest.Chromium(t)
	ctx, cancel := context.WithTimeoutCause(context.Background(), 90*time.Second, errors.New("the test's deadline"))
	defer cancel()

	// The server behind /tidings/, replaced by a new one on restart.
	var current atomic.Pointer[http.ServeMux]
	var brokers []*broker.Broker
	var servers []*transport.Server
	start := func() {
		b, err := newBroker("")
		if err != nil {
			t.Fatal(err)
		}
		mux, srv, _ := handler(b, nil)
		srv.Retry = 100 * time.Millisecond // EventSource's reconnection delay
		srv.ShutdownWindow = 1
		brokers, servers = append(brokers, b), append(servers, srv)
		current.Store(mux)
	}
	start()
	b := brokers[0]
	t.Cleanup(func() { // after chromium has gone: cleanups run last first
		for i, srv := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.Shutdown(ctx)
			cancel()
			brokers[i].Close()
		}
	})
	// A spell whose id sorts before 2 as text.
	if _, err := b.Commit(ctx, func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "10"}, []byte(`{"name":"Rain","element":"water"}`))
	}); err != nil {
		t.Fatal(err)
	}

	var shown browsertest.Report[map[string]string]
	var requests browsertest.Requests
	moves := make(chan move, 1)
	test := http.NewServeMux()
	test.Handle("/tidings/", requests.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	})))
	test.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Query().Has("plain") { // for the screenshot, which reports nothing
			w.Write(page)
			return
		}
		w.Write(bytes.Replace(page, []byte("</body>"), []byte(observer+"</body>"), 1))
	})
	test.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var state map[string]string
		if err := json.NewDecoder(r.Body).Decode(&state); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		shown.Set(state)
		select {
		case m := <-moves:
			json.NewEncoder(w).Encode(m)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	ts := httptest.NewServer(test)
	t.Cleanup(ts.Close)
	browsertest.Start(t, bin, ts.URL+"/")

	shown.Wait(t, ctx, "the seeded sets, ids in natural order", func(s map[string]string) bool {
		return ids(s["fire"]) == "1 5" && ids(s["water"]) == "2 6 10" && strings.Contains(s["water"], "Water Dart (2)")
	})

	resp, err := http.Post(ts.URL+"/tidings/write", "application/json",
		strings.NewReader(`{"writes":[{"action":"update","collection":"spells","id":"1","data":{"element":"water"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("write: %s", resp.Status)
	}
	state := shown.Wait(t, ctx, "Fire Beak moved to water, in order", func(s map[string]string) bool {
		return !strings.Contains(s["fire"], "Fire Beak") && strings.Contains(s["water"], "Fire Beak (1)") &&
			ids(s["water"]) == "1 2 6 10" && strings.Contains(s["history"], `diff {"element":"water"}`)
	})
	t.Logf("the page shows: %q", state)
	browsertest.Screenshot(t, ctx, bin, ts.URL+"/?plain", "spells.png", "--window-size=1100,700", "--timeout=3000")

	// A spell that does not exist, moved through the page's form.
	moves <- move{Spell: "99", Element: "air"}
	state = shown.Wait(t, ctx, "the error of moving spell 99", func(s map[string]string) bool {
		return strings.Contains(s["moveerror"], "99") && strings.Contains(s["moveerror"], "not_found")
	})
	t.Logf("moving spell 99: %q", state["moveerror"])

	// The server restarts behind the same address: a new broker, a new log.
	old := servers[0]
	start()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	old.Shutdown(sctx) // the page's stream ends with shutting_down
	scancel()
	state = shown.Wait(t, ctx, "the restarted server's state and why", func(s map[string]string) bool {
		return strings.Contains(s["notice"], "history is gone") && s["status"] == "live" &&
			ids(s["fire"]) == "1 5" && ids(s["water"]) == "2 6" && s["history"] == ""
	})
	t.Logf("after the restart the page shows: %q", state)
	// What the server saw: EventSource's reconnection with the old
	// cursor refused with 410, then a stream opened afresh.
	var sse []browsertest.Request
	for _, r := range requests.List() {
		if strings.HasSuffix(r.URL.Path, "/sse") {
			sse = append(sse, r)
		}
	}
	refused := slices.IndexFunc(sse, func(r browsertest.Request) bool {
		return r.Status == http.StatusGone && r.Header.Get("Last-Event-ID") != ""
	})
	if last := sse[len(sse)-1]; refused < 0 || last.Status != 200 || last.Header.Get("Last-Event-ID") != "" || last.URL.Query().Has("cursor") {
		t.Errorf("the page's stream requests: %v; want one with Last-Event-ID refused with 410, the last one without a cursor", sse)
	}
}

// ids lists the ids of a set as the page shows it, in order.
func ids(text string) string {
	var out []string
	for _, m := range idPattern.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return strings.Join(out, " ")
}

var idPattern = regexp.MustCompile(`\(([^()]+)\)`)
