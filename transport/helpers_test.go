package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Helpers that the tests of several files use: servers and clients,
// commits, reading streams and their events, and waiting. A helper that
// one file's tests use stays in that file.

// ---------------------------------------------------------------------------
// Servers and clients.

// spellsSchema is the spells collection and the spells_by_element index.
func spellsSchema() index.Schema {
	return index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}
}

// newSpellsBroker is an in-memory broker with spellsSchema, closed when
// the test ends.
func newSpellsBroker(t testing.TB) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Options{Schema: spellsSchema()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testServer runs a Server for a spells broker on a real socket, speaking
// HTTP/1.1 and unencrypted HTTP/2 (h2c).
func testServer(t testing.TB, configure func(*Server)) (*httptest.Server, *Server, *broker.Broker) {
	t.Helper()
	b := newSpellsBroker(t)
	srv := &Server{Broker: b, AuthorizeWrite: allowWrites}
	if configure != nil {
		configure(srv)
	}
	return serveBroker(t, srv), srv, b
}

// serveBroker serves srv, on an existing broker, like testServer does:
// HTTP/1.1 and h2c, set up with ConfigureServer.
func serveBroker(t testing.TB, srv *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ConfigureServer(ts.Config, srv.MaxStreamsPerConn)
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 0)
		defer cancel()
		srv.ShutdownWindow = 1
		srv.Shutdown(ctx)
		ts.Close()
	})
	return ts
}

// client returns an HTTP client speaking only the given protocol: "h1" or
// "h2c".
func client(proto string) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	if proto == "h2c" {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return &http.Client{Transport: tr}
}

// protocols are what client speaks: tests run once for each.
var protocols = []string{"h1", "h2c"}

// do sends a request with a deadline, so that a hang fails the test
// instead of stalling it. The deadline is longer than any waitFor of the
// tests, so that it cannot be what ends a stream they wait on.
func do(t testing.TB, c *http.Client, method, url, body string, header http.Header) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json") // as a JSON client sends it
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body = &cancelBody{resp.Body, cancel}
	return resp
}

// cancelBody cancels a request's context when its response body is
// closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

// remoteAddrs records, through the Authorize hook, the client address of
// every stream request: the connection it came on, as the server sees it.
type remoteAddrs struct {
	mu    sync.Mutex
	addrs []string
}

func (ra *remoteAddrs) authorize(r *http.Request, _ subscription.Target) error {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.addrs = append(ra.addrs, r.RemoteAddr)
	return nil
}

func (ra *remoteAddrs) last() string {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.addrs[len(ra.addrs)-1]
}

func (ra *remoteAddrs) distinct() map[string]int {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	m := map[string]int{}
	for _, a := range ra.addrs {
		m[a]++
	}
	return m
}

// ---------------------------------------------------------------------------
// Commits.

