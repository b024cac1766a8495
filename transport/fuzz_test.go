package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

const fuzzBodyLimit = 1024

// checkRequestError checks an error from decoding or checking a request:
// an *Error (or the body limit's error) answered 400, or 413 when the body
// is larger than the limit, and nothing else.
func checkRequestError(t *testing.T, err error, bodyLen int) {
	t.Helper()
	var e *Error
	var mb *http.MaxBytesError
	if !errors.As(err, &e) && !errors.As(err, &mb) {
		t.Fatalf("%T %v: not an *Error", err, err)
	}
	resp := errorFor(err)
	switch {
	case resp.Status == http.StatusBadRequest && resp.Code == CodeInvalidRequest:
	case resp.Status == http.StatusRequestEntityTooLarge && resp.Code == CodeBodyTooLarge && bodyLen > fuzzBodyLimit:
	default:
		t.Fatalf("%v: answered %d %s (body of %d bytes)", err, resp.Status, resp.Code, bodyLen)
	}
	if resp.Description == "" {
		t.Fatalf("%v: no description", err)
	}
}

// replacementEscape finds a \u escape of U+FFFD.
var replacementEscape = regexp.MustCompile(`(?i)\\ufffd`)

// checkText checks a body that was accepted: valid UTF-8, and read without
// replacing anything. encoding/json reads a lone surrogate escape as
// U+FFFD, so the strings it decodes hold no U+FFFD the body does not spell
// out.
func checkText(t *testing.T, body []byte) {
	t.Helper()
	if !utf8.Valid(body) {
		t.Fatalf("%q accepted: not valid UTF-8", body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // 1e400 is valid JSON
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%q accepted: %v", body, err)
	}
	n := 0
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			n += strings.Count(v, "\ufffd")
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for k, x := range v {
				n += strings.Count(k, "\ufffd")
				walk(x)
			}
		}
	}
	walk(v)
	if n > bytes.Count(body, []byte("\ufffd"))+len(replacementEscape.FindAll(body, -1)) {
		t.Fatalf("%q accepted: a string decodes with a U+FFFD it does not spell out", body)
	}
}

// checkTarget checks what a decoded request asks for: either a 400, or
// exactly one target that the broker's option check accepts too.
// Subscriptions are checked one by one, as the multiplexed stream does.
func checkTarget(t *testing.T, req StreamRequest) {
	t.Helper()
	if len(req.Subscriptions) > 0 {
		for _, sr := range req.Subscriptions {
			checkTarget(t, sr)
		}
		return
	}
	target, opt, err := req.target()
	if err != nil {
		checkRequestError(t, err, 0)
		return
	}
	n := 0
	for _, set := range []bool{req.Collection != "", req.Index != "", req.Document != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%+v: accepted with %d targets", req, n)
	}
	switch target.Kind {
	case subscription.KindCollection:
		if target.Collection != req.Collection {
			t.Fatalf("%+v: target %+v", req, target)
		}
	case subscription.KindIndex:
		if target.Index != req.Index || len(target.Terms) != len(req.Terms) {
			t.Fatalf("%+v: target %+v", req, target)
		}
	case subscription.KindDocument:
		if target.Ref != *req.Document || target.Ref.Collection == "" || target.Ref.ID == "" {
			t.Fatalf("%+v: target %+v", req, target)
		}
	default:
		t.Fatalf("%+v: target %+v", req, target)
	}
	if opt.Cursor != req.Cursor || opt.Snapshot != req.Snapshot {
		t.Fatalf("%+v: options %+v", req, opt)
	}
	if _, err := opt.Normalize(); err != nil {
		t.Fatalf("%+v: accepted options the broker refuses: %v", req, err)
	}
}

