package wire_test

import (
	"fmt"

	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/internal/wire"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// An update merges a patch into a document (null removes a field), and a
// version event with the prev and diff fields shows what changed.
func Example() {
	before := []byte(`{"name":"Fire Beak","element":"fire","stats":{"cost":15,"level":2}}`)
	patch, err := jsondoc.CompactObject([]byte(`{"element": "water", "stats": {"cost": null}}`))
	if err != nil {
		panic(err)
	}
	after, err := jsondoc.MergePatch(before, patch)
	if err != nil {
		panic(err)
	}
	diff, err := jsondoc.DiffData(before, after)
	if err != nil {
		panic(err)
	}
	fields, err := subscription.ParseFields("action,document,diff,prev")
	if err != nil {
		panic(err)
	}
	v := wire.Version{
		Action: "update", Ref: txlog.Ref{Collection: "spells", ID: "101"},
		Txn: 1700000000000002, BeforeTxn: 1700000000000001, Before: before, After: after, Diff: diff,
	}
	fmt.Printf("after: %s\n", after)
	fmt.Printf("diff:  %s\n", diff)
	fmt.Printf("%s\n", wire.AppendVersion(nil, &v, fields))
	// Output:
	// after: {"name":"Fire Beak","element":"water","stats":{"level":2}}
	// diff:  {"element":"water","stats":{"cost":null}}
	// {"type":"version","txn":1700000000000002,"event":{"action":"update","document":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000002,"data":{"name":"Fire Beak","element":"water","stats":{"level":2}}},"diff":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000002,"data":{"element":"water","stats":{"cost":null}}},"prev":{"ref":{"collection":"spells","id":"101"},"ts":1700000000000001,"data":{"name":"Fire Beak","element":"fire","stats":{"cost":15,"level":2}}}}}
}
