package broker_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// newSpellsBroker returns a broker with the spells collection and the
// spells_by_element index, on a memory log whose clock stands still, so
// that txns are deterministic: the first is the clock's time in µs, and
// each later one is one more.
func newSpellsBroker() *broker.Broker {
	frozen := func() time.Time { return time.UnixMicro(1_700_000_000_000_000) }
	b, err := broker.New(broker.Options{
		Log: txlog.NewMemory(txlog.MemoryOptions{Now: frozen}),
		Schema: index.Schema{
			Collections: []string{"spells"},
			Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
		},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// cursorField matches an event's cursor, which names the log's random ID.
var cursorField = regexp.MustCompile(`"cursor":"[A-Za-z0-9_-]*",`)

// printEvent prints an event's type and action, and its JSON line with
// the cursor left out.
func printEvent(e subscription.Event) {
	fmt.Printf("%s %s cursor=%v\n  %s\n", e.Type, e.Action, e.HasCursor(), cursorField.ReplaceAll(e.JSON, nil))
}

// A stream on the set of fire spells sees a spell enter it and leave it,
// as in Fauna's event streaming; an update that keeps the spell in the set
// sends nothing (unless Options.Updates asks for it).
func Example_commitAndSubscribe() {
	ctx := context.Background()
	b := newSpellsBroker()
	defer b.Close()

	fire, err := subscription.Match("spells_by_element", "fire")
	if err != nil {
		panic(err)
	}
	sub, err := b.Subscribe(ctx, fire, subscription.Options{Fields: subscription.DefaultFields | subscription.FieldIndex})
	if err != nil {
		panic(err)
	}

	ref := txlog.Ref{Collection: "spells", ID: "101"}
	for _, write := range []func(tx *broker.Tx) error{
		func(tx *broker.Tx) error {
			return tx.Create(ref, []byte(`{"name":"Fire Beak","element":"fire","cost":15}`))
		},
		func(tx *broker.Tx) error { return tx.Update(ref, []byte(`{"cost":10}`)) },
		func(tx *broker.Tx) error { return tx.Update(ref, []byte(`{"element":"water"}`)) },
	} {
		if _, err := b.Commit(ctx, write); err != nil {
			panic(err)
		}
	}

	// The events wait in the subscription's queue: start (at txn 0, the
	// head of the empty log when it subscribed), add, remove.
	n := 0
	for e := range sub.Events() {
		printEvent(e)
		if n++; n == 3 {
			break // closes the subscription
		}
	}
	// Output:
	// start  cursor=true
	//   {"type":"start","txn":0,"event":0}
	// set add cursor=true
	//   {"type":"set","txn":1700000000000000,"event":{"action":"add","document":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000000},"index":{"terms":["fire"],"values":[]}}}
	// set remove cursor=true
	//   {"type":"set","txn":1700000000000002,"event":{"action":"remove","document":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000002},"index":{"terms":["fire"],"values":[]}}}
}

// A document stream with prev and diff; a subscriber that resumes from an
// event's cursor receives exactly the events after it.
func Example_resume() {
	ctx := context.Background()
	b := newSpellsBroker()
	defer b.Close()

	ref := txlog.Ref{Collection: "spells", ID: "101"}
	commit := func(write func(tx *broker.Tx) error) {
		if _, err := b.Commit(ctx, write); err != nil {
			panic(err)
		}
	}
	commit(func(tx *broker.Tx) error {
		return tx.Create(ref, []byte(`{"name":"Fire Beak","element":"fire","cost":15}`))
	})

	opt := subscription.Options{Fields: subscription.DefaultFields | subscription.FieldPrev | subscription.FieldDiff}
	sub, err := b.Subscribe(ctx, subscription.Document(ref), opt)
	if err != nil {
		panic(err)
	}
	commit(func(tx *broker.Tx) error { return tx.Update(ref, []byte(`{"element":"water","cost":null}`)) })
	commit(func(tx *broker.Tx) error { return tx.Delete(ref) })

	// Read the start event and the update, then stop: a client that
	// disconnected, keeping the update's cursor.
	var last string
	n := 0
	for e := range sub.Events() {
		last = e.Cursor.String()
		if n++; n == 2 {
			break
		}
	}

	opt.Cursor = last
	resumed, err := b.Subscribe(ctx, subscription.Document(ref), opt)
	if err != nil {
		panic(err)
	}
	for e := range resumed.Events() {
		if e.Type == subscription.TypeStart {
			continue
		}
		printEvent(e)
		break
	}
	// Output:
	// version delete cursor=true
	//   {"type":"version","txn":1700000000000002,"event":{"action":"delete","document":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000002},"diff":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000002,"data":{"name":null,"element":null}},"prev":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000001,"data":{"name":"Fire Beak","element":"water"}}}}
}

// Deliver hands a subscription's events to a function that the broker's
// delivery workers call, a batch at a time, instead of a goroutine of the
// caller's ranging over Events: the shape for thousands of subscriptions
// in one process. The function is called once more with a nil batch when
// the stream ends, here with shutting_down at Close.
func ExampleSubscription_Deliver() {
	ctx := context.Background()
	b := newSpellsBroker()
	fire, err := subscription.Match("spells_by_element", "fire")
	if err != nil {
		panic(err)
	}
	sub, err := b.Subscribe(ctx, fire, subscription.Options{})
	if err != nil {
		panic(err)
	}
	seen := make(chan struct{})
	ended := sub.Deliver(func(batch []subscription.Event) bool {
		if batch == nil {
			fmt.Println("ended")
			return true
		}
		for _, e := range batch {
			fmt.Println(strings.TrimSpace(fmt.Sprint(e.Type, " ", e.Action)))
			if e.Action == "add" {
				close(seen)
			}
		}
		return true
	})
	b.Commit(ctx, func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "101"}, []byte(`{"element":"fire"}`))
	})
	<-seen
	b.Close()
	<-ended
	// Output:
	// start
	// set add
	// error shutting_down
	// ended
}
