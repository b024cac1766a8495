package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/browsertest"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "t0ken-for-the-test"

// appPage is the application on the allowed origin. Its response sets the
// cookie "token", as a login would. It opens three EventSources on the
// API: with the cookie (withCredentials), with access_token, and with
// neither; writes through the API with the token in a bearer header; and
// once the first two have received the change the test commits (id
// from-test), it goes to the other origin's page, with the cookie still
// in the browser. It POSTs everything it sees to /report, one POST at a
// time, so that the last POST the server gets is all of it.
const appPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>the allowed origin</title></head>
<body><h1>{{ORIGIN}}</h1><pre id="log"></pre>
<script>
const API = "{{API}}", TOKEN = "{{TOKEN}}";
const state = {streams: {}, write: null};
let queue = Promise.resolve();
function report() {
  const body = JSON.stringify(state);
  document.getElementById("log").textContent = JSON.stringify(state, null, 1);
  queue = queue.then(() => fetch("/report", {method: "POST", body}).catch(() => {}));
  return queue;
}
let left = false;
function sawTestChange(name) {
  return state.streams[name].some(r => r.kind === "set" && r.data.includes('"id":"from-test"'));
}
function watch(name, url, init) {
  const es = new EventSource(url, init);
  const got = state.streams[name] = [];
  const rec = (kind, e) => {
    got.push({kind, state: es.readyState, data: e.data || ""});
    const done = !left && sawTestChange("cookie") && sawTestChange("token");
    report();
    if (done) {
      left = true;
      queue.then(() => { location.href = "{{OTHER}}/"; });
    }
  };
  for (const k of ["open", "error", "start", "set", "stream_error"]) es.addEventListener(k, (e) => rec(k, e));
}
watch("cookie", API + "/sse?collection=orders", {withCredentials: true});
watch("token", API + "/sse?collection=orders&access_token=" + TOKEN);
watch("none", API + "/sse?collection=orders");
fetch(API + "/write", {method: "POST",
  headers: {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN},
  body: JSON.stringify({writes: [{action: "create", collection: "orders", id: "from-app", data: {total: 1}}]})})
  .then(async (r) => { state.write = {status: r.status, body: await r.text()}; })
  .catch((e) => { state.write = {error: String(e)}; })
  .finally(report);
</script></body></html>
`

// otherPage is a page on an origin the API does not allow, in a browser
// that holds the API's cookie. It tries to write through the API as a
// cross-site request forgery would: a simple (no-cors, text/plain) POST
// with the cookie, which needs no preflight and whose answer the page
// cannot read; and two JSON POSTs, one with the token in a bearer header
// and one with the cookie, which need a preflight that CORS refuses. Then
// it POSTs what each fetch gave it to /report.
const otherPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title></head>
<body><h1>{{ORIGIN}}</h1><pre id="log"></pre>
<script>
const API = "{{API}}", TOKEN = "{{TOKEN}}";
const write = (id) => JSON.stringify({writes: [{action: "create", collection: "orders", id, data: {total: 666}}]});
const attempts = {
  "no-cors": {method: "POST", mode: "no-cors", credentials: "include",
    headers: {"Content-Type": "text/plain"}, body: write("csrf-text")},
  "json-bearer": {method: "POST",
    headers: {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN}, body: write("csrf-bearer")},
  "json-cookie": {method: "POST", credentials: "include",
    headers: {"Content-Type": "application/json"}, body: write("csrf-cookie")},
};
(async () => {
  const saw = {};
  for (const [name, init] of Object.entries(attempts)) {
    try {
      const r = await fetch(API + "/write", init);
      saw[name] = {type: r.type, status: r.status};
    } catch (e) {
      saw[name] = {error: String(e)};
    }
  }
  document.getElementById("log").textContent = JSON.stringify(saw, null, 1);
  fetch("/report", {method: "POST", body: JSON.stringify(saw)});
})();
</script></body></html>
`

// esRecord is one event an EventSource of the app page saw: its kind
// (open, error, or the SSE event name), readyState after it, and data.
type esRecord struct {
	Kind  string `json:"kind"`
	State int    `json:"state"`
	Data  string `json:"data"`
}

type appReport struct {
	Streams map[string][]esRecord `json:"streams"`
	Write   *struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
		Error  string `json:"error"`
	} `json:"write"`
}

// fetchResult is what a fetch of the other origin's page gave it.
type fetchResult struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// apiRequest is what the API server saw of a request and answered.
type apiRequest struct {
	Method, Path, Origin, ContentType string
	Cookie, AccessToken               bool
	Status                            int
	AllowOrigin, AllowCredentials     string // the CORS headers of the answer
}

