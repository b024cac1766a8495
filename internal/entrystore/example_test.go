package entrystore_test

import (
	"fmt"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/txlog"
)

func Example() {
	cat, err := entrystore.NewCatalog(index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{{
			Name:       "spells_by_element",
			Collection: "spells",
			Terms:      []string{"element"},
			Values:     []string{"stats.level"},
		}},
	})
	if err != nil {
		panic(err)
	}
	store := entrystore.NewStore(cat)
	var d entrystore.Diff // reused from write to write

	write := func(txn txlog.Txn, id, before, after string) {
		var b, a []byte
		if before != "" {
			b = []byte(before)
		}
		if after != "" {
			a = []byte(after)
		}
		if err := cat.Diff(&d, txlog.Ref{Collection: "spells", ID: id}, b, a); err != nil {
			panic(err)
		}
		for _, c := range d.Changes() {
			fmt.Printf("txn %d: %s %s %s values=%s\n", txn, c.Set, c.Action, c.Entry.Ref, c.Entry.Values)
		}
		if err := store.Apply(txn, &d); err != nil {
			panic(err)
		}
	}
	write(1, "1", "", `{"element":"fire","stats":{"level":3}}`)
	write(2, "2", "", `{"element":["fire","water"],"stats":{"level":1.0}}`)
	write(3, "1", `{"element":"fire","stats":{"level":3}}`, `{"element":"fire","stats":{"level":4}}`)

	fire, _ := cat.MatchSet("spells_by_element", mustValue("fire"))
	page, more, _ := store.Page(nil, fire, entrystore.Position{}, 10)
	for _, e := range page {
		fmt.Println("member:", e.Ref, e.Values)
	}
	fmt.Println("more:", more)

	// Output:
	// txn 1: Collection(spells) add spells/1 values=[]
	// txn 1: Match(spells_by_element, "fire") add spells/1 values=[3]
	// txn 2: Collection(spells) add spells/2 values=[]
	// txn 2: Match(spells_by_element, "fire") add spells/2 values=[1]
	// txn 2: Match(spells_by_element, "water") add spells/2 values=[1]
	// txn 3: Match(spells_by_element, "fire") remove spells/1 values=[3]
	// txn 3: Match(spells_by_element, "fire") add spells/1 values=[4]
	// member: spells/2 [1]
	// member: spells/1 [4]
	// more: false
}

func mustValue(v any) index.Value {
	x, err := index.ValueOf(v)
	if err != nil {
		panic(err)
	}
	return x
}
