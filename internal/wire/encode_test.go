package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// checkLine checks what every event line must be: one JSON object, valid
// for encoding/json, on one line (no CR or LF byte: the transports frame
// events by line), with no duplicate key in any object. It returns the
// event decoded, numbers kept as json.Number.
func checkLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if !json.Valid(line) {
		t.Fatalf("invalid JSON: %s", line)
	}
	if bytes.ContainsAny(line, "\r\n") {
		t.Fatalf("not on one line: %q", line)
	}
	checkNoDuplicateKeys(t, line)
	v, ok := decodeJSON(t, line).(map[string]any)
	if !ok {
		t.Fatalf("not an object: %s", line)
	}
	return v
}

func checkNoDuplicateKeys(t *testing.T, b []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, ok := tok.(string); ok && top != nil && top.object && top.key {
			if top.keys[k] {
				t.Fatalf("duplicate key %q in %s", k, b)
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object, a key comes next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

// keysOf returns the keys of an object, sorted.
func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func wantJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	checkLine(t, got)
	if !sameJSON(t, got, []byte(want)) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// allFields is every field an event may carry.
const allFields = subscription.FieldAction | subscription.FieldDocument | subscription.FieldPrev | subscription.FieldDiff | subscription.FieldIndex

// sameJSON reports whether two JSON texts are the same value as
// encoding/json reads them: objects compared as maps (so member order and
// duplicate keys do not matter, the last of duplicates counting), numbers
// by their text.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(decodeJSON(t, a), decodeJSON(t, b))
}

func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after %s", b)
	}
	return v
}

var (
	trickyRef = txlog.Ref{Collection: "sp\"ells\\", ID: "1\n\u2028\x00\xff"}
	// trickyRefJSON is trickyRef's ref as JSON.
	trickyRefJSON = `{"collection":"sp\"ells\\","id":"1\n\u2028\u0000\ufffd"}`
	bigTxn        = txlog.Txn(1<<63 + 12345) // beyond float64's exact integers
)

func TestAppendVersionShape(t *testing.T) {
	v := &Version{Action: "update", Ref: trickyRef, Txn: bigTxn, Cursor: "Y3Vyc29y",
		BeforeTxn: 7, Before: []byte(`{"a":1,"b":2}`), After: []byte(`{"a":2,"b":2}`), Diff: []byte(`{"a":2}`)}
	all := subscription.DefaultFields | subscription.FieldPrev | subscription.FieldDiff
	got := AppendVersion(nil, v, all)
	wantJSON(t, got, `{"type":"version","txn":9223372036854788153,"cursor":"Y3Vyc29y","event":{"action":"update",`+
		`"document":{"ref":`+trickyRefJSON+`,"ts":9223372036854788153,"data":{"a":2,"b":2}},`+
		`"diff":{"ref":`+trickyRefJSON+`,"ts":9223372036854788153,"data":{"a":2}},`+
		`"prev":{"ref":`+trickyRefJSON+`,"ts":7,"data":{"a":1,"b":2}}}}`)
	if !bytes.HasPrefix(got, []byte(`{"type":"version",`)) {
		t.Errorf("type is not first: %s", got)
	}

	// A create has prev null; a delete has a document without data.
	create := &Version{Action: "create", Ref: txlog.Ref{Collection: "c", ID: "1"}, Txn: 5, Cursor: "x",
		After: []byte(`{"a":1}`), Diff: []byte(`{"a":1}`)}
	wantJSON(t, AppendVersion(nil, create, all), `{"type":"version","txn":5,"cursor":"x","event":{"action":"create",`+
		`"document":{"ref":{"collection":"c","id":"1"},"ts":5,"data":{"a":1}},`+
		`"diff":{"ref":{"collection":"c","id":"1"},"ts":5,"data":{"a":1}},"prev":null}}`)
	del := &Version{Action: "delete", Ref: txlog.Ref{Collection: "c", ID: "1"}, Txn: 6, Cursor: "x",
		BeforeTxn: 5, Before: []byte(`{"a":1}`)}
	wantJSON(t, AppendVersion(nil, del, subscription.DefaultFields|subscription.FieldPrev), `{"type":"version","txn":6,"cursor":"x","event":{"action":"delete",`+
		`"document":{"ref":{"collection":"c","id":"1"},"ts":6},`+
		`"prev":{"ref":{"collection":"c","id":"1"},"ts":5,"data":{"a":1}}}}`)
}

