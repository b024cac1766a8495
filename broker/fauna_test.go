package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// next reads one event from a pull iterator, failing the test at the end.
func next(t *testing.T, pull func() (subscription.Event, bool)) subscription.Event {
	t.Helper()
	e, ok := pull()
	if !ok {
		t.Fatal("stream ended")
	}
	return e
}

// sameJSON fails the test unless got and want are equal as JSON values.
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestFaunaSpellsExample follows Fauna's streaming documentation: the
// spells collection and the spells_by_element index; a stream on the fire
// set sees a fire spell added, then removed when its element becomes
// water; a document stream on the spell shows that update with prev and
// diff.
func TestFaunaSpellsExample(t *testing.T) {
	ctx := context.Background()
	b := spellsBroker(t)
	fire, err := subscription.Match("spells_by_element", "fire")
	if err != nil {
		t.Fatal(err)
	}
	set, err := b.Subscribe(ctx, fire, subscription.Options{Fields: subscription.DefaultFields | subscription.FieldIndex})
	if err != nil {
		t.Fatal(err)
	}
	setEvents, stopSet := iterPull(set.Events())
	defer stopSet()
	start := next(t, setEvents)
	sameJSON(t, start.JSON, fmt.Sprintf(`{"type":"start","txn":0,"cursor":%q,"event":0}`, start.Cursor))

	ref := txlog.Ref{Collection: "spells", ID: "101"}
	created := mustCommit(t, b, func(tx *Tx) error {
		return tx.Create(ref, []byte(`{"name": "Fire Beak", "element": "fire", "cost": 15}`))
	})
	add := next(t, setEvents)
	sameJSON(t, add.JSON, fmt.Sprintf(`{"type":"set","txn":%[1]d,"cursor":%[2]q,"event":{"action":"add",
		"document":{"ref":{"collection":"spells","id":"101"},"ts":%[1]d},
		"index":{"terms":["fire"],"values":[]}}}`, created, add.Cursor))

	doc, err := b.Subscribe(ctx, subscription.Document(ref), subscription.Options{Fields: subscription.DefaultFields | subscription.FieldPrev | subscription.FieldDiff})
	if err != nil {
		t.Fatal(err)
	}
	docEvents, stopDoc := iterPull(doc.Events())
	defer stopDoc()
	if e := next(t, docEvents); e.Type != subscription.TypeStart || e.Txn != created {
		t.Fatalf("document stream start: %s", e.JSON)
	}

	updated := mustCommit(t, b, func(tx *Tx) error {
		return tx.Update(ref, []byte(`{"element": "water"}`))
	})
	remove := next(t, setEvents)
	sameJSON(t, remove.JSON, fmt.Sprintf(`{"type":"set","txn":%[1]d,"cursor":%[2]q,"event":{"action":"remove",
		"document":{"ref":{"collection":"spells","id":"101"},"ts":%[1]d},
		"index":{"terms":["fire"],"values":[]}}}`, updated, remove.Cursor))
	upd := next(t, docEvents)
	sameJSON(t, upd.JSON, fmt.Sprintf(`{"type":"version","txn":%[1]d,"cursor":%[2]q,"event":{"action":"update",
		"document":{"ref":{"collection":"spells","id":"101"},"ts":%[1]d,"data":{"name":"Fire Beak","element":"water","cost":15}},
		"diff":{"ref":{"collection":"spells","id":"101"},"ts":%[1]d,"data":{"element":"water"}},
		"prev":{"ref":{"collection":"spells","id":"101"},"ts":%[3]d,"data":{"name":"Fire Beak","element":"fire","cost":15}}}}`,
		updated, upd.Cursor, created))
	if remove.Cursor != upd.Cursor {
		t.Fatalf("one write, two cursors: %s and %s", remove.Cursor, upd.Cursor)
	}
}
