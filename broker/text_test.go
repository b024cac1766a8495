package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Guarantees 9 and 10 (broker package doc): a write whose data holds a
// string that is not valid UTF-8 (in a value, a key, at any depth, in a
// merge patch), or whose ref is not, is refused on every write path with
// a *WriteError wrapping ErrInvalidJSON or ErrInvalidRef, and leaves
// nothing: the documents, the head and the subscribers see no change.
func TestWritesRefuseInvalidUTF8(t *testing.T) {
	b := spellsBroker(t)
	ctx := context.Background()
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("1"), []byte(`{"element":"fire"}`)) })
	head := b.Head()
	before, _ := b.Get(spell("1"))
	s := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Updates: true})
	doc := mustSubscribe(t, b, subscription.Document(spell("1")), subscription.Options{})

	bad := map[string]string{
		"value":             "{\"element\":\"\xff\xfe\"}",
		"key":               "{\"\xff\":1}",
		"nested value":      "{\"a\":{\"b\":[1,{\"c\":\"x\xc3\"}]}}",
		"nested key":        "{\"a\":[{\"\xe2\x80\":1}]}",
		"encoded surrogate": "{\"a\":\"\xed\xa0\x80\"}",
		"lone surrogate":    `{"element":"\ud800"}`,
		"reversed pair":     `{"a":{"b":"\udc00\ud800"}}`,
	}
	writes := map[string]func(tx *Tx, data []byte) error{
		"create":  func(tx *Tx, data []byte) error { return tx.Create(spell("2"), data) },
		"replace": func(tx *Tx, data []byte) error { return tx.Replace(spell("1"), data) },
		"update":  func(tx *Tx, data []byte) error { return tx.Update(spell("1"), data) },
		"upsert":  func(tx *Tx, data []byte) error { return tx.Upsert(spell("1"), data) },
	}
	check := func(name string, err, want error) {
		t.Helper()
		var we *WriteError
		if !errors.Is(err, want) || !errors.As(err, &we) {
			t.Errorf("%s: %v, want a *WriteError wrapping %v", name, err, want)
		}
	}
	for what, data := range bad {
		for op, write := range writes {
			_, err := b.Commit(ctx, func(tx *Tx) error { return write(tx, []byte(data)) })
			check(op+" with invalid UTF-8 in a "+what, err, ErrInvalidJSON)
		}
		_, err := b.RewriteHistory(ctx, spell("1"), 1, []byte(data))
		check("rewrite with invalid UTF-8 in a "+what, err, ErrInvalidJSON)
	}
	for what, ref := range map[string]txlog.Ref{
		"id":                {Collection: "spells", ID: "1\xff"},
		"truncated id":      {Collection: "spells", ID: "\xe2\x80"},
		"collection":        {Collection: "spells\xff", ID: "1"},
		"id and collection": {Collection: "\xfe", ID: "\xff"},
		"empty id":          {Collection: "spells", ID: ""},
	} {
		for op, write := range map[string]func(tx *Tx) error{
			"create":  func(tx *Tx) error { return tx.Create(ref, []byte(`{}`)) },
			"replace": func(tx *Tx) error { return tx.Replace(ref, []byte(`{}`)) },
			"update":  func(tx *Tx) error { return tx.Update(ref, []byte(`{}`)) },
			"upsert":  func(tx *Tx) error { return tx.Upsert(ref, []byte(`{}`)) },
			"delete":  func(tx *Tx) error { return tx.Delete(ref) },
		} {
			_, err := b.Commit(ctx, write)
			check(op+" with an invalid "+what, err, ErrInvalidRef)
		}
		_, err := b.RewriteHistory(ctx, ref, 1, []byte(`{}`))
		check("rewrite with an invalid "+what, err, ErrInvalidRef)
		if _, err := b.Subscribe(ctx, subscription.Document(ref), subscription.Options{}); !errors.Is(err, ErrInvalidRef) || !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("a document stream with an invalid %s: %v", what, err)
		}
		if _, err := b.ReadPage(ctx, subscription.Document(ref), subscription.Options{}, 1, false); !errors.Is(err, ErrInvalidRef) {
			t.Errorf("a document page with an invalid %s: %v", what, err)
		}
	}
	// A refused write among good ones takes them all back.
	_, err := b.Commit(ctx, func(tx *Tx) error {
		if err := tx.Create(spell("3"), []byte(`{"element":"air"}`)); err != nil {
			return err
		}
		return tx.Update(spell("1"), []byte("{\"element\":\"\xff\"}"))
	})
	check("a transaction ending in invalid UTF-8", err, ErrInvalidJSON)

	if b.Head() != head {
		t.Fatalf("head moved from %d to %d: a refused write committed", head, b.Head())
	}
	if after, _ := b.Get(spell("1")); !bytes.Equal(after.Data, before.Data) || after.TS != before.TS {
		t.Fatalf("spells/1 changed from %s to %s", before.Data, after.Data)
	}
	for _, id := range []string{"2", "3", "1\xff", "1\ufffd"} {
		if d, ok := b.Get(spell(id)); ok {
			t.Fatalf("spells/%q was written: %s", id, d.Data)
		}
	}
	// Nothing was published: after the start, the next event is the next
	// real commit.
	txn := mustCommit(t, b, func(tx *Tx) error { return tx.Update(spell("1"), []byte(`{"element":"water"}`)) })
	for _, sub := range []*Subscription{s, doc} {
		if evs := take(t, sub, 2); evs[1].Txn != txn {
			t.Fatalf("after the refused writes: %s", evs[1].JSON)
		}
	}
}

