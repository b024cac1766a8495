package electric

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
)

// initialOf fetches a shape's initial rows and returns the query that
// follows them (offset and handle set).
func initialOf(t *testing.T, s *testServer, q url.Values) url.Values {
	t.Helper()
	q.Set("offset", "-1")
	resp, body := get(t, http.DefaultClient, shapeURL(s.url, q))
	if resp.StatusCode != 200 {
		t.Fatalf("initial: %d %s", resp.StatusCode, body)
	}
	q.Set("offset", resp.Header.Get("Electric-Offset"))
	q.Set("handle", resp.Header.Get("Electric-Handle"))
	return q
}

// TestRefusals: what this endpoint does not serve is a 400 naming the
// parameter, in Electric's shape; a handle it did not make, or one of
// another shape, and an offset of another server are a 409 with a handle
// that differs from the request's and from its expired_handle.
func TestRefusals(t *testing.T) {
	s := newTestServer(t, broker.Options{}, nil)
	m := newModel()
	m.commit(t, s.b, "create", "1", `{"element":"fire"}`)
	good := initialOf(t, s, url.Values{"table": {"spells"}})
	for _, c := range []struct {
		name  string
		q     string
		param string
	}{
		{"no table", "offset=-1", "table"},
		{"unknown table", "table=nope&offset=-1", "table"},
		{"or", "table=spells&offset=-1&where=" + url.QueryEscape("element = 'a' OR element = 'b'"), "where"},
		{"no index", "table=spells&offset=-1&where=" + url.QueryEscape("name = 'a'"), "where"},
		{"no offset", "table=spells", "offset"},
		{"bad offset", "table=spells&offset=12", "offset"},
		{"no handle", "table=spells&offset=1_0", "handle"},
		{"live at -1", "table=spells&offset=-1&live=true", "live"},
		{"sse without live", "table=spells&offset=1_0&handle=x&live_sse=true", "live_sse"},
		{"replica full", "table=spells&offset=-1&replica=full", "replica"},
		{"columns without id", "table=spells&offset=-1&columns=" + url.QueryEscape(`"element"`), "columns"},
		{"subset", "table=spells&offset=-1&subset__limit=3", "subset"},
	} {
		resp, body := get(t, http.DefaultClient, s.url+"?"+c.q)
		var e struct {
			Message string              `json:"message"`
			Errors  map[string][]string `json:"errors"`
		}
		if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || len(e.Errors[c.param]) != 1 ||
			resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %v %s, want a 400 about %s", c.name, resp.StatusCode, resp.Header, body, c.param)
		}
	}
	// Unknown parameters are ignored, as Electric does.
	q := initialOf(t, s, url.Values{"table": {"spells"}, "log": {"full"}, "cache-buster": {"1-x"}, "token": {"mine"}})

	for _, c := range []struct {
		name string
		set  map[string]string
	}{
		{"garbage handle", map[string]string{"handle": "nonsense"}},
		{"another shape's handle", map[string]string{"handle": good.Get("handle"), "where": "id = '1'"}},
		{"beyond the head", map[string]string{"offset": "99999999999999999_0"}},
		{"electric's own offset", map[string]string{"offset": "0_inf"}},
		{"expired", map[string]string{"handle": "nonsense", "expired_handle": "x"}},
	} {
		r := url.Values{}
		for k, v := range q {
			r[k] = v
		}
		for k, v := range c.set {
			r.Set(k, v)
		}
		resp, body := get(t, http.DefaultClient, shapeURL(s.url, r))
		nh := resp.Header.Get("Electric-Handle")
		if resp.StatusCode != 409 || nh == "" || nh == r.Get("handle") || nh == r.Get("expired_handle") ||
			string(body) != mustRefetchBody {
			t.Errorf("%s: %d %v %s, want 409 with a new handle", c.name, resp.StatusCode, resp.Header, body)
		}
	}
}

