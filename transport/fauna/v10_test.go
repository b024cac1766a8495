package fauna_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/fauna"
	"github.com/tidings/tidings/txlog"
)

func v10Server(t *testing.T) (*broker.Broker, *fauna.Handler, *httptest.Server) {
	t.Helper()
	b, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "byElement", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := &fauna.Handler{Server: &transport.Server{Broker: b}}
	ts := httptest.NewServer(h)
	t.Cleanup(func() { b.Close(); ts.Close() })
	return b, h, ts
}

func commit10(t *testing.T, b *broker.Broker, f func(tx *broker.Tx) error) txlog.Txn {
	t.Helper()
	txn, err := b.Commit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return txn
}

type v10Event struct {
	Type   string `json:"type"`
	TxnTS  uint64 `json:"txn_ts"`
	Cursor string `json:"cursor"`
	Data   struct {
		Doc map[string]any `json:"@doc"`
	} `json:"data"`
	Error *struct{ Code, Message string } `json:"error"`
	Stats map[string]any                  `json:"stats"`
}

// v10Stream opens POST /stream/1 and returns a reader of its lines.
func v10Stream(t *testing.T, url, body string) (func() v10Event, func()) {
	t.Helper()
	resp := post(t, url+"/stream/1", body, "")
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	return func() v10Event {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasSuffix(l, "\r\n") {
			t.Fatalf("%q: %v", l, err)
		}
		var e v10Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		return e
	}, func() { resp.Body.Close() }
}

// TestV10Stream: a collection's event source from a minted token sees
// add, update and remove in v10's tagged form, and a reconnect with a
// cursor resumes just after it.
func TestV10Stream(t *testing.T) {
	b, h, ts := v10Server(t)
	tok, err := h.Token(subscription.Collection("spells"))
	if err != nil {
		t.Fatal(err)
	}
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	// Written after minting, before the stream: the stream starts at the
	// token's position, so it sees it.
	created := commit10(t, b, func(tx *broker.Tx) error {
		return tx.Create(ref, []byte(`{"name":"Blaze","id":"own","o":{"@x":1}}`))
	})
	next, stop := v10Stream(t, ts.URL, `{"token":"`+tok+`"}`)
	defer stop()
	if e := next(); e.Type != "status" || e.Cursor == "" || e.Stats == nil {
		t.Fatalf("start: %+v", e)
	}
	add := next()
	d := add.Data.Doc
	if add.Type != "add" || add.TxnTS != uint64(created) || add.Cursor == "" || d["id"] != "1" ||
		d["coll"].(map[string]any)["@mod"] != "spells" || d["name"] != "Blaze" ||
		d["data"].(map[string]any)["id"] != "own" || d["o"].(map[string]any)["@object"] == nil {
		t.Fatalf("add: %+v", add)
	}
	if tm := d["ts"].(map[string]any)["@time"].(string); len(tm) != len("2026-12-04T18:53:23.373847Z") {
		t.Fatalf("ts: %q", tm)
	}
	updated := commit10(t, b, func(tx *broker.Tx) error { return tx.Update(ref, []byte(`{"name":"Inferno"}`)) })
	if e := next(); e.Type != "update" || e.TxnTS != uint64(updated) || e.Data.Doc["name"] != "Inferno" {
		t.Fatalf("update: %+v", e)
	}
	deleted := commit10(t, b, func(tx *broker.Tx) error { return tx.Delete(ref) })
	if e := next(); e.Type != "remove" || e.TxnTS != uint64(deleted) || e.Data.Doc["id"] != "1" {
		t.Fatalf("remove: %+v", e)
	}
	stop()

	// Resume after the add: the update and the remove, exactly once.
	next, stop2 := v10Stream(t, ts.URL, `{"token":"`+tok+`","cursor":"`+add.Cursor+`"}`)
	defer stop2()
	if e := next(); e.Type != "status" {
		t.Fatalf("start: %+v", e)
	}
	if e := next(); e.Type != "update" || e.TxnTS != uint64(updated) {
		t.Fatalf("resumed: %+v", e)
	}
	if e := next(); e.Type != "remove" || e.TxnTS != uint64(deleted) {
		t.Fatalf("resumed: %+v", e)
	}
}

