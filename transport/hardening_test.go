package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

const writeBody = `{"writes":[{"action":"upsert","collection":"spells","id":"w","data":{"element":"fire"}}]}`

// Writes want application/json (a browser must preflight it, so CORS
// decides) and AuthorizeWrite's consent; without the hook there is no
// write endpoint.
func TestWriteProtected(t *testing.T) {
	var mu sync.Mutex
	var asked []WriteRequest
	ts, _, b := testServer(t, func(s *Server) {
		s.AuthorizeWrite = func(r *http.Request, req *WriteRequest) error {
			mu.Lock()
			asked = append(asked, *req)
			mu.Unlock()
			switch BearerToken(r) {
			case "writer":
				return nil
			case "":
				return ErrUnauthorized
			}
			return ErrForbidden
		}
	})
	c := client("h1")
	defer c.CloseIdleConnections()
	written := func() bool { _, ok := b.Get(txlog.Ref{Collection: "spells", ID: "w"}); return ok }

	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonx"} {
		checkError(t, do(t, c, "POST", ts.URL+"/write", writeBody, http.Header{"Content-Type": {ct}, "Authorization": {"Bearer writer"}}),
			http.StatusUnsupportedMediaType, CodeUnsupportedMediaType)
	}
	checkError(t, do(t, c, "POST", ts.URL+"/write", writeBody, nil), http.StatusUnauthorized, CodeUnauthorized)
	checkError(t, do(t, c, "POST", ts.URL+"/write", writeBody, http.Header{"Authorization": {"Bearer reader"}}),
		http.StatusForbidden, CodePermissionDenied)
	if written() {
		t.Fatal("a refused write was committed")
	}
	resp := do(t, c, "POST", ts.URL+"/write", writeBody, http.Header{"Authorization": {"Bearer writer"},
		"Content-Type": {"application/json; charset=utf-8"}})
	resp.Body.Close()
	if resp.StatusCode != 200 || !written() {
		t.Fatalf("an authorized write: %s", resp.Status)
	}
	mu.Lock()
	if len(asked) != 3 || len(asked[0].Writes) != 1 || asked[0].Writes[0].ID != "w" {
		t.Errorf("AuthorizeWrite saw %+v", asked)
	}
	mu.Unlock()

	// No hook: no endpoint, and the handler on its own refuses.
	plain, _, b2 := testServer(t, func(s *Server) { s.AuthorizeWrite = nil })
	checkError(t, do(t, c, "POST", plain.URL+"/write", writeBody, nil), http.StatusNotFound, CodeNotFound)
	w := &recorder{h: http.Header{}}
	r, _ := http.NewRequest("POST", "/write", strings.NewReader(writeBody))
	r.Header.Set("Content-Type", "application/json")
	(&Server{Broker: b2}).Write().ServeHTTP(w, r)
	if w.code != http.StatusForbidden {
		t.Errorf("Write without AuthorizeWrite: %d", w.code)
	}
	if _, ok := b2.Get(txlog.Ref{Collection: "spells", ID: "w"}); ok {
		t.Error("Write without AuthorizeWrite committed")
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	h    http.Header
	code int
	body strings.Builder
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) { r.code = code }

// A full feed page is cached publicly only when nothing about the caller
// went into answering it.
func TestFeedCacheControl(t *testing.T) {
	for _, tc := range []struct {
		name      string
		authorize bool
		hdr       []string
		query     string
		want      string
		vary      bool
	}{
		{"open", false, nil, "", "public, max-age=31536000, immutable", false},
		{"Authorize set", true, []string{"Authorization", "Bearer x"}, "", "private, max-age=31536000, immutable", true},
		{"a cookie", false, []string{"Cookie", "token=x"}, "", "private, max-age=31536000, immutable", true},
		{"access_token", false, nil, "&access_token=x", "private, max-age=31536000, immutable", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, _, b := testServer(t, func(s *Server) {
				if tc.authorize {
					s.Authorize = func(*http.Request, subscription.Target) error { return nil }
				}
			})
			c := client("h1")
			defer c.CloseIdleConnections()
			_, head := getFeed(t, c, ts.URL+"/feed?collection=spells")
			createSpell(t, b, "1", "fire")
			createSpell(t, b, "2", "fire")
			resp, f := getFeed(t, c, ts.URL+"/feed?collection=spells&page_size=1&cursor="+url.QueryEscape(head.Cursor)+tc.query, tc.hdr...)
			if !f.HasNext {
				t.Fatal("the page is not full")
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.want {
				t.Errorf("Cache-Control %q, want %q", got, tc.want)
			}
			if vary := strings.Join(resp.Header.Values("Vary"), ","); strings.Contains(vary, "Authorization") != tc.vary {
				t.Errorf("Vary %q", vary)
			}
		})
	}
}

// A browser's EventSource cannot send headers: the token comes as a
// cookie or as access_token, which the handlers accept and never repeat.
func TestAccessTokenQuery(t *testing.T) {
	const token = "s3cret-t0ken"
	ts, _, _ := testServer(t, func(s *Server) {
		s.Authorize = func(r *http.Request, _ subscription.Target) error {
			if BearerToken(r) != token {
				return ErrUnauthorized
			}
			return nil
		}
	})
	c := client("h1")
	defer c.CloseIdleConnections()
	resp := do(t, c, "GET", ts.URL+"/sse?collection=spells&access_token="+token, "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("SSE with access_token: %s", resp.Status)
	}
	resp.Body.Close()
	resp, _ = getFeed(t, c, ts.URL+"/feed?collection=spells&access_token="+token)
	if resp.StatusCode != 200 {
		t.Fatalf("feed with access_token: %s", resp.Status)
	}
	checkError(t, do(t, c, "GET", ts.URL+"/sse?collection=spells&access_token=wrong", "", nil), http.StatusUnauthorized, CodeUnauthorized)
	for _, u := range []string{"/sse?collection=potions&access_token=" + token, "/sse?collection=spells&bogus=1&access_token=" + token,
		"/feed?collection=spells&wait=99&access_token=" + token} {
		resp := do(t, c, "GET", ts.URL+u, "", nil)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || strings.Contains(string(body), token) {
			t.Errorf("%s: %s %s", u, resp.Status, body)
		}
	}
	if got := BearerToken(&http.Request{Header: http.Header{"Authorization": {"bearer abc"}}, URL: &url.URL{RawQuery: "access_token=q"}}); got != "abc" {
		t.Errorf("BearerToken prefers the header: %q", got)
	}
}