var streamBodySeeds = []string{
	`{"collection":"spells"}`,
	`{"index":"spells_by_element","terms":["fire"]}`,
	`{"index":"spells_by_element","terms":[1.5,true,null,{"a":[1]},"x"]}`,
	`{"index":"all"}`,
	`{"document":{"collection":"spells","id":"101"},"fields":["prev","diff"],"snapshot":true}`,
	`{"collection":"spells","fields":"action, document,index","cursor":"AQ","updates":true,"data":true,"page_size":3}`,
	`{"collection":"spells","page_size":-1}`,
	`{"collection":"spells","page_size":100000}`,
	`{"collection":"spells","fields":["colour"]}`,
	`{"collection":"spells","fields":7}`,
	`{"collection":"spells","colour":"red"}`,
	`{"terms":["fire"]}`,
	`{"document":{"collection":"spells"}}`,
	`{"document":null,"collection":""}`,
	`{"subscriptions":{"a":{"collection":"spells"},"b":{"index":"spells_by_element","terms":["fire"]}}}`,
	`{"subscriptions":{"a":{"subscriptions":{"b":{"collection":"spells"}}}}}`,
	`{"collection":"spells"} {}`,
	`{"collection":"spells"}` + strings.Repeat(" ", 2*fuzzBodyLimit),
	`{"collection":"` + strings.Repeat("x", 2*fuzzBodyLimit) + `"}`,
	`{"index":"i","terms":[` + strings.Repeat(`1,`, 100) + `1]}`,
	`{"index":"i","terms":[1e400]}`,
	`{"index":"i","terms":["\ud800"]}`,
	`{"collection":"\u0000"}`,
	"{\"collection\":\"spells\xff\"}",
	"{\"document\":{\"collection\":\"spells\",\"id\":\"\xe2\x80\"}}",
	`{"document":{"collection":"spells","id":"\udc00\ud800"}}`,
	`{"document":{"collection":"spells","id":"\ud83d\ude00\ufffd"}}`,
	"{\"subscriptions\":{\"a\u0085\":{\"collection\":\"spells\u2028\"}}}",
	"{\"collection\":\"spells\"}\xff",
	`[]`, `null`, `""`, `{`, ``, "\xff",
}

func FuzzStreamRequestBody(f *testing.F) {
	for _, s := range streamBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeStreamRequest(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), fuzzBodyLimit))
		if err != nil {
			checkRequestError(t, err, len(body))
			return
		}
		if len(body) > fuzzBodyLimit {
			t.Fatalf("a body of %d bytes accepted beyond the limit of %d", len(body), fuzzBodyLimit)
		}
		checkText(t, body)
		checkTarget(t, req)
	})
}

func FuzzStreamQuery(f *testing.F) {
	for _, s := range []string{
		"collection=spells",
		"collection=spells&id=101&fields=prev,diff&snapshot",
		"index=spells_by_element&terms=%5B%22fire%22%5D",
		"index=spells_by_element&terms=fire",
		"index=all",
		"collection=spells&snapshot=maybe&updates=1&data=0&page_size=x",
		"collection=spells&page_size=-5",
		"collection=spells&collection=potions",
		"collection=spells&colour=red",
		"id=1",
		"collection=&id=",
		"cursor=AQ&collection=spells",
		"subscriptions=%7B%22a%22%3A%7B%22collection%22%3A%22spells%22%7D%7D",
		"subscriptions=%7B",
		"terms=%5B1%5D",
		"fields=&collection=spells",
		"collection=spells&id=%FF",
		"collection=spells%E2%80",
		"collection=spells\xff",
		"%C3=1&collection=spells",
		"index=spells_by_element&terms=%5B%22%5Cud800%22%5D",
		"subscriptions=%7B%22%5Cudfff%22%3A%7B%22collection%22%3A%22spells%22%7D%7D",
		"collection=spells%E2%80%A8&id=%C2%85",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		req, err := queryStreamRequest(q)
		if err != nil {
			checkRequestError(t, err, 0)
			return
		}
		for k, vs := range q {
			if !utf8.ValidString(k) || !utf8.ValidString(vs[0]) {
				t.Fatalf("%q accepted: %q=%q is not valid UTF-8", query, k, vs[0])
			}
			if (k == "terms" || k == "subscriptions") && vs[0] != "" { // empty: not decoded
				checkText(t, []byte(vs[0]))
			}
		}
		checkTarget(t, req)
	})
}