// TestV10DocumentStream: a document's event source has update and remove.
func TestV10DocumentStream(t *testing.T) {
	b, h, ts := v10Server(t)
	ref := txlog.Ref{Collection: "spells", ID: "7"}
	commit10(t, b, func(tx *broker.Tx) error { return tx.Create(ref, []byte(`{"name":"Frost"}`)) })
	tok, err := h.Token(subscription.Document(ref))
	if err != nil {
		t.Fatal(err)
	}
	next, stop := v10Stream(t, ts.URL, `{"token":"`+tok+`"}`)
	defer stop()
	next()
	commit10(t, b, func(tx *broker.Tx) error { return tx.Update(ref, []byte(`{"cost":3}`)) })
	if e := next(); e.Type != "update" || e.Data.Doc["cost"] != 3.0 || e.Data.Doc["name"] != "Frost" {
		t.Fatalf("update: %+v", e)
	}
	commit10(t, b, func(tx *broker.Tx) error { return tx.Delete(ref) })
	if e := next(); e.Type != "remove" || e.Data.Doc["id"] != "7" {
		t.Fatalf("remove: %+v", e)
	}
}

type v10Page struct {
	Events  []v10Event     `json:"events"`
	Cursor  string         `json:"cursor"`
	HasNext bool           `json:"has_next"`
	Stats   map[string]any `json:"stats"`
}

func feed(t *testing.T, url, body string) v10Page {
	t.Helper()
	resp := post(t, url+"/feed/1", body, "")
	defer resp.Body.Close()
	var p v10Page
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
		t.Fatalf("feed: %d %v", resp.StatusCode, err)
	}
	return p
}