// An update merges its patch into the stored document, whose other fields
// it keeps as they are: from a log written before data was read strictly,
// they may hold invalid UTF-8 (then the merged result is refused, and the
// document stays as it was) or raw line separators (then the merged result
// has them escaped).
func TestUpdateChecksTheMergedResult(t *testing.T) {
	dir := t.TempDir()
	schema := index.Schema{Collections: []string{"spells"}}
	l, err := txlog.OpenFile(dir, txlog.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poisoned := []byte("{\"name\":\"\xff\",\"element\":\"fire\"}")
	raw := []byte("{\"name\":\"a\u2028b\",\"element\":\"fire\"}")
	txn, err := l.Stage([]txlog.Write{
		{Ref: spell("poisoned"), Action: txlog.ActionCreate, After: poisoned},
		{Ref: spell("raw"), Action: txlog.ActionCreate, After: raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(txn); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = txlog.OpenFile(dir, txlog.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Log: l, Schema: schema, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	_, err = b.Commit(context.Background(), func(tx *Tx) error {
		return tx.Update(spell("poisoned"), []byte(`{"element":"water"}`))
	})
	var we *WriteError
	if !errors.Is(err, ErrInvalidJSON) || !errors.As(err, &we) {
		t.Fatalf("an update keeping invalid UTF-8: %v, want ErrInvalidJSON", err)
	}
	if d, _ := b.Get(spell("poisoned")); !bytes.Equal(d.Data, poisoned) || b.Head() != txn {
		t.Fatalf("the refused update changed spells/poisoned to %q (head %d)", d.Data, b.Head())
	}
	mustCommit(t, b, func(tx *Tx) error { return tx.Update(spell("raw"), []byte(`{"element":"water"}`)) })
	d, _ := b.Get(spell("raw"))
	if want := `{"name":"a\u2028b","element":"water"}`; string(d.Data) != want {
		t.Fatalf("after the update: %s, want %s", d.Data, want)
	}
}

// lineBreakers are what a client splitting lines by Unicode's rules
// (Python's str.splitlines, some JS) takes for a line end, besides CR and
// LF.
const lineBreakers = "\u2028\u2029\u0085"

// checkOneLine fails the test unless js is valid JSON in valid UTF-8 with
// no raw CR, LF, U+2028, U+2029 or U+0085.
func checkOneLine(t *testing.T, js []byte) {
	t.Helper()
	if !utf8.Valid(js) || !json.Valid(js) || bytes.ContainsAny(js, "\r\n"+lineBreakers) {
		t.Fatalf("not one line of JSON by every client's rules: %q", js)
	}
}

// Guarantee 10 (broker package doc): a document whose keys and values hold
// raw U+2028, U+2029 and U+0085 (or their escapes) is stored with them
// escaped, and every event that carries it (document, prev, diff, index
// terms and values, snapshot pages, replays from the log) has none of them
// raw, and decodes to the strings written.
func TestLineSeparatorsAreEscaped(t *testing.T) {
	b, err := New(Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{{Name: "spells_by_element", Collection: "spells",
			Terms: []string{"element"}, Values: []string{"name\u0085"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	const element = "f\u2028i\u2029r\u0085e"
	// Raw, and escaped in JSON text: both decode to the same strings.
	created := "{\"element\":\"" + element + "\",\"name\u0085\":\"a\u2028\",\"n\u2029\":{\"\u2028\":[\"\u0085\",\"\\u2028\\u2029\\u0085\"]}}"
	patch := `{"name\u0085":"b\u2029","n\u2029":{"\u2028":null,"k\u0085":"\u2028"}}`

	fire, _ := subscription.Match("spells_by_element", element)
	all := subscription.FieldAction | subscription.FieldDocument | subscription.FieldPrev | subscription.FieldDiff | subscription.FieldIndex
	set := mustSubscribe(t, b, fire, subscription.Options{Fields: all, Updates: true, Data: true})
	// With a cursor, a document stream on a missing document is no 404.
	doc := mustSubscribe(t, b, subscription.Document(spell("1")), subscription.Options{Fields: all, Cursor: set.StartCursor().String()})
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("1"), []byte(created)) })
	mustCommit(t, b, func(tx *Tx) error { return tx.Update(spell("1"), []byte(patch)) })
	mustCommit(t, b, func(tx *Tx) error { return tx.Upsert(spell("2"), []byte(created)) })
	if _, err := b.RewriteHistory(ctx, spell("1"), 1, []byte(created)); err != nil {
		t.Fatal(err)
	}

	var decode = func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	wantCreated := decode(created)
	wantUpdated := decode("{\"element\":\"" + element + "\",\"name\u0085\":\"b\u2029\",\"n\u2029\":{\"k\u0085\":\"\u2028\"}}")
	for _, ref := range []txlog.Ref{spell("1"), spell("2")} {
		d, _ := b.Get(ref)
		checkOneLine(t, d.Data)
		want := wantCreated
		if ref.ID == "1" {
			want = wantUpdated
		}
		if got := decode(string(d.Data)); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: stored %s, want %v", ref, d.Data, want)
		}
	}

	// Every event, live, replayed from the log, and in snapshots.
	var evs []subscription.Event
	// The update changes the index entry's values: remove, then add.
	evs = append(evs, take(t, set, 5)...) // start, add, remove, add, add
	evs = append(evs, take(t, doc, 4)...) // start, create, update, history_rewrite
	replay := mustSubscribe(t, b, fire, subscription.Options{Fields: all, Updates: true, Data: true, Cursor: evs[0].CursorString()})
	evs = append(evs, take(t, replay, 5)...)
	replayDoc := mustSubscribe(t, b, subscription.Document(spell("1")), subscription.Options{Fields: all, Cursor: evs[5].CursorString()})
	evs = append(evs, take(t, replayDoc, 4)...)
	snap := mustSubscribe(t, b, fire, subscription.Options{Fields: all, Data: true, Snapshot: true})
	evs = append(evs, take(t, snap, 2)...)
	snapDoc := mustSubscribe(t, b, subscription.Document(spell("1")), subscription.Options{Fields: all, Snapshot: true})
	evs = append(evs, take(t, snapDoc, 2)...)
	page, err := b.ReadPage(ctx, fire, subscription.Options{Fields: all, Updates: true, Data: true, Cursor: evs[0].CursorString()}, 10, false)
	if err != nil || len(page.Events) != 4 {
		t.Fatalf("ReadPage: %d events, %v", len(page.Events), err)
	}
	evs = append(evs, page.Events...)

	seen := map[string]bool{}
	for _, e := range evs {
		checkOneLine(t, e.JSON)
		// Every string in the event is one written: the element (as data
		// and as an index term), or a key or value of the two versions.
		var v any
		if err := json.Unmarshal(e.JSON, &v); err != nil {
			t.Fatal(err)
		}
		walkStrings(v, func(s string) {
			if s == element {
				seen[e.Type.String()] = true
			}
		})
	}
	for _, typ := range []string{"version", "set", "snapshot", "history_rewrite"} {
		if !seen[typ] {
			t.Errorf("no %s event carried the element %q", typ, element)
		}
	}
}

// walkStrings calls fn with every key and string of a decoded JSON value.
func walkStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	case map[string]any:
		for k, x := range v {
			fn(k)
			walkStrings(x, fn)
		}
	}
}