// Long-polls whose clients went away free their sockets and their read
// at once, not when wait runs out.
func TestAbandonedLongPolls(t *testing.T) {
	ts, srv, _ := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	_, head := getFeed(t, c, ts.URL+"/feed?collection=spells")
	u := ts.URL + "/feed?collection=spells&wait=50&cursor=" + url.QueryEscape(head.Cursor)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	waitFor(t, 10*time.Second, "the polls to wait", func() bool { return srv.polls.inProgress() == 1 })
	cancel()
	wg.Wait()
	waitFor(t, 10*time.Second, "the abandoned read to end", func() bool { return srv.polls.inProgress() == 0 })
}

// A cursor whose write retention dropped is refused before any stream
// starts, by every front alike (410).
func TestRetentionBoundaryEveryFront(t *testing.T) {
	l := txlog.NewMemory(txlog.MemoryOptions{MaxRecords: 3})
	b, err := broker.New(broker.Options{Log: l, Schema: spellsSchema()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ts := serveBroker(t, &Server{Broker: b})
	for i := range 6 {
		createSpell(t, b, fmt.Sprint(i), "fire")
	}
	cur := url.QueryEscape(txlog.Cursor{Log: l.ID(), Pos: l.Oldest()}.String())
	c := client("h1")
	defer c.CloseIdleConnections()
	checkError(t, do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells","cursor":"`+txlog.Cursor{Log: l.ID(), Pos: l.Oldest()}.String()+`"}`, nil),
		http.StatusGone, CodeHistoryUnavailable)
	checkError(t, do(t, c, "GET", ts.URL+"/sse?collection=spells&cursor="+cur, "", nil), http.StatusGone, CodeHistoryUnavailable)
	checkError(t, do(t, c, "GET", ts.URL+"/feed?collection=spells&cursor="+cur, "", nil), http.StatusGone, CodeHistoryUnavailable)
}

// Error texts say what is wrong once, in words, and bounded.
func TestErrorTexts(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"/feed?collection=spells&wait=61", "wait must be a number of seconds from 0 to 60, or a duration such as 500ms"},
		{"/feed?collection=spells&wait=1e309", "wait must be a number of seconds from 0 to 60, or a duration such as 500ms"},
		{"/feed?collection=spells&wait=-1", "wait must be a number of seconds from 0 to 60, or a duration such as 500ms"},
		{"/sse?collection=spells&snapshot=yes", "snapshot must be true or false (or empty, for true)"},
		{"/feed?collection=spells&page_size=0", "page_size must be a positive integer"},
		{"/sse?collection=spells&page_size=0", "page_size must be a positive integer"},
	} {
		resp := do(t, c, "GET", ts.URL+tc.url, "", nil)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := `{"error":{"code":"invalid_request","description":"` + tc.want + `"}}` + "\n"
		if resp.StatusCode != 400 || string(body) != want {
			t.Errorf("%s: %s %s, want 400 %s", tc.url, resp.Status, body, want)
		}
	}
	long := strings.Repeat("x", 100_000)
	for _, u := range []string{"/" + long, "/sse?collection=" + long} {
		resp := do(t, c, "GET", ts.URL+u, "", nil)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || len(body) > 1024 {
			t.Errorf("%.40s…: %s, %d bytes of body", u, resp.Status, len(body))
		}
	}
	createSpell(t, b, "1", "fire")
	_, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{}`))
	})
	if !errors.Is(err, broker.ErrExists) || err.Error() != "broker: create spells/1: document exists" {
		t.Errorf("%v", err)
	}
}

// The feed follows RFC 9110 for If-None-Match and answers HEAD.
func TestFeedConditionalAndHead(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	_, head := getFeed(t, c, ts.URL+"/feed?collection=spells")
	createSpell(t, b, "1", "fire")
	createSpell(t, b, "2", "fire")
	u := ts.URL + "/feed?collection=spells&page_size=1&cursor=" + url.QueryEscape(head.Cursor)
	resp, _ := getFeed(t, c, u)
	etag := resp.Header.Get("ETag")
	for inm, want := range map[string]int{
		etag:                          304,
		"W/" + etag:                   304,
		`"other", ` + etag:            304,
		`"other",W/` + etag + `, "x"`: 304,
		"*":                           304,
		`"other"`:                     200,
	} {
		resp, _ := getFeed(t, c, u, "If-None-Match", inm)
		if resp.StatusCode != want {
			t.Errorf("If-None-Match %s: %d, want %d", inm, resp.StatusCode, want)
		}
	}
	resp = do(t, c, "HEAD", u, "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("ETag") != etag || resp.ContentLength <= 0 {
		t.Errorf("HEAD: %s, %d bytes, ETag %q, length %d", resp.Status, len(body), resp.Header.Get("ETag"), resp.ContentLength)
	}
}