// TestV10FeedAndQuery: a token from /query/1 reads pages of /feed/1.
func TestV10FeedAndQuery(t *testing.T) {
	b, _, ts := v10Server(t)
	resp := post(t, ts.URL+"/query/1", `{"query":{"fql":["spells.all().eventSource()"]}}`, "")
	var q struct {
		Data struct {
			Stream string `json:"@stream"`
		} `json:"data"`
	}
	err := json.NewDecoder(resp.Body).Decode(&q)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || q.Data.Stream == "" {
		t.Fatalf("query: %d %+v %v", resp.StatusCode, q, err)
	}
	var txns []txlog.Txn
	for _, id := range []string{"a", "b", "c"} {
		txns = append(txns, commit10(t, b, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"fire"}`))
		}))
	}
	p := feed(t, ts.URL, `{"token":"`+q.Data.Stream+`","page_size":2}`)
	if len(p.Events) != 2 || !p.HasNext || p.Cursor == "" || p.Events[0].TxnTS != uint64(txns[0]) || p.Events[1].Data.Doc["id"] != "b" {
		t.Fatalf("page 1: %+v", p)
	}
	p = feed(t, ts.URL, `{"token":"`+q.Data.Stream+`","page_size":2,"cursor":"`+p.Cursor+`"}`)
	if len(p.Events) != 1 || p.HasNext || p.Events[0].Type != "add" || p.Events[0].TxnTS != uint64(txns[2]) {
		t.Fatalf("page 2: %+v", p)
	}

	// The byId and index forms make tokens too.
	for _, fql := range []string{`spells.byId(\"a\").eventSource()`, `spells.byElement(\"fire\").eventSource()`} {
		resp := post(t, ts.URL+"/query/1", `{"query":{"fql":["`+fql+`"]}}`, "")
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", fql, resp.StatusCode)
		}
	}
}

// TestV10Refusals: v10's error shape, for a tampered token and others.
func TestV10Refusals(t *testing.T) {
	_, h, ts := v10Server(t)
	tok, err := h.Token(subscription.Collection("spells"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := (&fauna.Handler{Server: h.Server}).Token(subscription.Collection("spells"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(tok)
	tampered[3] ^= 1
	for _, c := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"tampered", "/stream/1", `{"token":"` + string(tampered) + `"}`, 400, "invalid_argument"},
		{"foreign", "/feed/1", `{"token":"` + other + `"}`, 400, "invalid_argument"},
		{"garbage", "/stream/1", `{"token":"x"}`, 400, "invalid_argument"},
		{"no token", "/feed/1", `{}`, 400, "invalid_request"},
		{"bad cursor", "/feed/1", `{"token":"` + tok + `","cursor":"zz"}`, 400, "invalid_cursor"},
		{"other query", "/query/1", `{"query":{"fql":["spells.all()"]}}`, 400, "invalid_query"},
		{"unknown collection", "/query/1", `{"query":{"fql":["nope.all().eventSource()"]}}`, 404, "not_found"},
	} {
		resp := post(t, ts.URL+c.path, c.body, "")
		var got struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		err := json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != c.status || got.Error.Code != c.code || got.Error.Message == "" {
			t.Errorf("%s: %d %+v (%v), want %d %q", c.name, resp.StatusCode, got, err, c.status, c.code)
		}
	}
}

// TestV10StartTS: a feed or a stream with start_ts gets the events of the
// txns after it, whatever the token's minting; start_ts later than the
// head starts at the head; with a cursor it is refused.
func TestV10StartTS(t *testing.T) {
	b, h, ts := v10Server(t)
	var txns []txlog.Txn
	for _, id := range []string{"a", "b", "c"} {
		txns = append(txns, commit10(t, b, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"fire"}`))
		}))
	}
	// Minted after the three: without start_ts the feed would be empty.
	tok, err := h.Token(subscription.Collection("spells"))
	if err != nil {
		t.Fatal(err)
	}
	p := feed(t, ts.URL, fmt.Sprintf(`{"token":%q,"start_ts":%d}`, tok, txns[0]))
	if len(p.Events) != 2 || p.Events[0].TxnTS != uint64(txns[1]) || p.Events[1].TxnTS != uint64(txns[2]) {
		t.Fatalf("after the first txn: %+v", p)
	}
	p = feed(t, ts.URL, fmt.Sprintf(`{"token":%q,"start_ts":%d}`, tok, txns[0]-1))
	if len(p.Events) != 3 || p.Events[0].Data.Doc["id"] != "a" {
		t.Fatalf("before the first txn: %+v", p)
	}
	// Later than the head: nothing yet, and the cursor reads on from there.
	p = feed(t, ts.URL, fmt.Sprintf(`{"token":%q,"start_ts":%d}`, tok, txns[2]+1))
	if len(p.Events) != 0 || p.Cursor == "" || p.HasNext {
		t.Fatalf("after the head: %+v", p)
	}
	d := commit10(t, b, func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "d"}, []byte(`{"element":"air"}`))
	})
	p = feed(t, ts.URL, fmt.Sprintf(`{"token":%q,"cursor":%q}`, tok, p.Cursor))
	if len(p.Events) != 1 || p.Events[0].TxnTS != uint64(d) {
		t.Fatalf("on from the cursor: %+v", p)
	}

	next, stop := v10Stream(t, ts.URL, fmt.Sprintf(`{"token":%q,"start_ts":%d}`, tok, txns[1]))
	defer stop()
	if e := next(); e.Type != "status" || e.Cursor == "" {
		t.Fatalf("start: %+v", e)
	}
	for _, want := range []txlog.Txn{txns[2], d} {
		if e := next(); e.Type != "add" || e.TxnTS != uint64(want) {
			t.Fatalf("got %+v, want the add at %d", e, want)
		}
	}

	for _, body := range []string{
		fmt.Sprintf(`{"token":%q,"start_ts":%d,"cursor":%q}`, tok, txns[0], p.Cursor),
		fmt.Sprintf(`{"token":%q,"start_ts":-1}`, tok),
	} {
		resp := post(t, ts.URL+"/feed/1", body, "")
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", body, resp.StatusCode)
		}
	}
}
