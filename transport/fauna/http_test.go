package fauna_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/fauna"
	"github.com/tidings/tidings/txlog"
)

// plainServer is the Fauna front on an httptest server, with an Authorize
// hook that refuses the secret "wrong" (401) and the document spells/403
// (403).
func plainServer(t *testing.T) (*broker.Broker, *httptest.Server) {
	t.Helper()
	b, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := &fauna.Handler{Server: &transport.Server{Broker: b,
		Authorize: func(r *http.Request, tg subscription.Target) error {
			switch {
			case transport.BearerToken(r) == "wrong":
				return transport.ErrUnauthorized
			case tg.Kind == subscription.KindDocument && tg.Ref.ID == "403":
				return errors.New("not this one")
			}
			return nil
		}}}
	ts := httptest.NewServer(h)
	t.Cleanup(func() { b.Close(); ts.Close() })
	return b, ts
}

func post(t *testing.T, url, body, secret string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestRefusals: every refusal before a stream, in Fauna's v4 error shape.
func TestRefusals(t *testing.T) {
	b, ts := plainServer(t)
	if _, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "403"}, []byte(`{}`))
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, body, secret string
		status                   int
		code                     string
	}{
		{"bare collection", "/stream", `{"collection":"spells"}`, "", 400, "invalid argument"},
		{"not JSON", "/stream", `Ref(`, "", 400, "invalid argument"},
		{"unknown function", "/stream", `{"paginate":{"documents":{"collection":"spells"}}}`, "", 400, "invalid argument"},
		{"object term", "/stream", `{"match":{"index":"spells_by_element"},"terms":{"object":{"a":1}}}`, "", 400, "invalid argument"},
		{"term count", "/stream", `{"match":{"index":"spells_by_element"},"terms":[]}`, "", 400, "invalid argument"},
		{"database ref", "/stream", `{"@ref":"databases/x"}`, "", 400, "invalid argument"},
		{"unknown field", "/stream?fields=action,bogus", `{"@ref":"collections/spells/403"}`, "", 400, "invalid argument"},
		{"missing document", "/stream", `{"ref":{"collection":"spells"},"id":"1"}`, "", 404, "instance not found"},
		{"unknown collection", "/stream", `{"documents":{"collection":"nope"}}`, "", 404, "instance not found"},
		{"unknown index", "/stream", `{"match":{"index":"nope"}}`, "", 404, "instance not found"},
		{"unauthorized", "/stream", `{"documents":{"collection":"spells"}}`, "wrong", 401, "unauthorized"},
		{"forbidden", "/stream", `{"@ref":"collections/spells/403"}`, "", 403, "permission denied"},
		{"get missing", "/", `{"get":{"@ref":"collections/spells/1"}}`, "", 404, "instance not found"},
		{"get forbidden", "/", `{"get":{"@ref":"collections/spells/403"}}`, "", 403, "permission denied"},
		{"other query", "/", `{"paginate":{"documents":{"collection":"spells"}}}`, "", 400, "invalid argument"},
		{"no endpoint", "/query/2", `{}`, "", 404, "bad request"},
	} {
		resp := post(t, ts.URL+c.path, c.body, c.secret)
		var got struct {
			Errors []struct {
				Position    []any  `json:"position"`
				Code        string `json:"code"`
				Description string `json:"description"`
			} `json:"errors"`
		}
		err := json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != c.status || len(got.Errors) != 1 || got.Errors[0].Code != c.code ||
			got.Errors[0].Position == nil || got.Errors[0].Description == "" {
			t.Errorf("%s: %d %+v (%v), want %d %q", c.name, resp.StatusCode, got, err, c.status, c.code)
		}
	}
	b.Close()
	resp := post(t, ts.URL+"/stream", `{"documents":{"collection":"spells"}}`, "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("closed broker: %d, want 503", resp.StatusCode)
	}
}

