package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

const spellRef = `{"@ref":{"id":"1","collection":{"@ref":{"id":"spells","collection":{"@ref":{"id":"collections"}}}}}}`

func faunaOf(t *testing.T, native []byte, collection string) string {
	t.Helper()
	out, err := AppendFaunaV4(nil, native, collection)
	if err != nil {
		t.Fatalf("%s: %v", native, err)
	}
	checkLine(t, out)
	return string(out)
}

// TestFaunaV4Events: each event type in Fauna's v4 shape, refs tagged,
// cursors left out, every field kept in order.
func TestFaunaV4Events(t *testing.T) {
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	all := subscription.FieldAction | subscription.FieldDocument | subscription.FieldDiff | subscription.FieldPrev
	for _, c := range []struct {
		name, collection string
		native           []byte
		want             string
	}{
		{"start", "", AppendStart(nil, 7, "cur"), `{"type":"start","txn":7,"event":7}`},
		{"status", "", AppendStatus(nil, 9), `{"type":"status","txn":9}`},
		{"error", "", AppendError(nil, 9, "shutting_down", "closing", "cur"),
			`{"type":"error","txn":9,"event":{"code":"shutting_down","description":"closing"}}`},
		{"update", "", AppendVersion(nil, &Version{Action: "update", Ref: ref, Txn: 20, Cursor: "c", BeforeTxn: 10,
			Before: []byte(`{"a":1}`), After: []byte(`{"a":2,"o":{"@x":[{"@y":1}]}}`), Diff: []byte(`{"a":2}`)}, all),
			`{"type":"version","txn":20,"event":{"action":"update",` +
				`"document":{"ref":` + spellRef + `,"ts":20,"data":{"a":2,"o":{"@obj":{"@x":[{"@obj":{"@y":1}}]}}}},` +
				`"diff":{"ref":` + spellRef + `,"ts":20,"data":{"a":2}},` +
				`"prev":{"ref":` + spellRef + `,"ts":10,"data":{"a":1}}}}`},
		{"create", "", AppendVersion(nil, &Version{Action: "create", Ref: ref, Txn: 20, After: []byte(`{}`)}, subscription.FieldAction|subscription.FieldPrev),
			`{"type":"version","txn":20,"event":{"action":"create","prev":null}}`},
		{"delete", "", AppendVersion(nil, &Version{Action: "delete", Ref: ref, Txn: 30, BeforeTxn: 20, Before: []byte(`{}`)}, subscription.DefaultFields),
			`{"type":"version","txn":30,"event":{"action":"delete","document":{"ref":` + spellRef + `,"ts":30}}}`},
		{"set", "", AppendSet(nil, &SetChange{Action: "add", Ref: ref, Txn: 5, Terms: tuple(t, `"fire"`), Values: tuple(t)},
			subscription.DefaultFields|subscription.FieldIndex, false),
			`{"type":"set","txn":5,"event":{"action":"add","document":{"ref":` + spellRef + `,"ts":5},"index":{"terms":["fire"],"values":[]}}}`},
		{"documents", "spells", AppendSet(nil, &SetChange{Action: "remove", Ref: ref, Txn: 5},
			subscription.DefaultFields|subscription.FieldIndex, false),
			`{"type":"set","txn":5,"event":{"action":"remove","document":{"ref":` + spellRef + `,"ts":5},` +
				`"index":{"terms":[{"@ref":{"id":"spells","collection":{"@ref":{"id":"collections"}}}}],"values":[]}}}`},
		{"history_rewrite", "", AppendHistoryRewrite(nil, 40, "c", "insert", ref, 15, []byte(`{"a":0}`), subscription.DefaultFields),
			`{"type":"history_rewrite","txn":40,"event":{"action":"insert","document":{"ref":` + spellRef + `,"ts":15,"data":{"a":0}}}}`},
	} {
		if got := faunaOf(t, c.native, c.collection); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	if _, err := AppendFaunaV4(nil, AppendSnapshot(nil, 1, "", nil, subscription.DefaultFields, false, true), ""); !errors.Is(err, ErrNoFaunaForm) {
		t.Errorf("a snapshot page has a Fauna form")
	}
}

func tuple(t *testing.T, vals ...string) canonical.Tuple {
	t.Helper()
	var encs []string
	for _, v := range vals {
		enc, err := canonical.Parse([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		encs = append(encs, enc)
	}
	return canonical.TupleOf(encs...)
}

// TestFaunaLinesShared: the subscribers of one event get the same bytes;
// another field set or stream kind gets its own; the cache is bounded.
func TestFaunaLinesShared(t *testing.T) {
	var c FaunaLines
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	native := AppendSet(nil, &SetChange{Action: "add", Ref: ref, Txn: 5}, subscription.DefaultFields|subscription.FieldIndex, false)
	a, err := c.Line(native, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Line(native, "")
	if &a[0] != &b[0] {
		t.Fatal("two subscribers of one event got two encodings")
	}
	if want := faunaOf(t, native, "") + "\r\n"; string(a) != want {
		t.Fatalf("got %q, want %q", a, want)
	}
	d, _ := c.Line(native, "spells")
	if &d[0] == &a[0] || string(d) == string(a) {
		t.Fatal("a Documents stream got the line of a Match stream")
	}
	same := append([]byte(nil), native...)
	e, _ := c.Line(same, "")
	if &e[0] == &a[0] || string(e) != string(a) {
		t.Fatal("equal bytes of another event")
	}
	for i := range 2 * DefaultFaunaLines {
		n := AppendSet(nil, &SetChange{Action: "add", Ref: ref, Txn: txlog.Txn(i)}, subscription.DefaultFields, false)
		if _, err := c.Line(n, ""); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != DefaultFaunaLines {
		t.Fatalf("kept %d events", c.Len())
	}
}

// unwrapObj undoes the @obj escaping, as a driver does.
func unwrapObj(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if inner, ok := x["@obj"]; ok && len(x) == 1 {
			m := inner.(map[string]any)
			for k, e := range m {
				m[k] = unwrapObj(e)
			}
			return m
		}
		for k, e := range x {
			x[k] = unwrapObj(e)
		}
	case []any:
		for i, e := range x {
			x[i] = unwrapObj(e)
		}
	}
	return v
}

// TestFaunaValueEscaping: every object with a key starting with "@" is
// wrapped, nothing else changes, and unwrapping gives the value back.
func TestFaunaValueEscaping(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"email":"a@b","n":[1,"@x"]}`, `{"email":"a@b","n":[1,"@x"]}`},
		{`{"@ref":"x"}`, `{"@obj":{"@ref":"x"}}`},
		{`{"a":{"b":[{"@ts":1,"c":{"@obj":2}}]},"@":null}`, `{"@obj":{"a":{"b":[{"@obj":{"@ts":1,"c":{"@obj":{"@obj":2}}}}]},"@":null}}`},
		{`[{"x@":1}]`, `[{"x@":1}]`},
		{`"@str"`, `"@str"`},
	} {
		got, err := AppendFaunaValue(nil, []byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("%s: got %s (%v), want %s", c.in, got, err, c.want)
			continue
		}
		var in, out any
		json.Unmarshal([]byte(c.in), &in)
		json.Unmarshal(got, &out)
		if !reflect.DeepEqual(unwrapObj(out), in) {
			t.Errorf("%s: unwrapped %v", c.in, out)
		}
	}
}