// FuzzLastEventID drives the SSE handler in process with an arbitrary
// Last-Event-ID: it is answered 200 exactly when the id is a cursor of
// this log within its history, 410 history_unavailable otherwise, never
// 5xx, never a panic. (The request's context is done, so a stream that
// starts ends at once.) The multiplexed SSE stream reads it as a compound
// cursor: 200, 400 or 410 there.
func FuzzLastEventID(f *testing.F) {
	b, err := broker.New(broker.Options{Schema: spellsSchema()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	for i := range 3 {
		if _, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: string(rune('a' + i))}, []byte(`{"element":"fire"}`))
		}); err != nil {
			f.Fatal(err)
		}
	}
	srv := &Server{Broker: b}
	h := srv.SSE()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	head := b.Head()
	for _, id := range []string{
		txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(head)}.String(),
		txlog.Cursor{Log: b.LogID(), Pos: txlog.Pos{Txn: head, Op: 0}, Seq: 1}.String(),
		txlog.Cursor{Log: b.LogID()}.String(),
		txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(head + 1)}.String(),
		txlog.Cursor{Log: txlog.NewID(), Pos: txlog.AfterTxn(head)}.String(),
		txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(head)}.String() + "=",
		txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(head)}.String()[1:],
		"AQ", "", " ", "\r\n", "id: x\n\nevent: y", "\x00", "\xff\xfe", strings.Repeat("A", 4096),
	} {
		f.Add(id, false)
		f.Add(id, true)
	}
	const multi = `{"a":{"collection":"spells"},"b":{"index":"spells_by_element","terms":["fire"]}}`
	f.Fuzz(func(t *testing.T, id string, multiplexed bool) {
		target := "/sse?collection=spells"
		if multiplexed {
			target = "/sse?subscriptions=" + url.QueryEscape(multi)
		}
		r := httptest.NewRequest("GET", target, nil).WithContext(ctx)
		r.Header.Set("Last-Event-ID", id)
		w := httptest.NewRecorder()
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeHTTP(w, r)
		}()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("Last-Event-ID %q (multiplexed %v): the handler hangs\n%s", id, multiplexed, buf[:runtime.Stack(buf, true)])
		}
		code := w.Code
		if n := b.Stats().Subscriptions; n != 0 {
			t.Fatalf("%q: %d subscriptions left open", id, n)
		}
		if code != 200 {
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code == "" {
				t.Fatalf("%q: %d with body %q", id, code, w.Body)
			}
		}
		if multiplexed {
			if code != 200 && code != 400 && code != 410 {
				t.Fatalf("%q: %d %s", id, code, w.Body)
			}
			return
		}
		c, err := txlog.ParseCursor(id)
		want := 410
		if id == "" || err == nil && c.Log == b.LogID() && c.Pos.Txn <= head {
			want = 200
		}
		if code != want {
			t.Fatalf("%q: %d %s, want %d", id, code, w.Body, want)
		}
	})
}