func apiRequests(l *browsertest.Requests) []apiRequest {
	var out []apiRequest
	for _, r := range l.List() {
		cookies, _ := http.ParseCookie(r.Header.Get("Cookie"))
		out = append(out, apiRequest{
			Method:           r.Method,
			Path:             r.URL.Path,
			Origin:           r.Header.Get("Origin"),
			ContentType:      r.Header.Get("Content-Type"),
			Cookie:           slices.ContainsFunc(cookies, func(c *http.Cookie) bool { return c.Name == "token" }),
			AccessToken:      r.URL.Query().Has("access_token"),
			Status:           r.Status,
			AllowOrigin:      r.Answer.Get("Access-Control-Allow-Origin"),
			AllowCredentials: r.Answer.Get("Access-Control-Allow-Credentials"),
		})
	}
	return out
}

// TestBrowserOrigins runs the customserver's handler behind a plain HTTP
// test server and drives it from headless chromium with pages on two
// other origins. All three are on 127.0.0.1: a cookie belongs to the host
// whatever the port, and the three origins are one site, so even a
// SameSite=Strict cookie goes with requests from the other origin's page,
// and what keeps its writes out is the write endpoint's Content-Type rule
// and CORS alone:
//
//   - on the allowed origin, an EventSource authenticated by the cookie
//     (cross-origin, withCredentials) and one by access_token both get
//     their start event and the change the test commits; one with
//     neither is refused with 401 and EventSource gives up (CLOSED); a
//     JSON write with the token in a bearer header is committed.
//   - on another origin, a no-cors text/plain POST of a valid write with
//     the cookie (the classic forgery: no preflight) is refused with 415,
//     and JSON POSTs with the token or the cookie never leave the
//     browser: their preflight gets no CORS grant, and the page sees the
//     fetch fail. The broker's head shows that nothing was written.
func TestBrowserOrigins(t *testing.T) {
	bin := browsertest.Chromium(t)
	ctx, cancel := context.WithTimeoutCause(context.Background(), 90*time.Second, errors.New("the test's deadline"))
	defer cancel()

	b, err := newBroker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	// Three servers, their addresses known before they start, since each
	// page names the others.
	var log browsertest.Requests
	var app browsertest.Report[appReport]
	var other browsertest.Report[map[string]fetchResult]
	appMux, otherMux := http.NewServeMux(), http.NewServeMux()
	api := httptest.NewUnstartedServer(nil)
	appServer := httptest.NewUnstartedServer(appMux)
	otherServer := httptest.NewUnstartedServer(otherMux)
	apiURL, appURL, otherURL := baseURL(api), baseURL(appServer), baseURL(otherServer)

	mux, srv := handler(b, testToken, appURL)
	api.Config.Handler = log.Wrap(mux)
	transport.ConfigureServer(api.Config, 0)
	page := func(tmpl, origin string) []byte {
		return []byte(strings.NewReplacer("{{API}}", apiURL+"/api/tidings", "{{TOKEN}}", testToken,
			"{{ORIGIN}}", origin, "{{OTHER}}", otherURL).Replace(tmpl))
	}
	appMux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// The cookie is for the host, whatever the port: the API gets it.
		http.SetCookie(w, &http.Cookie{Name: "token", Value: testToken, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page(appPage, appURL))
	})
	appMux.Handle("POST /report", &app)
	otherMux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page(otherPage, otherURL))
	})
	otherMux.Handle("POST /report", &other)
	for _, s := range []*httptest.Server{api, appServer, otherServer} {
		s.Start()
		t.Cleanup(s.Close) // after chromium has gone: cleanups run last first
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWindow = 1
		srv.Shutdown(ctx)
	})

	browsertest.Start(t, bin, appURL+"/")

	// The allowed origin: three streams started or refused, the write
	// answered.
	first := app.Wait(t, ctx, "the streams' first answers and the write's", func(r appReport) bool {
		for _, name := range []string{"cookie", "token", "none"} {
			if !hasKind(r.Streams[name], "start") && !hasKind(r.Streams[name], "error") {
				return false
			}
		}
		return r.Write != nil
	})
	if !hasKind(first.Streams["cookie"], "start") || !hasKind(first.Streams["token"], "start") {
		t.Fatalf("a stream of the allowed origin did not start: %+v", first.Streams)
	}
	ref := txlog.Ref{Collection: "orders", ID: "from-test"}
	txn, err := b.Commit(ctx, func(tx *broker.Tx) error { return tx.Create(ref, []byte(`{"total":2}`)) })
	if err != nil {
		t.Fatal(err)
	}

	final := app.Wait(t, ctx, "the test's change on both streams", func(r appReport) bool {
		return hasSet(r.Streams["cookie"], "from-test") && hasSet(r.Streams["token"], "from-test")
	})
	// Then the page goes to the other origin, which reports once it has
	// tried all three.
	saw := other.Wait(t, ctx, "the other origin's attempts", func(map[string]fetchResult) bool { return true })
	reqs := apiRequests(&log)
	t.Logf("the other origin's page saw: %+v", saw)

	// The allowed origin's streams.
	for _, name := range []string{"cookie", "token"} {
		rs := final.Streams[name]
		if !hasKind(rs, "start") || !hasSet(rs, "from-test") || hasKind(rs, "error") {
			t.Errorf("the %s EventSource saw %+v; want start and the add of from-test, no error", name, rs)
		}
	}
	if rs := final.Streams["none"]; len(rs) == 0 || rs[0].Kind != "error" || rs[0].State != 2 || hasKind(rs, "open") {
		t.Errorf("the EventSource without a token saw %+v; want error with readyState CLOSED (2), never open", rs)
	}
	// What the API saw of the three streams: each authenticated as meant.
	sse := map[string]apiRequest{}
	unauthenticated := 0
	for _, r := range reqs {
		if strings.HasSuffix(r.Path, "/sse") {
			switch {
			case r.AccessToken:
				sse["token"] = r
			case r.Cookie:
				sse["cookie"] = r
			default:
				sse["none"] = r
				unauthenticated++
			}
		}
	}
	if r := sse["cookie"]; r.Status != 200 || r.Origin != appURL || r.AllowOrigin != appURL || r.AllowCredentials != "true" {
		t.Errorf("the cookie's stream request: %+v; want 200 to %s, granted to it with credentials", r, appURL)
	}
	if r := sse["token"]; r.Status != 200 || r.Cookie {
		t.Errorf("the access_token stream request: %+v; want 200, no cookie", r)
	}
	if r := sse["none"]; r.Status != http.StatusUnauthorized || unauthenticated != 1 {
		t.Errorf("%d stream requests without a token, the last %+v; want one, 401", unauthenticated, r)
	}
	// The allowed origin writes.
	if w := final.Write; w == nil || w.Status != 200 || !strings.Contains(w.Body, `"txn"`) {
		t.Errorf("the allowed origin's write: %+v", final.Write)
	}
	if _, ok := b.Get(txlog.Ref{Collection: "orders", ID: "from-app"}); !ok {
		t.Error("the allowed origin's write is not in the broker")
	}

	// The other origin wrote nothing: the test's commit is still the last.
	if head := b.Head(); head != txn {
		t.Errorf("the broker's head is %d, past the test's commit %d: something was written", head, txn)
	}
	for _, id := range []string{"csrf-text", "csrf-bearer", "csrf-cookie"} {
		if _, ok := b.Get(txlog.Ref{Collection: "orders", ID: id}); ok {
			t.Errorf("%s was written", id)
		}
	}
	// What the page saw: an opaque answer to the simple POST, and CORS
	// failures for the JSON ones.
	if r := saw["no-cors"]; r.Type != "opaque" || r.Status != 0 {
		t.Errorf("the no-cors POST gave the page %+v; want an opaque response", r)
	}
	for _, name := range []string{"json-bearer", "json-cookie"} {
		if r := saw[name]; !strings.Contains(r.Error, "Failed to fetch") {
			t.Errorf("the %s POST gave the page %+v; want it blocked (TypeError: Failed to fetch)", name, r)
		}
	}
	// What the API saw from the other origin: the simple POST, with the
	// cookie, refused for its type; preflights, granted nothing; no JSON
	// POST.
	var fromOther []string
	for _, r := range reqs {
		if r.Origin != otherURL {
			continue
		}
		fromOther = append(fromOther, fmt.Sprintf("%s %s %d", r.Method, r.ContentType, r.Status))
		switch {
		case r.Method == http.MethodPost && strings.HasPrefix(r.ContentType, "text/plain"):
			if r.Status != http.StatusUnsupportedMediaType || !r.Cookie {
				t.Errorf("the forged text/plain POST: %+v; want 415, and the cookie sent", r)
			}
		case r.Method == http.MethodOptions:
		default:
			t.Errorf("from the other origin: %+v; want only the text/plain POST and preflights", r)
		}
	}
	t.Logf("the API saw from the other origin: %q", fromOther)
	if !slices.ContainsFunc(reqs, func(r apiRequest) bool { return r.Origin == otherURL && r.Method == http.MethodOptions }) {
		t.Errorf("no preflight from the other origin: %q", fromOther)
	}
}

func baseURL(s *httptest.Server) string { return "http://" + s.Listener.Addr().String() }

func hasKind(rs []esRecord, kind string) bool {
	return slices.ContainsFunc(rs, func(r esRecord) bool { return r.Kind == kind })
}

// hasSet reports whether rs has a set event that adds the order id.
func hasSet(rs []esRecord, id string) bool {
	return slices.ContainsFunc(rs, func(r esRecord) bool {
		var e struct {
			Event struct {
				Action   string `json:"action"`
				Document struct {
					Ref txlog.Ref `json:"ref"`
				} `json:"document"`
			} `json:"event"`
		}
		return r.Kind == "set" && json.Unmarshal([]byte(r.Data), &e) == nil &&
			e.Event.Action == "add" && e.Event.Document.Ref.ID == id
	})
}
