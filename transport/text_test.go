package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidings/tidings/txlog"
)

// checkRefused checks that a request was answered 400 invalid_request; a
// stream that started anyway is closed at once rather than read to its end.
func checkRefused(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest {
		resp.Body.Close()
		t.Errorf("%s: %s, want 400", what, resp.Status)
		return
	}
	checkError(t, resp, http.StatusBadRequest, CodeInvalidRequest)
}

// The write endpoint answers 400 invalid_request for a write whose data,
// patch, id or collection is not valid UTF-8 (raw bytes, or an escaped
// surrogate without its pair), and commits nothing: encoding/json would
// have read an id as another one, with U+FFFD, and the data would have
// been stored and sent back verbatim.
func TestWriteRefusesInvalidUTF8(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	resp := do(t, c, "POST", ts.URL+"/write", `{"writes":[{"action":"create","collection":"spells","id":"1","data":{"element":"fire"}}]}`, nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a valid write: %s", resp.Status)
	}
	head := b.Head()
	before, _ := b.Get(txlog.Ref{Collection: "spells", ID: "1"})

	write := func(action, collection, id, data string) string {
		w := `{"action":"` + action + `","collection":"` + collection + `","id":"` + id + `"`
		if data != "" {
			w += `,"data":` + data
		}
		return `{"writes":[` + w + `}]}`
	}
	for what, body := range map[string]string{
		"value":             write("create", "spells", "2", "{\"element\":\"\xff\xfe\"}"),
		"key":               write("upsert", "spells", "1", "{\"\xff\":1}"),
		"nested value":      write("replace", "spells", "1", "{\"a\":{\"b\":[1,{\"c\":\"x\xc3\"}]}}"),
		"patch":             write("update", "spells", "1", "{\"element\":\"\xe2\x80\"}"),
		"escaped surrogate": write("update", "spells", "1", `{"a":{"b":"\ud800"}}`),
		"id":                write("create", "spells", "2\xff", `{}`),
		"id of a delete":    write("delete", "spells", "1\xff", ``),
		"id as an escape":   write("upsert", "spells", `\udfff`, `{}`),
		"collection":        write("create", "spells\xff", "2", `{}`),
		"unrelated field":   `{"writes":[{"action":"create","collection":"spells","id":"2","data":{}}],"x":"` + "\xff" + `"}`,
		"second of two": `{"writes":[{"action":"create","collection":"spells","id":"2","data":{}},` +
			"{\"action\":\"create\",\"collection\":\"spells\",\"id\":\"3\",\"data\":{\"a\":\"\xff\"}}]}",
	} {
		checkRefused(t, what, do(t, c, "POST", ts.URL+"/write", body, nil))
	}
	checkRefused(t, "a query string", do(t, c, "POST", ts.URL+"/write?x=%FF", write("create", "spells", "2", `{}`), nil))
	if b.Head() != head {
		t.Fatalf("head moved from %d to %d: a refused write committed", head, b.Head())
	}
	if after, _ := b.Get(txlog.Ref{Collection: "spells", ID: "1"}); !bytes.Equal(after.Data, before.Data) {
		t.Fatalf("spells/1 changed from %s to %s", before.Data, after.Data)
	}
	for _, id := range []string{"2", "3", "2\ufffd", "\ufffd"} {
		if _, ok := b.Get(txlog.Ref{Collection: "spells", ID: id}); ok {
			t.Fatalf("spells/%q was written", id)
		}
	}
}

// An NDJSON stream request, and an SSE or feed query, that is not valid
// UTF-8 is answered 400 before it is decoded: a name, an id or a term is
// never silently read as another one.
func TestStreamRequestsRefuseInvalidUTF8(t *testing.T) {
	ts, _, _ := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	for what, body := range map[string]string{
		"a term":           "{\"index\":\"spells_by_element\",\"terms\":[\"\xff\"]}",
		"an escaped term":  `{"index":"spells_by_element","terms":["\ud800"]}`,
		"an id":            "{\"document\":{\"collection\":\"spells\",\"id\":\"\xff\"},\"cursor\":\"\"}",
		"a collection":     "{\"collection\":\"spells\xff\"}",
		"a subscription":   "{\"subscriptions\":{\"\xff\":{\"collection\":\"spells\"}}}",
		"a truncated rune": "{\"collection\":\"spells\",\"cursor\":\"\xe2\x80\"}",
		"outside a string": "{\"collection\":\"spells\"}\xff",
	} {
		checkRefused(t, "stream with invalid UTF-8 in "+what, do(t, c, "POST", ts.URL+"/stream", body, nil))
	}
	checkRefused(t, "stream with invalid UTF-8 in its query", do(t, c, "POST", ts.URL+"/stream?fields=action%FF", `{"collection":"spells"}`, nil))
	for what, query := range map[string]string{
		"a term":          "index=spells_by_element&terms=" + url.QueryEscape("[\"\xff\"]"),
		"an escaped term": "index=spells_by_element&terms=" + url.QueryEscape(`["\udbff"]`),
		"an id":           "collection=spells&id=1%FF&cursor=",
		"a collection":    "collection=spells%C3",
		"a subscription":  "subscriptions=" + url.QueryEscape(`{"\ud800":{"collection":"spells"}}`),
		"a name":          "collection=spells&%FF=1",
		"a raw byte":      "collection=spells\xff",
	} {
		for _, path := range []string{"/sse", "/feed"} {
			checkRefused(t, path+" with invalid UTF-8 in "+what, do(t, c, "GET", ts.URL+path+"?"+query, "", nil))
		}
	}
}