// TestAppendVersionFields: the event object holds exactly the fields
// asked for (index is not a field of version events), for every field set.
func TestAppendVersionFields(t *testing.T) {
	v := &Version{Action: "update", Ref: txlog.Ref{Collection: "c", ID: "1"}, Txn: 2, Cursor: "x",
		BeforeTxn: 1, Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`), Diff: []byte(`{"a":2}`)}
	for f := subscription.Fields(0); f <= allFields; f++ {
		dst := []byte("prefix")
		out := AppendVersion(dst, v, f)
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatalf("%v: did not append: %s", f, out)
		}
		ev := checkLine(t, out[len("prefix"):])
		want := wantKeys(f &^ subscription.FieldIndex)
		if got := keysOf(ev["event"]); !slices.Equal(got, want) {
			t.Errorf("fields %q: event keys %v, want %v", f, got, want)
		}
	}
}

func TestAppendSetShape(t *testing.T) {
	fire, _ := canonical.Parse([]byte(`"fire"`))
	three, _ := canonical.Parse([]byte(`3`))
	c := &SetChange{Action: "add", Ref: trickyRef, Txn: 10, Cursor: "abc_-", Data: []byte(`{"element":"fire"}`),
		Terms: canonical.TupleOf(fire), Values: canonical.TupleOf(three, fire)}
	wantJSON(t, AppendSet(nil, c, subscription.DefaultFields|subscription.FieldIndex, false), `{"type":"set","txn":10,"cursor":"abc_-","event":{"action":"add",`+
		`"document":{"ref":`+trickyRefJSON+`,"ts":10},"index":{"terms":["fire"],"values":[3,"fire"]}}}`)
	wantJSON(t, AppendSet(nil, c, subscription.DefaultFields, true), `{"type":"set","txn":10,"cursor":"abc_-","event":{"action":"add",`+
		`"document":{"ref":`+trickyRefJSON+`,"ts":10,"data":{"element":"fire"}}}}`)
	// A collection set's entry has empty terms and values.
	c2 := &SetChange{Action: "remove", Ref: txlog.Ref{Collection: "c", ID: "2"}, Txn: 11, Cursor: "x"}
	wantJSON(t, AppendSet(nil, c2, subscription.FieldIndex, true), `{"type":"set","txn":11,"cursor":"x","event":{"index":{"terms":[],"values":[]}}}`)

	for f := subscription.Fields(0); f <= allFields; f++ {
		for _, withData := range []bool{false, true} {
			ev := checkLine(t, AppendSet(nil, c, f, withData))
			want := wantKeys(f &^ (subscription.FieldPrev | subscription.FieldDiff))
			if got := keysOf(ev["event"]); !slices.Equal(got, want) {
				t.Errorf("fields %q: event keys %v, want %v", f, got, want)
			}
			if f&subscription.FieldDocument != 0 {
				doc := ev["event"].(map[string]any)["document"]
				wantDoc := []string{"ref", "ts"}
				if withData {
					wantDoc = []string{"data", "ref", "ts"}
				}
				if got := keysOf(doc); !slices.Equal(got, wantDoc) {
					t.Errorf("fields %q, data %v: document keys %v, want %v", f, withData, got, wantDoc)
				}
			}
		}
	}
}

// wantKeys returns the names of the fields f, sorted: the keys an event
// with them has.
func wantKeys(f subscription.Fields) []string {
	if f == 0 {
		return nil
	}
	ks := strings.Split(f.String(), ",")
	slices.Sort(ks)
	return ks
}

func TestAppendSnapshotShape(t *testing.T) {
	fire, _ := canonical.Parse([]byte(`"fire"`))
	ms := []Member{
		{Ref: txlog.Ref{Collection: "c", ID: "1"}, TS: 3, Data: []byte(`{"e":"fire"}`), Terms: canonical.TupleOf(fire), Values: canonical.TupleOf()},
		{Ref: trickyRef, TS: 4, Data: []byte(`{}`), Terms: canonical.TupleOf(fire), Values: canonical.TupleOf(fire)},
	}
	// The document is always there, even when the fields leave it out.
	wantJSON(t, AppendSnapshot(nil, 9, "", ms, subscription.FieldIndex, true, false), `{"type":"snapshot","txn":9,"event":{"data":[`+
		`{"document":{"ref":{"collection":"c","id":"1"},"ts":3,"data":{"e":"fire"}},"index":{"terms":["fire"],"values":[]}},`+
		`{"document":{"ref":`+trickyRefJSON+`,"ts":4,"data":{}},"index":{"terms":["fire"],"values":["fire"]}}],"last":false}}`)
	wantJSON(t, AppendSnapshot(nil, 9, "C", ms[:1], subscription.FieldAction, false, true), `{"type":"snapshot","txn":9,"cursor":"C","event":{"data":[`+
		`{"document":{"ref":{"collection":"c","id":"1"},"ts":3}}],"last":true}}`)
	wantJSON(t, AppendSnapshot(nil, 9, "", nil, subscription.DefaultFields, false, true), `{"type":"snapshot","txn":9,"event":{"data":[],"last":true}}`)
}

func TestAppendStartStatusErrorRewrite(t *testing.T) {
	wantJSON(t, AppendStart(nil, 1700000000000000, "Y3Vy"), `{"type":"start","txn":1700000000000000,"cursor":"Y3Vy","event":1700000000000000}`)
	wantJSON(t, AppendStart(nil, 0, ""), `{"type":"start","txn":0,"event":0}`)
	wantJSON(t, AppendStatus(nil, bigTxn), `{"type":"status","txn":9223372036854788153}`)
	wantJSON(t, AppendError(nil, 5, subscription.CodeHistoryUnavailable, "gone \"now\"\n\u2029", "Y3Vy"),
		`{"type":"error","txn":5,"event":{"code":"history_unavailable","description":"gone \"now\"\n\u2029","cursor":"Y3Vy"}}`)
	wantJSON(t, AppendError(nil, 5, subscription.CodeShuttingDown, "bye", ""), `{"type":"error","txn":5,"event":{"code":"shutting_down","description":"bye"}}`)
	wantJSON(t, AppendHistoryRewrite(nil, 8, "Y3Vy", "insert", trickyRef, 3, []byte(`{"a":1}`), subscription.DefaultFields),
		`{"type":"history_rewrite","txn":8,"cursor":"Y3Vy","event":{"action":"insert","document":{"ref":`+trickyRefJSON+`,"ts":3,"data":{"a":1}}}}`)
	wantJSON(t, AppendHistoryRewrite(nil, 8, "Y3Vy", "remove", trickyRef, 3, nil, subscription.DefaultFields|subscription.FieldDiff|subscription.FieldPrev),
		`{"type":"history_rewrite","txn":8,"cursor":"Y3Vy","event":{"action":"remove","document":{"ref":`+trickyRefJSON+`,"ts":3}}}`)
	wantJSON(t, AppendHistoryRewrite(nil, 8, "Y3Vy", "remove", trickyRef, 3, nil, subscription.FieldAction),
		`{"type":"history_rewrite","txn":8,"cursor":"Y3Vy","event":{"action":"remove"}}`)
}

// Encoding with a Memo gives the very bytes of encoding without one,
// whatever it remembers from the events before.
func TestMemoSameBytes(t *testing.T) {
	txns := []txlog.Txn{0, 1, 9999, 10000, 10001, 1700000000000000, 1700000000000001, 1700000000009999,
		1700000000010000, 1700000000000001, 99999, 100000, ^txlog.Txn(0), ^txlog.Txn(0) - 1, 12345678}
	refs := []txlog.Ref{{Collection: "spells", ID: "1"}, trickyRef, {Collection: "spells", ID: "2"}, {Collection: "spells", ID: "1"}}
	var m Memo
	for i, txn := range txns {
		for j := range 3 {
			ref := refs[(i+j)%len(refs)]
			before := txns[(i+j+1)%len(txns)]
			f := subscription.Fields(i+j) & allFields
			v := Version{Action: "update", Ref: ref, Txn: txn, Cursor: "abc", BeforeTxn: before,
				Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`), Diff: []byte(`{"a":2}`)}
			want := AppendVersion(nil, &v, f)
			v.Memo = &m
			if got := AppendVersion(nil, &v, f); !bytes.Equal(got, want) {
				t.Fatalf("version %d: %s\nwant %s", txn, got, want)
			}
			c := SetChange{Action: "update", Ref: ref, Txn: txn, Cursor: "abc", Data: []byte(`{"a":2}`), Diff: []byte(`{"a":2}`)}
			want = AppendSet(nil, &c, f, j == 1)
			c.Memo = &m
			if got := AppendSet(nil, &c, f, j == 1); !bytes.Equal(got, want) {
				t.Fatalf("set %d: %s\nwant %s", txn, got, want)
			}
		}
	}
}