// commit commits fn, failing the test on an error.
func commit(t testing.TB, b *broker.Broker, fn func(tx *broker.Tx) error) txlog.Txn {
	t.Helper()
	txn, err := b.Commit(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	return txn
}

// createSpell commits a spell of the given element.
func createSpell(t testing.TB, b *broker.Broker, id, element string) txlog.Txn {
	t.Helper()
	return commit(t, b, func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"`+element+`"}`))
	})
}

// committed is what a test committed, for comparing with what a client
// received: one write, its txn and document id.
type committed struct {
	Txn uint64
	ID  string
}

// commitSpells commits txns transactions; the transaction i creates
// perTxn documents, named prefix-i-j. It returns the writes in commit
// order, which is the order of their set events.
func commitSpells(t testing.TB, b *broker.Broker, prefix string, txns, perTxn int) []committed {
	t.Helper()
	var out []committed
	for i := range txns {
		var ids []string
		txn := commit(t, b, func(tx *broker.Tx) error {
			ids = ids[:0]
			for j := range perTxn {
				id := fmt.Sprintf("%s-%d-%d", prefix, i, j)
				ids = append(ids, id)
				if err := tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"fire"}`)); err != nil {
					return err
				}
			}
			return nil
		})
		for _, id := range ids {
			out = append(out, committed{uint64(txn), id})
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Reading responses, streams and events.

// wireEvent is an event as a client decodes it.
type wireEvent struct {
	Type   string          `json:"type"`
	Txn    uint64          `json:"txn"`
	Cursor string          `json:"cursor"`
	Raw    json.RawMessage `json:"event"`
	Event  wireBody        `json:"-"`
}

// wireBody is the part of an event's body that tests look at.
type wireBody struct {
	Action   string `json:"action"`
	Code     string `json:"code"`
	Cursor   string `json:"cursor"`
	Document struct {
		Ref txlog.Ref `json:"ref"`
	} `json:"document"`
}

// parseWire decodes an event line, and its body where it is an object.
func parseWire(line []byte) (wireEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(line, &w); err != nil {
		return w, err
	}
	if len(w.Raw) > 0 && w.Raw[0] == '{' {
		if err := json.Unmarshal(w.Raw, &w.Event); err != nil {
			return w, err
		}
	}
	return w, nil
}

// checkError reads an error response: the status, Content-Type
// application/json, and a body that is exactly
// {"error":{"code":...,"description":...}} with the code and a description.
func checkError(t testing.TB, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the error body: %v", err)
	}
	if resp.StatusCode != status {
		t.Errorf("status %s, want %d; body %s", resp.Status, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error *struct {
			Code        *string `json:"code"`
			Description *string `json:"description"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() {
		t.Fatalf("body %s is not {\"error\":{\"code\",\"description\"}}: %v", body, err)
	}
	if e.Error == nil || e.Error.Code == nil || e.Error.Description == nil {
		t.Fatalf("body %s lacks error, code or description", body)
	}
	if *e.Error.Code != code || *e.Error.Description == "" {
		t.Errorf("code %q description %q, want code %q and a description", *e.Error.Code, *e.Error.Description, code)
	}
}

// openStream opens an NDJSON stream and reads its start event. The stream
// lives until ctx is cancelled or its body closed.
func openStream(t testing.TB, ctx context.Context, c *http.Client, url, body string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		checkError(t, resp, 200, "")
		t.FailNow()
	}
	r := bufio.NewReader(resp.Body)
	if w := readNDJSON(t, r); w.Type != "start" {
		resp.Body.Close()
		t.Fatalf("first event %+v", w)
	}
	return resp, r
}

// readNDJSON reads one event line, which must end with \r\n.
func readNDJSON(t testing.TB, r *bufio.Reader) wireEvent {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasSuffix(l, "\r\n") {
		t.Fatalf("line %q: %v", l, err)
	}
	w, err := parseWire([]byte(l))
	if err != nil {
		t.Fatalf("%q: %v", l, err)
	}
	return w
}

// evReader reads the events of a stream response, NDJSON or SSE, and
// checks the framing of each: NDJSON lines end with \r\n; an SSE event's
// name is its type (stream_error for errors), and its id is its cursor
// (a start event followed by a snapshot has none: the broker withholds it
// until the last snapshot page, which carries it).
// SSE heartbeats are comments, which it skips; NDJSON ones it returns.
type evReader struct {
	br  *bufio.Reader // NDJSON
	sse *sseParser    // SSE
	// multiplexed: the SSE id is the stream's compound cursor, not the
	// event's own; it must be there on every event with a cursor.
	multiplexed bool
}

// next returns the next event; io.EOF when the response ended cleanly.
func (r *evReader) next() (wireEvent, error) {
	if r.sse == nil {
		l, err := r.br.ReadString('\n')
		if err == io.EOF && l != "" {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return wireEvent{}, err
		}
		if !strings.HasSuffix(l, "\r\n") {
			return wireEvent{}, fmt.Errorf("line %q does not end with CRLF", l)
		}
		return parseWire([]byte(l))
	}
	ev, err := r.sse.next()
	if err != nil {
		return wireEvent{}, err
	}
	if len(r.sse.odd) > 0 {
		return wireEvent{}, fmt.Errorf("SSE lines %q", r.sse.odd)
	}
	w, err := parseWire([]byte(ev.Data))
	if err != nil {
		return w, fmt.Errorf("SSE data %q: %v", ev.Data, err)
	}
	name := w.Type
	if name == "error" {
		name = SSEErrorEvent
	}
	if ev.Type != name {
		return w, fmt.Errorf("SSE event %q for a %s event", ev.Type, w.Type)
	}
	if r.multiplexed {
		if w.Cursor != "" && (!ev.SetID || ev.ID == "") {
			return w, fmt.Errorf("SSE event without an id for the cursor %q", w.Cursor)
		}
	} else if ev.SetID != (w.Cursor != "") || (ev.SetID && ev.ID != w.Cursor) {
		return w, fmt.Errorf("SSE id %q (set %v) for the cursor %q", ev.ID, ev.SetID, w.Cursor)
	}
	return w, nil
}

// lastEventID is what an EventSource would send as Last-Event-ID.
func (r *evReader) lastEventID() string { return r.sse.lastID }

// newEvReader reads a stream response by its Content-Type.
func newEvReader(t testing.TB, resp *http.Response) *evReader {
	t.Helper()
	switch ct := resp.Header.Get("Content-Type"); ct {
	case "application/x-ndjson":
		return &evReader{br: bufio.NewReader(resp.Body)}
	case "text/event-stream":
		return &evReader{sse: newSSEParser(resp.Body)}
	default:
		t.Fatalf("Content-Type %q", ct)
		return nil
	}
}

// sseEvent is an event as an EventSource dispatches it.
type sseEvent struct {
	ID    string // the last event ID at dispatch (it persists from event to event)
	SetID bool   // whether this event's own block had an id field
	Type  string // "message" when no event field was given
	Data  string
}

// sseParser is the event stream interpretation of the WHATWG HTML
// standard (9.2.6), written from the text and nothing else: the stream is
// decoded as UTF-8, lines end with CRLF, LF or CR, a line starting with a
// colon is a comment, a line with a colon is field:value with one leading
// space removed from the value, a line without one is a field with an
// empty value, and an empty line dispatches the event. It is strict where
// the standard is lenient: it records every field that is not event, data,
// id or retry, every retry value that is not digits, and every id that
// holds NUL, so that a test can refuse them.
type sseParser struct {
	r *bufio.Reader

	lastID   string // the last event ID buffer
	retry    int    // the reconnection time, -1 until set
	comments []string
	odd      []string // lines a strict reader refuses

	// The buffers of the event being read.
	data, typ string
	setID     bool
	pending   bool // a field has been read since the last dispatch
	started   bool // the BOM check is done
}

// line reads one line without its end; io.EOF when the stream ends
// (a last line without an end is not a line: the standard discards it).
func (p *sseParser) line() (string, error) {
	var sb strings.Builder
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			if err == io.EOF && sb.Len() > 0 {
				p.pending = true // an unterminated line: the event is cut
			}
			return "", err
		}
		switch c {
		case '\n':
			return sb.String(), nil
		case '\r':
			if n, err := p.r.Peek(1); err == nil && n[0] == '\n' {
				p.r.ReadByte()
			}
			return sb.String(), nil
		}
		sb.WriteByte(c)
	}
}

// next returns the next dispatched event. At the end of the stream it
// returns io.EOF, or io.ErrUnexpectedEOF when an event was cut short
// (the standard discards it silently; a server must never do that).
func (p *sseParser) next() (sseEvent, error) {
	for {
		raw, err := p.line()
		if err != nil {
			if err == io.EOF && p.pending {
				return sseEvent{}, io.ErrUnexpectedEOF
			}
			return sseEvent{}, err
		}
		// Decode as UTF-8, as the standard does (invalid bytes become
		// U+FFFD), and drop one BOM at the very start.
		l := decodeUTF8(raw)
		if !p.started {
			p.started = true
			l = strings.TrimPrefix(l, "\uFEFF")
		}
		if l == "" {
			ev, ok := p.dispatch()
			if ok {
				return ev, nil
			}
			continue
		}
		if l[0] == ':' {
			p.comments = append(p.comments, l[1:])
			continue
		}
		p.pending = true
		field, value := l, ""
		if i := strings.IndexByte(l, ':'); i >= 0 {
			field, value = l[:i], strings.TrimPrefix(l[i+1:], " ")
		}
		switch field {
		case "event":
			p.typ = value
		case "data":
			p.data += value + "\n"
		case "id":
			if strings.IndexByte(value, 0) >= 0 {
				p.odd = append(p.odd, l)
				break
			}
			p.lastID, p.setID = value, true
		case "retry":
			if value == "" || strings.Trim(value, "0123456789") != "" {
				p.odd = append(p.odd, l)
				break
			}
			fmt.Sscan(value, &p.retry)
		default:
			p.odd = append(p.odd, l)
		}
	}
}

// dispatch ends the event being read; ok is false when there is none to
// dispatch (no data), as the standard says.
func (p *sseParser) dispatch() (ev sseEvent, ok bool) {
	ev = sseEvent{ID: p.lastID, SetID: p.setID, Type: p.typ, Data: p.data}
	p.data, p.typ, p.setID, p.pending = "", "", false, false
	if ev.Data == "" {
		return ev, false
	}
	ev.Data = strings.TrimSuffix(ev.Data, "\n")
	if ev.Type == "" {
		ev.Type = "message"
	}
	return ev, true
}

// newSSEParser reads an event stream from r.
func newSSEParser(r io.Reader) *sseParser {
	return &sseParser{r: bufio.NewReader(r), retry: -1}
}

// decodeUTF8 decodes s as UTF-8, invalid bytes becoming U+FFFD.
func decodeUTF8(s string) string { return strings.ToValidUTF8(s, string(utf8.RuneError)) }

// ---------------------------------------------------------------------------
// Waiting.

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// watched is a list that grows while a test waits on it: add and set
// wake every waiter, which then checks its condition again.
type watched[T any] struct {
	mu    sync.Mutex
	items []T
	wake  chan struct{}
}

func (l *watched[T]) add(v ...T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, v...)
	l.notify()
}

// set replaces the list.
func (l *watched[T]) set(v []T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = v
	l.notify()
}

func (l *watched[T]) notify() {
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

func (l *watched[T]) snapshot() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}

// waitFor returns the list as soon as ok holds for it; it fails the test
// when ctx ends first.
func (l *watched[T]) waitFor(t testing.TB, ctx context.Context, what string, ok func([]T) bool) []T {
	t.Helper()
	for {
		l.mu.Lock()
		items := append([]T(nil), l.items...)
		if ok(items) {
			l.mu.Unlock()
			return items
		}
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; have %d items: %v", what, context.Cause(ctx), len(items), items)
		}
	}
}

// allowWrites lets every write through.
func allowWrites(*http.Request, *WriteRequest) error { return nil }