// lineBreakers are what a client splitting lines by Unicode's rules takes
// for a line end besides CR and LF, as UTF-8: U+2028, U+2029, U+0085.
var lineBreakers = []string{"\u2028", "\u2029", "\u0085"}

// checkNoLineBreakers fails the test if b holds a raw U+2028, U+2029 or
// U+0085, or is not valid UTF-8.
func checkNoLineBreakers(t *testing.T, what string, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		t.Errorf("%s: not valid UTF-8: %q", what, b)
	}
	for _, lb := range lineBreakers {
		if i := bytes.Index(b, []byte(lb)); i >= 0 {
			t.Errorf("%s: a raw %q (% x) at byte %d: %q", what, lb, lb, i, b)
		}
	}
}

// splitLinesPython splits text as Python's str.splitlines does: at \n, \r,
// \r\n, \v, \f, \x1c, \x1d, \x1e, U+0085, U+2028 and U+2029.
func splitLinesPython(s string) []string {
	var lines []string
	start := 0
	for i, r := range s {
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			if r == '\n' && i > 0 && s[i-1] == '\r' {
				start = i + 1
				continue
			}
			lines = append(lines, s[start:i])
			start = i + utf8.RuneLen(r)
		}
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

func TestSplitLinesPython(t *testing.T) {
	got := splitLinesPython("a\r\nb\u2028c\u0085d\re\n\nf")
	if want := []string{"a", "b", "c", "d", "e", "", "f"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
}

// Documents whose keys and values hold U+2028, U+2029 and U+0085, raw and
// escaped, reach every client on one line by every rule: NDJSON, SSE and
// feed responses, multiplexed streams with such subscription names, and
// error responses that quote the request, hold none of the three raw, and
// decode to the strings written. Python's str.splitlines cuts an NDJSON
// response into exactly one line per event.
func TestLineSeparatorsOnTheWire(t *testing.T) {
	ts, _, _ := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	get := func(what, path string) []byte {
		t.Helper()
		resp := do(t, c, "GET", ts.URL+path, "", nil)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s (%v)", what, resp.Status, body, err)
		}
		return body
	}
	// The head's position, from an empty feed page: every stream below
	// replays the writes from it.
	var page struct {
		Events []json.RawMessage `json:"events"`
		Cursor string            `json:"cursor"`
	}
	if err := json.Unmarshal(get("feed", "/feed?collection=spells"), &page); err != nil {
		t.Fatal(err)
	}
	cursor := page.Cursor

	const element = "f\u2028i\u2029r\u0085e"
	created := "{\"element\":\"" + element + "\",\"k\u0085\":\"a\u2028\",\"n\u2029\":{\"\u2028\":[\"\u0085\",\"\\u2028\\u2029\\u0085\"]}}"
	patch := `{"k\u0085":"b\u2029","n\u2029":{"\u2028":null,"m\u0085":"\u2028"}}`
	body := `{"writes":[{"action":"create","collection":"spells","id":"1","data":` + created + `},` +
		`{"action":"upsert","collection":"spells","id":"2` + "\u2028" + `","data":` + created + `}]}`
	resp := do(t, c, "POST", ts.URL+"/write", body, nil)
	resp.Body.Close()
	resp2 := do(t, c, "POST", ts.URL+"/write", `{"writes":[{"action":"update","collection":"spells","id":"1","data":`+patch+`}]}`, nil)
	resp2.Body.Close()
	if resp.StatusCode != 200 || resp2.StatusCode != 200 {
		t.Fatalf("writes: %s, %s", resp.Status, resp2.Status)
	}
	decode := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return v
	}
	wantData := map[string]any{
		"1/create":       decode(created),
		"2\u2028/create": decode(created),
		"1/update":       decode("{\"element\":\"" + element + "\",\"k\u0085\":\"b\u2029\",\"n\u2029\":{\"m\u0085\":\"\u2028\"}}"),
	}
	// checkEvent checks one event line: what it carries decodes to the
	// strings written.
	checkEvent := func(what string, line []byte) {
		t.Helper()
		checkNoLineBreakers(t, what, line)
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			t.Fatalf("%s: %q: %v", what, line, err)
		}
		if head.Type != "version" && head.Type != "set" {
			return
		}
		var e struct {
			Type  string `json:"type"`
			Event struct {
				Action   string `json:"action"`
				Document struct {
					Ref  txlog.Ref `json:"ref"`
					Data any       `json:"data"`
				} `json:"document"`
				Index struct {
					Terms []string `json:"terms"`
				} `json:"index"`
			} `json:"event"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("%s: %q: %v", what, line, err)
		}
		key := e.Event.Document.Ref.ID + "/create"
		if e.Event.Action == "update" {
			key = e.Event.Document.Ref.ID + "/update"
		}
		if !reflect.DeepEqual(e.Event.Document.Data, wantData[key]) {
			t.Errorf("%s: %s data %v, want %v", what, key, e.Event.Document.Data, wantData[key])
		}
		if e.Type == "set" && (len(e.Event.Index.Terms) != 1 || e.Event.Index.Terms[0] != element) {
			t.Errorf("%s: index terms %q, want [%q]", what, e.Event.Index.Terms, element)
		}
	}

	// NDJSON: a set stream, a document stream, and a multiplexed stream
	// whose subscription names hold the separators too.
	ndjson := func(what, req string, n int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := http.NewRequestWithContext(ctx, "POST", ts.URL+"/stream", strings.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			checkError(t, resp, 200, "")
			t.FailNow()
		}
		br := bufio.NewReader(resp.Body)
		var all []byte
		for range n {
			l, err := br.ReadBytes('\n')
			if err != nil || !bytes.HasSuffix(l, []byte("\r\n")) {
				t.Fatalf("%s: line %q: %v", what, l, err)
			}
			checkEvent(what, l)
			all = append(all, l...)
		}
		if lines := splitLinesPython(string(all)); len(lines) != n {
			t.Errorf("%s: %d events split into %d lines by Python's rules: %q", what, n, len(lines), lines)
		}
	}
	ndjson("NDJSON set stream", `{"index":"spells_by_element","terms":["`+element+`"],"fields":"action,document,index","data":true,"updates":true,"cursor":"`+cursor+`"}`, 4)
	ndjson("NDJSON document stream", `{"document":{"collection":"spells","id":"1"},"fields":"action,document,prev,diff","cursor":"`+cursor+`"}`, 3)
	ndjson("NDJSON snapshot", `{"collection":"spells","data":true,"snapshot":true}`, 2)
	ndjson("NDJSON multiplexed", `{"subscriptions":{"a`+"\u0085"+`":{"collection":"spells","data":true,"snapshot":true},`+
		`"b\u2028":{"document":{"collection":"spells","id":"2`+"\u2028"+`"},"snapshot":true}}}`, 4)

	// SSE: read until the events are in, and look at the raw bytes.
	q := url.Values{"index": {"spells_by_element"}, "terms": {`["` + element + `"]`}, "fields": {"action,document,index"},
		"data": {"true"}, "updates": {"true"}, "cursor": {cursor}}
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/sse?"+q.Encode(), nil)
		resp, err := c.Do(r)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("SSE: %v %v", resp, err)
		}
		defer resp.Body.Close()
		var raw bytes.Buffer
		p := newSSEParser(io.TeeReader(resp.Body, &raw))
		for range 4 {
			ev, err := p.next()
			if err != nil {
				t.Fatal(err)
			}
			checkEvent("SSE", []byte(ev.Data))
		}
		checkNoLineBreakers(t, "SSE response", raw.Bytes())
	}()

	// The feed.
	q.Set("page_size", "10")
	feed := get("feed", "/feed?"+q.Encode())
	checkNoLineBreakers(t, "feed", feed)
	if err := json.Unmarshal(feed, &page); err != nil || len(page.Events) != 3 {
		t.Fatalf("feed: %d events, %v", len(page.Events), err)
	}
	for _, e := range page.Events {
		checkEvent("feed", e)
	}

	// Error responses quoting the request: the ref of a refused write.
	for _, w := range []struct {
		body   string
		status int
	}{
		{`{"writes":[{"action":"create","collection":"potions","id":"a` + "\u0085" + `","data":{}}]}`, 404},
		{`{"writes":[{"action":"create","collection":"spells","id":"2` + "\u2028" + `","data":{}}]}`, 409},
		{`{"writes":[{"action":"create","collection":"spells","id":"3\u2029","data":[]}]}`, 400},
	} {
		resp := do(t, c, "POST", ts.URL+"/write", w.body, nil)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkNoLineBreakers(t, "error response", raw)
		var e struct{ Error struct{ Description string } }
		if err := json.Unmarshal(raw, &e); err != nil || resp.StatusCode != w.status || !strings.ContainsAny(e.Error.Description, "\u0085\u2028\u2029") {
			t.Errorf("%s: %s %s, want %d quoting the id", w.body, resp.Status, raw, w.status)
		}
	}
}
