// Command embedded shows tidings in process only: commit and subscribe in
// a few lines, no HTTP.
//
//	go run ./examples/embedded
package main

import (
	"context"
	"fmt"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

func main() {
	ctx := context.Background()
	b, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	fire, _ := subscription.Match("spells_by_element", "fire")
	sub, err := b.Subscribe(ctx, fire, subscription.Options{})
	if err != nil {
		panic(err)
	}

	ref := txlog.Ref{Collection: "spells", ID: "101"}
	b.Commit(ctx, func(tx *broker.Tx) error { return tx.Create(ref, []byte(`{"name":"Fire Beak","element":"fire"}`)) })
	b.Commit(ctx, func(tx *broker.Tx) error { return tx.Update(ref, []byte(`{"element":"water"}`)) })

	n := 0
	for e := range sub.Events() { // start, then add, then remove
		fmt.Printf("%s %s\n", e.Type, e.Action)
		if n++; n == 3 {
			break
		}
	}
}
