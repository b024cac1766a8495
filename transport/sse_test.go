package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// parseSSE parses a whole stream.
func parseSSE(b []byte) (*sseParser, []sseEvent, error) {
	p := newSSEParser(bytes.NewReader(b))
	var evs []sseEvent
	for {
		ev, err := p.next()
		if err == io.EOF {
			return p, evs, nil
		}
		if err != nil {
			return p, evs, err
		}
		evs = append(evs, ev)
	}
}

func TestSSEParserFollowsTheStandard(t *testing.T) {
	// The standard's own examples, and its line ends.
	p, evs, err := parseSSE([]byte("data: YHOO\ndata: +2\ndata: 10\n\n: c\r\nid: 1\r\nevent: x\rdata:y\r\rdata\n\ndata: cut"))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut event: %v", err)
	}
	want := []sseEvent{
		{Type: "message", Data: "YHOO\n+2\n10"},
		{ID: "1", SetID: true, Type: "x", Data: "y"},
		{ID: "1", Type: "message", Data: ""},
	}
	if fmt.Sprint(evs) != fmt.Sprint(want) || len(p.comments) != 1 || len(p.odd) != 0 {
		t.Fatalf("got %+v comments %q odd %q", evs, p.comments, p.odd)
	}
	if _, evs, _ := parseSSE([]byte("event: x\n\n")); len(evs) != 0 {
		t.Fatalf("an event without data is not dispatched: %+v", evs)
	}
	if p, _, _ := parseSSE([]byte("retry: 12x\nfoo: 1\n\n")); len(p.odd) != 2 || p.retry != -1 {
		t.Fatalf("odd %q retry %d", p.odd, p.retry)
	}
}

// checkSSEFrame frames e as the SSE handler does and parses the result
// with the strict parser: it must be exactly one event (none for a
// status event, which is a comment), with e's cursor as its id, its type
// as its name, and its JSON as its data (CR and LF written as spaces, so
// that valid JSON stays the same JSON), and nothing else.
func checkSSEFrame(t *testing.T, e *subscription.Event) {
	t.Helper()
	const prevID = "previous-id"
	// Another event first, so that an event without a cursor can be seen
	// to keep the previous id, as EventSource does.
	prev := "id: " + prevID + "\nevent: start\ndata: {}\n\n"
	out := frameOne(sse{retry: DefaultRetry}, nil, e)
	p, evs, err := parseSSE(append([]byte(prev), out...))
	if err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if len(p.odd) != 0 {
		t.Fatalf("%q: refused lines %q", out, p.odd)
	}
	if e.Type == subscription.TypeStatus {
		if len(evs) != 1 || len(p.comments) != 1 {
			t.Fatalf("a status event must be one comment and no event: %q gives %+v", out, evs)
		}
		return
	}
	if len(evs) != 2 {
		t.Fatalf("%q gives %d events, want 1: %+v", out, len(evs)-1, evs[1:])
	}
	if len(p.comments) != 0 {
		t.Fatalf("%q: comments %q", out, p.comments)
	}
	ev := evs[1]
	wantID, setID := prevID, false
	if e.HasCursor() {
		wantID, setID = e.Cursor.String(), true
	}
	if ev.ID != wantID || ev.SetID != setID {
		t.Fatalf("%q: id %q (set %v), want %q (set %v)", out, ev.ID, ev.SetID, wantID, setID)
	}
	wantType := e.Type.String()
	if e.Type == subscription.TypeError {
		wantType = SSEErrorEvent
	}
	if ev.Type != wantType {
		t.Fatalf("%q: event %q, want %q", out, ev.Type, wantType)
	}
	line := strings.NewReplacer("\r", " ", "\n", " ").Replace(string(e.JSON))
	if want := decodeUTF8(line); ev.Data != want {
		t.Fatalf("%q: data %q, want %q", out, ev.Data, want)
	}
	if json.Valid(e.JSON) {
		// CR and LF are whitespace between tokens in valid JSON: written
		// as spaces, it is the same JSON.
		var a, b bytes.Buffer
		if err := json.Compact(&a, e.JSON); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&b, []byte(line)); err != nil || a.String() != b.String() {
			t.Fatalf("%q: the JSON changed: %q, want %q (%v)", out, b.String(), a.String(), err)
		}
	}
}