// TestHeaders: the headers the client needs on each kind of response, the
// cache-control values, and a 304 for a matching If-None-Match.
func TestHeaders(t *testing.T) {
	s := newTestServer(t, broker.Options{}, nil)
	m := newModel()
	m.commit(t, s.b, "create", "1", `{"element":"fire"}`)
	q := url.Values{"table": {"spells"}, "offset": {"-1"}}
	resp, _ := get(t, http.DefaultClient, shapeURL(s.url, q))
	h := resp.Header
	if h.Get("Electric-Schema") != schemaHeader || h.Get("Electric-Cursor") != "" || h.Values("Electric-Up-To-Date") != nil ||
		!strings.HasPrefix(h.Get("Cache-Control"), "public, max-age=604800") || h.Get("ETag") == "" {
		t.Fatalf("initial: %v", h)
	}
	req, _ := http.NewRequest(http.MethodGet, shapeURL(s.url, q), nil)
	req.Header.Set("If-None-Match", h.Get("ETag"))
	if r304, err := http.DefaultClient.Do(req); err != nil || r304.StatusCode != 304 {
		t.Fatalf("If-None-Match: %v %v", r304, err)
	} else {
		r304.Body.Close()
	}
	q.Set("offset", h.Get("Electric-Offset"))
	q.Set("handle", h.Get("Electric-Handle"))
	resp, _ = get(t, http.DefaultClient, shapeURL(s.url, q))
	if h := resp.Header; h.Get("Electric-Schema") == "" || h.Values("Electric-Up-To-Date") == nil || h.Get("Electric-Cursor") != "" ||
		h.Get("Cache-Control") != "public, max-age=60, stale-while-revalidate=300" {
		t.Fatalf("catch-up: %v", h)
	}
	q.Set("live", "true")
	q.Set("cursor", "")
	go func() {
		time.Sleep(10 * time.Millisecond)
		m.commit(t, s.b, "create", "2", `{"element":"air"}`)
	}()
	resp, body := get(t, http.DefaultClient, shapeURL(s.url, q))
	if h := resp.Header; resp.StatusCode != 200 || h.Get("Electric-Cursor") == "" || h.Values("Electric-Up-To-Date") == nil ||
		h.Get("Electric-Handle") != q.Get("handle") || h.Get("Cache-Control") != "public, max-age=5, stale-while-revalidate=5" ||
		!strings.Contains(string(body), `"operation":"insert"`) {
		t.Fatalf("live: %d %v %s", resp.StatusCode, h, body)
	}

	// With Authorize, caches are private.
	s2 := newTestServer(t, broker.Options{}, nil)
	s2.h.Server.Authorize = func(*http.Request, subscription.Target) error { return nil }
	resp, _ = get(t, http.DefaultClient, s2.url+"?table=spells&offset=-1")
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private,") || resp.Header.Get("Vary") == "" {
		t.Fatalf("with Authorize: %v", resp.Header)
	}
}

// TestCORS: a preflight allows the headers the page asks for; responses
// expose the electric-* headers to an allowed origin.
func TestCORS(t *testing.T) {
	s := newTestServer(t, broker.Options{}, nil)
	s.h.Server.AllowedOrigins = []string{"https://app.example"}
	req, _ := http.NewRequest(http.MethodOptions, s.url+"?table=spells&offset=-1", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization,x-app-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "authorization,x-app-token" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodGet, s.url+"?table=spells&offset=-1", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	expose := resp.Header.Get("Access-Control-Expose-Headers")
	for _, h := range []string{"electric-handle", "electric-offset", "electric-schema", "electric-cursor", "electric-up-to-date", "etag"} {
		if !strings.Contains(expose, h) {
			t.Errorf("%s is not exposed: %q", h, expose)
		}
	}
}

// TestShutdown: Shutdown ends an SSE response and answers a waiting
// long-poll 503 with Retry-After, and refuses new live requests.
func TestShutdown(t *testing.T) {
	s := newTestServer(t, broker.Options{}, nil)
	s.h.Server.ShutdownWindow = time.Millisecond
	m := newModel()
	m.commit(t, s.b, "create", "1", `{"element":"fire"}`)
	q := initialOf(t, s, url.Values{"table": {"spells"}})
	q.Set("live", "true")
	lp := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get(shapeURL(s.url, q))
		if err != nil {
			t.Error(err)
		}
		lp <- resp
	}()
	sq := url.Values{}
	for k, v := range q {
		sq[k] = v
	}
	sq.Set("live_sse", "true")
	sse, err := http.Get(shapeURL(s.url, sq))
	if err != nil || sse.StatusCode != 200 {
		t.Fatalf("sse: %v %v", sse, err)
	}
	defer sse.Body.Close()
	for s.h.flights.waiting(liveKeyOf(q, s)) < 2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp := <-lp
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("long-poll at Shutdown: %d %v", resp.StatusCode, resp.Header)
	}
	if _, err := sse.Body.Read(make([]byte, 1)); err == nil {
		t.Fatal("the SSE response goes on after Shutdown")
	}
	resp, _ = get(t, http.DefaultClient, shapeURL(s.url, q))
	if resp.StatusCode != 503 {
		t.Fatalf("a live request after Shutdown: %d", resp.StatusCode)
	}
}

// TestLiveCursor: the cursor is the end of the current 20 s bucket, the
// same for every request in it; when a request already has it, the next
// differs, the same way for every such request.
func TestLiveCursor(t *testing.T) {
	at := cursorEpoch.Add(1000*time.Second + 3*time.Second)
	c := liveCursor(at, "")
	if c != "1020" || liveCursor(at.Add(16*time.Second), "x") != c {
		t.Fatalf("bucket: %s", c)
	}
	if liveCursor(at.Add(18*time.Second), "") != "1040" {
		t.Fatalf("next bucket: %s", liveCursor(at.Add(18*time.Second), ""))
	}
	again := liveCursor(at, c)
	if again == c || again != liveCursor(at, c) {
		t.Fatalf("a request at %s got %s, then %s", c, again, liveCursor(at, c))
	}
}
