package subscription_test

import (
	"fmt"

	"github.com/tidings/tidings/subscription"
)

func ExampleParseFields() {
	f, err := subscription.ParseFields("prev, diff")
	fmt.Println(f, err)
	f, err = subscription.ParseFields("")
	fmt.Println(f, err)
	_, err = subscription.ParseFields("data")
	fmt.Println(err)
	// Output:
	// prev,diff <nil>
	// action,document <nil>
	// subscription: invalid options: unknown field "data" (known: action, document, prev, diff, index)
}

// A set subscription: an index matched on a term, with the diff field and
// a snapshot of the set's members first.
func ExampleMatch() {
	target, err := subscription.Match("spells_by_element", "fire")
	if err != nil {
		panic(err)
	}
	opt, err := subscription.Options{Fields: subscription.DefaultFields | subscription.FieldIndex, Snapshot: true}.Normalize()
	if err != nil {
		panic(err)
	}
	fmt.Println(target, target.IsSet())
	fmt.Println(opt.Fields, opt.SnapshotPageSize)
	// Output:
	// Match(Index("spells_by_element"), "fire") true
	// action,document,index 64
}