// TestStreamLines: the lines on the wire, tagged, each ending in \r\n;
// a user object whose keys start with "@" comes escaped in @obj.
func TestStreamLines(t *testing.T) {
	b, ts := plainServer(t)
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	created, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(ref, []byte(`{"element":"fire"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	resp := post(t, ts.URL+"/stream?fields=action,document", `{"@ref":"collections/spells/1"}`, "")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	readLine := func() string {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasSuffix(l, "\r\n") {
			t.Fatalf("%q: %v", l, err)
		}
		return strings.TrimSuffix(l, "\r\n")
	}
	start := readLine()
	if !strings.HasPrefix(start, `{"type":"start","txn":`) {
		t.Fatalf("start: %s", start)
	}
	updated, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Update(ref, []byte(`{"meta":{"@ref":"x"}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"version","txn":` + itoa(updated) + `,"event":{"action":"update","document":{"ref":` +
		`{"@ref":{"id":"1","collection":{"@ref":{"id":"spells","collection":{"@ref":{"id":"collections"}}}}}},` +
		`"ts":` + itoa(updated) + `,"data":{"element":"fire","meta":{"@obj":{"@ref":"x"}}}}}}`
	if got := readLine(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	_ = created

	// The document helper's Get.
	g := post(t, ts.URL+"/", `{"get":{"ref":{"collection":"spells"},"id":"1"}}`, "")
	body, _ := io.ReadAll(g.Body)
	g.Body.Close()
	wantGet := `{"resource":{"ref":{"@ref":{"id":"1","collection":{"@ref":{"id":"spells","collection":{"@ref":{"id":"collections"}}}}}},` +
		`"ts":` + itoa(updated) + `,"data":{"element":"fire","meta":{"@obj":{"@ref":"x"}}}}}`
	if g.StatusCode != 200 || strings.TrimSpace(string(body)) != wantGet || g.Header.Get("X-Txn-Time") != itoa(updated) {
		t.Fatalf("get: %d %s (X-Txn-Time %q)", g.StatusCode, body, g.Header.Get("X-Txn-Time"))
	}
}

func itoa(txn txlog.Txn) string { b, _ := json.Marshal(uint64(txn)); return string(b) }

// TestReauthorize: a stream whose secret is revoked ends at the next
// heartbeat with an error event permission denied.
func TestReauthorize(t *testing.T) {
	b, err := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	if err != nil {
		t.Fatal(err)
	}
	var revoked atomic.Bool
	h := &fauna.Handler{Server: &transport.Server{Broker: b, Heartbeat: 20 * time.Millisecond,
		Authorize: func(*http.Request, subscription.Target) error {
			if revoked.Load() {
				return errors.New("revoked")
			}
			return nil
		}}}
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer b.Close()
	resp := post(t, ts.URL+"/stream", `{"documents":{"collection":"spells"}}`, "")
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if l, err := r.ReadString('\n'); err != nil || !strings.Contains(l, `"start"`) {
		t.Fatalf("%q %v", l, err)
	}
	revoked.Store(true)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended without an error event: %v", err)
		}
		if strings.Contains(l, `"type":"status"`) {
			continue
		}
		if !strings.Contains(l, `"type":"error"`) || !strings.Contains(l, `"code":"permission denied"`) {
			t.Fatalf("got %q", l)
		}
		break
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("the stream went on after its error event: %v", err)
	}
}

// TestSlowBody: a body that never finishes is answered 408 after
// BodyTimeout instead of holding the handler.
func TestSlowBody(t *testing.T) {
	b, err := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(&fauna.Handler{Server: &transport.Server{Broker: b, BodyTimeout: 100 * time.Millisecond}})
	defer ts.Close()
	defer b.Close()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"documents\":")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
}

// TestShutdown: Shutdown ends a v4 stream with an error event
// shutting_down and a v10 stream cleanly (its driver reconnects), refuses
// new streams with 503, and returns once their handlers have.
func TestShutdown(t *testing.T) {
	b, err := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &fauna.Handler{Server: &transport.Server{Broker: b, ShutdownWindow: 10 * time.Millisecond}}
	ts := httptest.NewServer(h)
	t.Cleanup(func() { b.Close(); ts.Close() })
	tok, err := h.Token(subscription.Collection("spells"))
	if err != nil {
		t.Fatal(err)
	}
	v4 := post(t, ts.URL+"/stream", `{"documents":{"collection":"spells"}}`, "")
	defer v4.Body.Close()
	v10 := post(t, ts.URL+"/stream/1", `{"token":"`+tok+`"}`, "")
	defer v10.Body.Close()
	r4, r10 := bufio.NewReader(v4.Body), bufio.NewReader(v10.Body)
	for _, r := range []*bufio.Reader{r4, r10} {
		if l, err := r.ReadString('\n'); err != nil || !strings.Contains(l, `"start"`) && !strings.Contains(l, `"status"`) {
			t.Fatalf("first line %q, %v", l, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := r4.ReadString('\n')
	var e struct {
		Type  string
		Event struct{ Code string }
	}
	if err != nil || json.Unmarshal([]byte(l), &e) != nil || e.Type != "error" || e.Event.Code != "shutting_down" {
		t.Fatalf("v4 after Shutdown: %q, %v", l, err)
	}
	if l, err := r10.ReadString('\n'); err != io.EOF || l != "" {
		t.Fatalf("v10 after Shutdown: %q, %v; want a clean end", l, err)
	}
	for _, c := range []struct{ path, body, code string }{
		{"/stream", `{"documents":{"collection":"spells"}}`, `"unavailable"`},
		{"/stream/1", `{"token":"` + tok + `"}`, `"unavailable"`},
	} {
		resp := post(t, ts.URL+c.path, c.body, "")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), c.code) {
			t.Errorf("%s after Shutdown: %d %s", c.path, resp.StatusCode, body)
		}
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("a second Shutdown: %v", err)
	}
}