func TestSSEEventFraming(t *testing.T) {
	log := txlog.NewID()
	cur := txlog.Cursor{Log: log, Pos: txlog.Pos{Txn: 1700000000000001, Op: 3}, Seq: 2}
	cursors := []txlog.Cursor{
		{}, // none: snapshot pages and status events
		cur,
		{Log: log, Pos: txlog.AfterTxn(1)},
		{Log: txlog.ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			Pos: txlog.Pos{Txn: ^txlog.Txn(0), Op: ^uint32(0)}, Seq: ^uint32(0)},
		{Log: txlog.ID{1}},
	}
	jsons := []string{
		`{"type":"version","txn":1,"event":{"action":"update"}}`,
		"{\"a\":\r1}",
		"{\"a\":\n1}",
		"{\"a\":\r\n1}",
		"{\r\n\"a\"\r:\n\n1\r\r}\n",
		"\r\n",
		"\n\n\n",
		"\r\r",
		"\rdata: injected\r",
		"\nid: forged\n\nevent: forged\ndata: x\n\n",
		"\r\nretry: 1\r\n",
		"\n: comment\n",
		`{"s":"line\r\nbreak \u2028 \u0085 escaped"}`,
		"{\"s\":\"\xff\xfe invalid utf-8\"}",
		"",
		"\uFEFF{}",
		"data:",
		":",
	}
	types := []subscription.Type{subscription.TypeStart, subscription.TypeSnapshot, subscription.TypeVersion,
		subscription.TypeSet, subscription.TypeHistoryRewrite, subscription.TypeStatus, subscription.TypeError}
	for _, typ := range types {
		for _, c := range cursors {
			for _, j := range jsons {
				e := &subscription.Event{Type: typ, Txn: c.Pos.Txn, Cursor: c, JSON: []byte(j)}
				checkSSEFrame(t, e)
			}
		}
	}

	// The preamble sets the retry time within the first event's block, and
	// dispatches nothing of its own.
	f := sse{retry: 1500 * 1e6}
	start := &subscription.Event{Type: subscription.TypeStart, Txn: 1, JSON: []byte(`{"type":"start","txn":1,"event":1}`)}
	p, evs, err := parseSSE(frameOne(f, f.preamble(nil), start))
	if err != nil || len(evs) != 1 || evs[0].Type != "start" || p.retry != 1500 || len(p.odd) != 0 {
		t.Fatalf("preamble: %v %+v retry %d odd %q", err, evs, p.retry, p.odd)
	}
}

// The events the broker encodes, with strings full of line ends, keep their
// exact JSON through the framer.
func TestSSEEventFramingOfEncodedEvents(t *testing.T) {
	c := txlog.Cursor{Log: txlog.NewID(), Pos: txlog.Pos{Txn: 7, Op: 0}}
	desc := "line\rone\nline\r\ntwo\n\nid: x\r\n"
	e := errorEvent(7, CodeStreamLifetime, desc, c.String())
	checkSSEFrame(t, e)
	_, evs, _ := parseSSE(frameOne(sse{}, nil, e))
	w, err := parseWire([]byte(evs[0].Data))
	if err != nil || w.Event.Code != CodeStreamLifetime || w.Event.Cursor != c.String() {
		t.Fatalf("%+v %v", w, err)
	}
	var body struct {
		Event struct{ Description string } `json:"event"`
	}
	if err := json.Unmarshal([]byte(evs[0].Data), &body); err != nil || body.Event.Description != desc {
		t.Fatalf("description %q, want %q (%v)", body.Event.Description, desc, err)
	}
}

func FuzzSSEEvent(f *testing.F) {
	f.Add(uint8(subscription.TypeVersion), uint64(5), []byte{1, 2, 3}, uint32(0), uint32(0), []byte("{\"a\":\r\n1}"))
	f.Add(uint8(subscription.TypeStatus), uint64(5), []byte{}, uint32(0), uint32(0), []byte("{\"type\":\"status\"}\n\ndata: x"))
	f.Add(uint8(subscription.TypeError), uint64(1), []byte{9}, ^uint32(0), uint32(1), []byte("\rid: x\revent: y\r"))
	f.Add(uint8(0), uint64(0), []byte{}, uint32(0), uint32(0), []byte(""))
	f.Add(uint8(200), uint64(1<<63), []byte{0xff}, uint32(7), uint32(7), []byte("\xff\r\n\xfe"))
	f.Fuzz(func(t *testing.T, typ uint8, txn uint64, log []byte, op, seq uint32, data []byte) {
		var c txlog.Cursor
		copy(c.Log[:], log)
		c.Pos = txlog.Pos{Txn: txlog.Txn(txn), Op: op}
		c.Seq = seq
		checkSSEFrame(t, &subscription.Event{Type: subscription.Type(typ), Txn: txlog.Txn(txn), Cursor: c, JSON: data})
	})
}

// frameOne frames e as the only subscription of a stream does.
func frameOne(f framer, dst []byte, e *subscription.Event) []byte {
	return f.frame(dst, e, nil, e.CursorString())
}
