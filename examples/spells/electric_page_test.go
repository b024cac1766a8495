package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/browsertest"
	"github.com/tidings/tidings/internal/nodetest"
	"github.com/tidings/tidings/txlog"
)

// electricNode is the pinned Node project of transport/electric's tests,
// whose npm ci installs the client that site/electric/ vendors.
var electricNode = filepath.Join("..", "..", "transport", "electric", "testdata", "node")

// The vendored client is the one the lockfile pins, byte for byte, with
// its licenses: site/electric/README.md names the lockfile's version and
// integrity (always checked), and the files equal those npm ci installs
// (checked when node_modules is there; it must be in CI).
func TestVendoredElectricClient(t *testing.T) {
	lockJSON, err := os.ReadFile(filepath.Join(electricNode, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct{ Version, Integrity string }
	}
	if err := json.Unmarshal(lockJSON, &lock); err != nil {
		t.Fatal(err)
	}
	pinned := lock.Packages["node_modules/@electric-sql/client"]
	readme, err := os.ReadFile(filepath.Join("site", "electric", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Version == "" || !bytes.Contains(readme, []byte("\n"+pinned.Version+", byte for byte")) ||
		!bytes.Contains(readme, []byte(pinned.Integrity)) {
		t.Errorf("site/electric/README.md does not name the pinned @electric-sql/client %s (%s)", pinned.Version, pinned.Integrity)
	}

	nodetest.Need(t, electricNode, "@electric-sql/client")
	modules := filepath.Join(electricNode, "node_modules")
	installed := mustRead(t, filepath.Join(modules, "@electric-sql", "client", "package.json"))
	var pkg struct{ Version string }
	if err := json.Unmarshal(installed, &pkg); err != nil || pkg.Version != pinned.Version {
		t.Fatalf("node_modules has @electric-sql/client %q, the lockfile %s (%v): run npm ci in %s", pkg.Version, pinned.Version, err, electricNode)
	}
	for vendored, from := range map[string]string{
		"index.browser.mjs":          "@electric-sql/client/dist/index.browser.mjs",
		"LICENSE":                    "@electric-sql/client/LICENSE",
		"LICENSE.fetch-event-source": "@microsoft/fetch-event-source/LICENSE",
	} {
		want, err := os.ReadFile(filepath.Join(modules, filepath.FromSlash(from)))
		if err != nil {
			t.Error(err)
			continue
		}
		got, err := os.ReadFile(filepath.Join("site", "electric", vendored))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("site/electric/%s differs from node_modules/%s (%v): copy it again (site/electric/README.md)", vendored, from, err)
		}
	}
	if !bytes.Equal(electricClient, mustRead(t, filepath.Join("site", "electric", "index.browser.mjs"))) {
		t.Error("the embedded module is not site/electric/index.browser.mjs")
	}
	// One module, nothing else to serve: it imports nothing.
	if bytes.Contains(electricClient, []byte("import ")) || bytes.Contains(electricClient, []byte("import(")) {
		t.Error("the client's browser module imports something: serve that too")
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The example as run() starts it serves the shape of its printed curl
// command, the Electric page and the client's module; and its shutdown
// ends a live long-poll of the Electric front (with 503, which the client
// retries) instead of waiting for its 20 s hold.
func TestElectricServed(t *testing.T) {
	b, s := startExample(t, "")
	if text := banner(s); !strings.Contains(text, "curl '"+shapeURL(s.url)+"'") || !strings.Contains(text, s.url+"/electric.html") {
		t.Errorf("the banner does not show the shape's curl command and the Electric page:\n%s", text)
	}

	get := func(u string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, body := get(shapeURL(s.url))
	var msgs []struct {
		Headers struct{ Operation string }
		Value   map[string]any
	}
	if err := json.Unmarshal(body, &msgs); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the printed shape: %s %s (%v)", resp.Status, body, err)
	}
	var rows []map[string]any
	for _, m := range msgs {
		if m.Headers.Operation != "insert" {
			t.Errorf("the initial rows have a %q", m.Headers.Operation)
		}
		rows = append(rows, m.Value)
	}
	if want := fireSet(t, b); !reflect.DeepEqual(rows, want) {
		t.Errorf("the printed shape has rows %v, want the fire set %v", rows, want)
	}
	handle, offset := resp.Header.Get("Electric-Handle"), resp.Header.Get("Electric-Offset")

	for path, want := range map[string]struct {
		contentType string
		body        []byte
	}{
		"/electric.html":       {"text/html; charset=utf-8", electricPage},
		"/electric-client.mjs": {"text/javascript; charset=utf-8", electricClient},
	} {
		resp, body := get(s.url + path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want.contentType || !bytes.Equal(body, want.body) {
			t.Errorf("GET %s: %s, %s, %d bytes", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
	}

	// A live long-poll, up to date: it waits for a change.
	type answer struct {
		status     int
		retryAfter string
		err        error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get(s.url + "/electric/v1/shape?table=spells&where=element%20%3D%20%27fire%27&live=true" +
			"&handle=" + url.QueryEscape(handle) + "&offset=" + url.QueryEscape(offset))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	}()
	time.Sleep(300 * time.Millisecond) // for it to be held
	select {
	case a := <-answered:
		t.Fatalf("the live long-poll answered before any change: %+v", a)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	s.shutdown(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutting down with a live long-poll open took %v", took)
	}
	if a := <-answered; a.err != nil || a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Errorf("at shutdown the live long-poll got %+v, want 503 with Retry-After", a)
	}
}

// electricSnippet is the README's script for ElectricSQL's client.
var electricSnippet = regexp.MustCompile(`(?s)node --input-type=module - <<'EOF'\n(.*?)\nEOF\n`)

// The README's snippet for ElectricSQL's client, as written there, against
// the example as run() starts it (on a port of its own): it prints the
// fire set's rows, the test moves spell 1 to water through the native
// write endpoint, as the README's curl does, and it prints the fire set
// without it: the broker's fire set each time.
func TestREADMEElectricSnippet(t *testing.T) {
	readme := readREADME(t, "transport/electric/testdata/node")
	snippets := electricSnippet.FindAllStringSubmatch(readme, -1)
	const origin = "http://localhost:8080"
	if len(snippets) != 1 || strings.Count(snippets[0][1], origin) != 1 {
		t.Fatalf("the README has %d Electric snippets, want 1 that uses %s once", len(snippets), origin)
	}
	nodetest.Need(t, electricNode, "@electric-sql/client")
	b, s := startExample(t, "")
	lines := runNode(t, electricNode, strings.Replace(snippets[0][1], origin, s.url, 1), "--input-type=module")
	printed := func(what string) string {
		t.Helper()
		line := lines.Next(t, time.Minute)
		var rows []map[string]any
		if err := json.Unmarshal([]byte(line), &rows); err != nil {
			t.Fatalf("%s: the snippet printed %q (%v)", what, line, err)
		}
		if want := fireSet(t, b); !reflect.DeepEqual(rows, want) {
			t.Fatalf("%s: the snippet printed %s, want the fire set %v", what, line, want)
		}
		t.Logf("%s: the snippet printed %s", what, line)
		return line
	}
	if line := printed("at first"); !strings.Contains(readme, "It prints `"+line+"`") {
		t.Errorf("the README does not say that the snippet prints %s", line)
	}
	moveSpell1To(t, s.url)
	printed("spell 1 moved to water")
}

// fireSet is the broker's fire set as the shape's rows: each spell whose
// element is fire, with its id, in natural order of ids.
func fireSet(t *testing.T, b *broker.Broker) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for i := 1; i <= 20; i++ {
		id := strconv.Itoa(i)
		doc, ok := b.Get(txlog.Ref{Collection: "spells", ID: id})
		if !ok {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(doc.Data, &row); err != nil {
			t.Fatal(err)
		}
		if row["element"] == "fire" {
			row["id"] = id
			rows = append(rows, row)
		}
	}
	return rows
}

// electricObserver is added to the Electric page under test: every
// 100 ms it POSTs what the page shows (the status line and each row's
// JSON) to /report on the page's own origin.
const electricObserver = `<script>
setInterval(() => {
  const rows = [...document.querySelectorAll("#fire li code")].map((c) => c.textContent);
  fetch("/report", {method: "POST", body: JSON.stringify({status: document.getElementById("status").innerText, rows})});
}, 100);
</script>`

// electricShown is what the Electric page reports it shows.
type electricShown struct {
	Status string   `json:"status"`
	Rows   []string `json:"rows"` // each row's JSON, in the order shown
}

// rows are the rows shown, decoded, or nil and false if one does not
// decode.
func (s electricShown) rows() ([]map[string]any, bool) {
	var rows []map[string]any
	for _, r := range s.Rows {
		var row map[string]any
		if err := json.Unmarshal([]byte(r), &row); err != nil {
			return nil, false
		}
		rows = append(rows, row)
	}
	return rows, true
}

// electricRig is the Electric page in chromium on one origin, syncing
// from the example's server on another.
type electricRig struct {
	b          *broker.Broker
	shown      *browsertest.Report[electricShown]
	requests   *browsertest.Requests
	pageOrigin string // the page's, which serves it, its module and /report
	pageURL    string // the page, syncing from the example's origin
}

// startElectricPage serves the example's handler, made with
// allowOrigins(the page's origin) and wrapped in wrap, on one origin
// (127.0.0.1 and a port), the Electric page and the client's module on
// another (127.0.0.1 and another port), and opens the page in chromium
// with ?server= the first origin, and query.
func startElectricPage(t *testing.T, bin string, allowOrigins func(page string) []string, wrap func(http.Handler) http.Handler, query string) *electricRig {
	t.Helper()
	b, err := newBroker("")
	if err != nil {
		t.Fatal(err)
	}
	rig := &electricRig{b: b, shown: new(browsertest.Report[electricShown]), requests: new(browsertest.Requests)}

	pages := http.NewServeMux()
	pages.Handle("POST /report", rig.shown)
	observed := bytes.Replace(electricPage, []byte("</body>"), []byte(electricObserver+"</body>"), 1)
	pages.HandleFunc("GET /electric.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Query().Has("plain") { // for the screenshot, which reports nothing
			w.Write(electricPage)
			return
		}
		w.Write(observed)
	})
	pages.HandleFunc("GET /electric-client.mjs", static("text/javascript; charset=utf-8", electricClient))
	pageServer := httptest.NewServer(pages)
	rig.pageOrigin = pageServer.URL

	mux, srv, eh := handler(b, allowOrigins(rig.pageOrigin))
	srv.ShutdownWindow = 1
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(h)
	}
	shapeServer := httptest.NewServer(rig.requests.Wrap(h))
	if shapeServer.URL == pageServer.URL {
		t.Fatal("the two servers have one origin")
	}
	t.Cleanup(func() { // after chromium has gone: cleanups run last first
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eh.Shutdown(ctx)
		srv.Shutdown(ctx)
		b.Close()
		shapeServer.Close()
		pageServer.Close()
	})
	rig.pageURL = rig.pageOrigin + "/electric.html?server=" + url.QueryEscape(shapeServer.URL) + query
	browsertest.Start(t, bin, rig.pageURL)
	return rig
}

// waitFire waits until the page shows the broker's fire set: the same
// rows, ids and fields, in natural order of ids; the status says live.
func (r *electricRig) waitFire(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	want := fireSet(t, r.b)
	got := r.shown.Wait(t, ctx, what+": the fire set "+fmt.Sprint(want), func(s electricShown) bool {
		rows, ok := s.rows()
		return ok && strings.HasPrefix(s.Status, "live") && reflect.DeepEqual(rows, want)
	})
	t.Logf("%s: the page shows %q", what, got)
}

// shapeRequests are the requests of the shape endpoint the server got.
func (r *electricRig) shapeRequests() []browsertest.Request {
	var out []browsertest.Request
	for _, req := range r.requests.List() {
		if req.URL.Path == "/electric/v1/shape" {
			out = append(out, req)
		}
	}
	return out
}

// The Electric page in headless chromium, served from one origin and
// syncing from the example's server on another, which allows it
// (-allow-origin): the real client, as it runs in browsers, where CORS
// decides what a page may read (the electric-* headers included). After
// each commit (a spell into the fire set, a change of one in it, one
// replaced out of it into water, one deleted) the page shows the broker's
// fire set, ids and fields. The server saw only cross-origin requests
// (Origin set, answered with it allowed and the headers exposed), live
// ones among them: long-polls by default, SSE with ?sse=1.
//
// A screenshot of the page is kept as a test artifact (go test -run
// TestElectricPageCrossOrigin/longpoll -artifacts -outputdir DIR ./examples/spells).
func TestElectricPageCrossOrigin(t *testing.T) {
	bin := browsertest.Chromium(t)
	for _, mode := range []string{"longpoll", "sse"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeoutCause(context.Background(), 90*time.Second, errors.New("the test's deadline"))
			defer cancel()
			query := ""
			if mode == "sse" {
				query = "&sse=1"
			}
			r := startElectricPage(t, bin, func(page string) []string { return []string{page} }, nil, query)
			commit := func(what string, fn func(tx *broker.Tx) error) {
				t.Helper()
				if _, err := r.b.Commit(ctx, fn); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				r.waitFire(t, ctx, what)
			}
			ref := func(id string) txlog.Ref { return txlog.Ref{Collection: "spells", ID: id} }

			r.waitFire(t, ctx, "the seeded spells")
			commit("spell 10 created in fire", func(tx *broker.Tx) error {
				return tx.Create(ref("10"), []byte(`{"name":"Blaze","element":"fire","level":3}`))
			})
			commit("spell 10 levelled up, still fire", func(tx *broker.Tx) error {
				return tx.Update(ref("10"), []byte(`{"level":4,"school":"evocation"}`))
			})
			commit("spell 1 replaced into water", func(tx *broker.Tx) error {
				return tx.Replace(ref("1"), []byte(`{"name":"Fire Beak","element":"water"}`))
			})
			commit("spell 5 deleted", func(tx *broker.Tx) error { return tx.Delete(ref("5")) })
			if mode == "longpoll" {
				browsertest.Screenshot(t, ctx, bin, r.pageURL+"&plain", "electric.png", "--window-size=900,500", "--timeout=3000")
			}

			reqs := r.shapeRequests()
			var live, sse, preflights int
			for _, req := range reqs {
				q := req.URL.Query()
				if req.Method == http.MethodOptions {
					preflights++
				}
				if q.Get("live") == "true" {
					live++
				}
				if q.Get("live_sse") == "true" {
					sse++
					if req.Status == 200 && !strings.HasPrefix(req.Answer.Get("Content-Type"), "text/event-stream") {
						t.Errorf("%v: answered %s, not an event stream", req, req.Answer.Get("Content-Type"))
					}
				}
				if origin := req.Header.Get("Origin"); origin != r.pageOrigin {
					t.Errorf("%v came with Origin %q, want the page's %s", req, origin, r.pageOrigin)
				}
				if req.Answer.Get("Access-Control-Allow-Origin") != r.pageOrigin ||
					!strings.Contains(req.Answer.Get("Access-Control-Expose-Headers"), "electric-offset") && req.Method != http.MethodOptions {
					t.Errorf("%v: answered with CORS headers %q, %q", req, req.Answer.Get("Access-Control-Allow-Origin"), req.Answer.Get("Access-Control-Expose-Headers"))
				}
			}
			t.Logf("%d requests of the shape, %d live, %d of them SSE, %d preflights: %v", len(reqs), live, sse, preflights, reqs)
			// In SSE mode every live request is SSE: the client did not
			// fall back to long-polls (it does after three short streams).
			if live == 0 || mode == "sse" && sse != live || mode == "longpoll" && sse != 0 {
				t.Errorf("%d live requests, %d of them SSE, in mode %s", live, sse, mode)
			}
		})
	}
}

// The page syncs cross-origin only because the server allows it and
// exposes the electric-* headers, as chromium enforces: from an origin
// the server does not list, every request is made and answered, and the
// page never sees a row (the client takes the refusal for a network
// error and retries); with the electric-* headers hidden from the page
// (a proxy that drops Access-Control-Expose-Headers), the client stops
// at the first response and says which headers it misses.
func TestElectricPageCORSEnforced(t *testing.T) {
	bin := browsertest.Chromium(t)
	t.Run("origin not allowed", func(t *testing.T) {
		ctx, cancel := context.WithTimeoutCause(context.Background(), 60*time.Second, errors.New("the test's deadline"))
		defer cancel()
		r := startElectricPage(t, bin, func(string) []string { return nil }, nil, "")
		// Two requests: the first and the client's retry.
		for len(r.shapeRequests()) < 2 {
			select {
			case <-ctx.Done():
				t.Fatalf("the server got %v", r.shapeRequests())
			case <-time.After(50 * time.Millisecond):
			}
		}
		reqs := r.shapeRequests()
		for _, req := range reqs {
			if req.Header.Get("Origin") != r.pageOrigin || req.Status != 200 || req.Answer.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%v: Origin %q, allowed %q", req, req.Header.Get("Origin"), req.Answer.Get("Access-Control-Allow-Origin"))
			}
		}
		shown := r.shown.Wait(t, ctx, "a report", func(electricShown) bool { return true })
		if len(shown.Rows) != 0 || strings.HasPrefix(shown.Status, "live") {
			t.Errorf("from an origin the server does not allow, the page shows %q", shown)
		}
		t.Logf("the server answered %v; the page shows %q", reqs, shown)
	})
	t.Run("headers not exposed", func(t *testing.T) {
		ctx, cancel := context.WithTimeoutCause(context.Background(), 60*time.Second, errors.New("the test's deadline"))
		defer cancel()
		hide := func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(&hidingWriter{ResponseWriter: w}, r)
			})
		}
		r := startElectricPage(t, bin, func(page string) []string { return []string{page} }, hide, "")
		shown := r.shown.Wait(t, ctx, "the client's error", func(s electricShown) bool {
			return strings.HasPrefix(s.Status, "stopped")
		})
		if len(shown.Rows) != 0 || !strings.Contains(shown.Status, "electric-handle") {
			t.Errorf("with the headers hidden the page shows %q", shown)
		}
		if reqs := r.shapeRequests(); len(reqs) == 0 || !slices.ContainsFunc(reqs, func(req browsertest.Request) bool {
			return req.Status == 200 && req.Answer.Get("Electric-Handle") != ""
		}) {
			t.Errorf("the server answered %v", reqs)
		}
		t.Logf("with the headers hidden the page shows %q", shown)
	})
}

// hidingWriter drops Access-Control-Expose-Headers from a response.
type hidingWriter struct{ http.ResponseWriter }

func (w *hidingWriter) WriteHeader(status int) {
	w.Header().Del("Access-Control-Expose-Headers")
	w.ResponseWriter.WriteHeader(status)
}

func (w *hidingWriter) Write(p []byte) (int, error) {
	w.Header().Del("Access-Control-Expose-Headers")
	return w.ResponseWriter.Write(p)
}

func (w *hidingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