// FuzzWriteRequest decodes arbitrary bodies as write requests, and sends
// them to the write endpoint of a live broker: errors are 400 (413 beyond
// the body limit) when decoding, and the endpoint answers 200, 400, 404,
// 409 or 413, never 5xx, never a panic. A committed body is valid UTF-8,
// read without replacing anything, and the documents it wrote are stored
// with no raw U+2028, U+2029 or U+0085.
func FuzzWriteRequest(f *testing.F) {
	for _, s := range []string{
		`{"writes":[{"action":"create","collection":"spells","id":"1","data":{"element":"fire"}}]}`,
		`{"writes":[{"action":"update","collection":"spells","id":"1","data":{"element":null}},{"action":"delete","collection":"spells","id":"1"}]}`,
		`{"writes":[{"action":"upsert","collection":"spells","id":"2","data":{"element":["fire","water"]}}]}`,
		`{"writes":[{"action":"replace","collection":"spells","id":"2","data":{"element":{"nested":1}}}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"3","data":{"element":1e400}}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"4","data":{"element":-0,"x":1e-400}}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"","data":{}}]}`,
		`{"writes":[{"action":"create","collection":"","id":"5","data":{}}]}`,
		`{"writes":[{"action":"create","collection":"potions","id":"1","data":{}}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"6","data":[1]}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"6","data":null}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"7","data":{"element":"\ud800"}}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"8","data":{"a":{"b":{"c":{"d":[[[[[]]]]]}}}}}]}`,
		`{"writes":[{"action":"delete","collection":"spells","id":"404"}]}`,
		`{"writes":[{"action":"create","collection":"spells","id":"9"}]}`,
		`{"writes":[{"action":"rewrite","collection":"spells","id":"9"}]}`,
		`{"writes":[]}`, `{"writes":null}`, `{}`, `{"writes":[{}]}`,
		`{"writes":[{"action":"delete","collection":"spells","id":"1","extra":1}]}`,
		`{"writes":[{"action":"delete","collection":"spells","id":"1"}]} {}`,
		`{"writes":[{"action":"delete","collection":"spells","id":"1"}]}` + strings.Repeat(" ", 2*fuzzBodyLimit),
		"{\"writes\":[{\"action\":\"create\",\"collection\":\"spells\",\"id\":\"10\",\"data\":{\"a\":\"\xff\xfe\"}}]}",
		"{\"writes\":[{\"action\":\"upsert\",\"collection\":\"spells\",\"id\":\"11\",\"data\":{\"\xc3\":{\"b\":1}}}]}",
		"{\"writes\":[{\"action\":\"create\",\"collection\":\"spells\",\"id\":\"12\xff\",\"data\":{}}]}",
		"{\"writes\":[{\"action\":\"create\",\"collection\":\"spells\xff\",\"id\":\"12\",\"data\":{}}]}",
		`{"writes":[{"action":"create","collection":"spells","id":"\udfff","data":{}}]}`,
		`{"writes":[{"action":"update","collection":"spells","id":"1","data":{"a":{"\ud800":1}}}]}`,
		"{\"writes\":[{\"action\":\"upsert\",\"collection\":\"spells\",\"id\":\"13\u2028\",\"data\":{\"a\u0085\":\"\u2029\",\"element\":\"\u2028\"}}]}",
		`{"writes":[{"action":"upsert","collection":"spells","id":"14","data":{"a\u0085":"\u2029\u2028","b":"\ud83d\ude00"}}]}`,
		`[]`, `{`, ``, "\xff",
	} {
		f.Add([]byte(s))
	}
	b, err := broker.New(broker.Options{Schema: spellsSchema()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	h := (&Server{Broker: b, AuthorizeWrite: allowWrites, MaxBodyBytes: fuzzBodyLimit}).Write()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeWriteRequest(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), fuzzBodyLimit))
		if err != nil {
			checkRequestError(t, err, len(body))
		} else {
			if len(body) > fuzzBodyLimit {
				t.Fatalf("a body of %d bytes accepted beyond the limit", len(body))
			}
			if len(req.Writes) == 0 || len(req.Writes) > maxWrites {
				t.Fatalf("%d writes accepted", len(req.Writes))
			}
			for _, w := range req.Writes {
				switch w.Action {
				case "create", "replace", "update", "upsert":
					if len(w.Data) == 0 {
						t.Fatalf("%s without data accepted", w.Action)
					}
				case "delete":
				default:
					t.Fatalf("action %q accepted", w.Action)
				}
			}
		}
		r := httptest.NewRequest("POST", "/write", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case err != nil:
			if want := errorFor(err).Status; w.Code != want {
				t.Fatalf("%d %s for %q, which decodes to a %d", w.Code, w.Body, body, want)
			}
		case w.Code == 200:
			var ok struct{ Txn uint64 }
			if json.Unmarshal(w.Body.Bytes(), &ok) != nil || ok.Txn == 0 {
				t.Fatalf("200 %s for %q", w.Body, body)
			}
			// Committed: the request was text, and what is stored is on
			// one line by every client's rules.
			checkText(t, body)
			for _, op := range req.Writes {
				d, found := b.Get(txlog.Ref{Collection: op.Collection, ID: op.ID})
				if found && (!utf8.Valid(d.Data) || bytes.ContainsAny(d.Data, "\r\n\u2028\u2029\u0085")) {
					t.Fatalf("%q stored %q", body, d.Data)
				}
			}
		case w.Code == 400, w.Code == 404, w.Code == 409:
		default:
			t.Fatalf("%d %s for %q", w.Code, w.Body, body)
		}
	})
}
