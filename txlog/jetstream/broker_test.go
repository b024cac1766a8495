package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// TestBroker: a broker on a JetStream log commits, streams, and resumes a
// subscriber from its cursor after the broker restarts on the same stream.
func TestBroker(t *testing.T) {
	s := runServer(t)
	js := connect(t, s.ClientURL())
	name := newStreamName()
	schema := index.Schema{Collections: []string{"spells"}}
	b, err := broker.New(broker.Options{Log: openLog(t, js, Options{Stream: name}), Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := b.Subscribe(ctx, subscription.Collection("spells"), subscription.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var txns []txlog.Txn
	for _, id := range []string{"a", "b"} {
		txn, err := b.Commit(ctx, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"n":1}`))
		})
		if err != nil {
			t.Fatal(err)
		}
		txns = append(txns, txn)
	}
	var cursor string
	n := 0
	for e := range sub.Events() {
		if e.Type == subscription.TypeSet {
			if e.Txn != txns[n] {
				t.Fatalf("event at %d, want %d", e.Txn, txns[n])
			}
			cursor = e.CursorString()
			if n++; n == 1 {
				break
			}
		}
	}
	b.Close()

	// A broker on the same stream again: the cursor resumes after a.
	b, err = broker.New(broker.Options{Log: openLog(t, js, Options{Stream: name}), Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub, err = b.Subscribe(ctx, subscription.Collection("spells"), subscription.Options{Cursor: cursor})
	if err != nil {
		t.Fatal(err)
	}
	for e := range sub.Events() {
		if e.Type == subscription.TypeSet {
			if e.Txn != txns[1] || e.Action != "add" {
				t.Fatalf("resumed with %s", e.JSON)
			}
			break
		}
	}
}
