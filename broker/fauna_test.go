package broker

import (
	"context"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

func spellsBroker(t testing.TB) *Broker {
	t.Helper()
	b, err := New(Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// next reads one event from a pull iterator, failing the test at the end.
func next(t *testing.T, pull func() (subscription.Event, bool)) subscription.Event {
	t.Helper()
	e, ok := pull()
	if !ok {
		t.Fatal("stream ended")
	}
	return e
}

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
	t.Logf("%s", start.JSON)

	ref := txlog.Ref{Collection: "spells", ID: "101"}
	created, err := b.Commit(ctx, func(tx *Tx) error {
		return tx.Create(ref, []byte(`{"name": "Fire Beak", "element": "fire", "cost": 15}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	add := next(t, setEvents)
	t.Logf("%s", add.JSON)

	doc, err := b.Subscribe(ctx, subscription.Document(ref), subscription.Options{Fields: subscription.DefaultFields | subscription.FieldPrev | subscription.FieldDiff})
	if err != nil {
		t.Fatal(err)
	}
	docEvents, stopDoc := iterPull(doc.Events())
	defer stopDoc()
	t.Logf("%s", next(t, docEvents).JSON)

	updated, err := b.Commit(ctx, func(tx *Tx) error {
		return tx.Update(ref, []byte(`{"element": "water"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	remove := next(t, setEvents)
	t.Logf("%s", remove.JSON)
	upd := next(t, docEvents)
	t.Logf("%s", upd.JSON)
	_ = created
	_ = updated
}
