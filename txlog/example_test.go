package txlog_test

import (
	"fmt"

	"github.com/tidings/tidings/txlog"
)

func Example() {
	l := txlog.NewMemory(txlog.MemoryOptions{})
	defer l.Close()

	ref := txlog.Ref{Collection: "spells", ID: "1"}
	created, _ := l.Append([]txlog.Write{{Ref: ref, Action: txlog.ActionCreate, After: []byte(`{"name":"Fireball"}`)}})
	l.Append([]txlog.Write{{Ref: ref, Action: txlog.ActionUpdate,
		BeforeTxn: created, Before: []byte(`{"name":"Fireball"}`), After: []byte(`{"name":"Fire Ball"}`)}})

	// Resume after the create: only the update follows.
	after := txlog.Cursor{Log: l.ID(), Pos: txlog.AfterTxn(created)}
	for rec, err := range l.Read(after) {
		if err != nil {
			panic(err)
		}
		for _, w := range rec.Writes {
			fmt.Println(w.Action, w.Ref, string(w.Before), "->", string(w.After))
		}
	}

	// A cursor parsed back from its string form reads the same.
	c, _ := txlog.ParseCursor(after.String())
	fmt.Println(c == after)
	// Output:
	// update spells/1 {"name":"Fireball"} -> {"name":"Fire Ball"}
	// true
}
