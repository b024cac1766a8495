package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// A broker on the file log survives a restart: the state is rebuilt from
// the newest checkpoint and the log after it, and a subscriber resumes
// from the cursor it had, across the restart.
func Example_durable() {
	dir, _ := os.MkdirTemp("", "tidings-example")
	defer os.RemoveAll(dir)
	schema := index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}
	open := func() *broker.Broker {
		l, err := txlog.OpenFile(dir, txlog.FileOptions{}) // fsync before each commit returns
		if err != nil {
			panic(err)
		}
		b, err := broker.New(broker.Options{Log: l, Schema: schema, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			panic(err)
		}
		return b
	}
	ctx := context.Background()
	create := func(b *broker.Broker, id, element string) {
		if _, err := b.Commit(ctx, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"`+element+`"}`))
		}); err != nil {
			panic(err)
		}
	}

	b := open()
	fire, _ := subscription.Match("spells_by_element", "fire")
	sub, _ := b.Subscribe(ctx, fire, subscription.Options{})
	create(b, "1", "fire")
	var last txlog.Cursor
	for e := range sub.Events() {
		if e.Type == subscription.TypeSet {
			last = e.Cursor // a client keeps the last cursor it processed
			break
		}
	}
	b.Checkpoint(ctx) // written by itself as the log grows; here, by hand
	create(b, "2", "fire")
	b.Close()

	b = open() // from the checkpoint and the log after it
	defer b.Close()
	d, _ := b.Get(txlog.Ref{Collection: "spells", ID: "2"})
	fmt.Printf("after the restart: spells/2 is %s\n", d.Data)
	resumed, _ := b.Subscribe(ctx, fire, subscription.Options{Cursor: last.String()})
	for e := range resumed.Events() {
		if e.Type == subscription.TypeSet {
			fmt.Println("resumed with:", e.Action, e.Txn == d.TS)
			break
		}
	}
	// Output:
	// after the restart: spells/2 is {"element":"fire"}
	// resumed with: add true
}
