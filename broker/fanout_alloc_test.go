package broker

import (
	"context"
	"testing"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// TestCommitAllocsIndependentOfSubscribers: the allocations of a commit do
// not grow with the number of subscribers it reaches (Guarantee 8, broker
// package doc: an event is encoded once per field set, not once per
// subscriber; matching and pushing allocate nothing per subscriber). Each subscriber's queue is
// overflowed first, so that pushes do not grow rings; the commit still
// looks up every subscriber's events.
func TestCommitAllocsIndependentOfSubscribers(t *testing.T) {
	allocs := func(subscribers int) float64 {
		ctx := context.Background()
		b, err := New(Options{Schema: benchSchema})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ref := txlog.Ref{Collection: "spells", ID: "1"}
		commit := func(i int) {
			if _, err := b.Commit(ctx, func(tx *Tx) error { return tx.Replace(ref, elementDocs[i&1]) }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Commit(ctx, func(tx *Tx) error { return tx.Create(ref, elementDocs[0]) }); err != nil {
			t.Fatal(err)
		}
		fire, err := subscription.Match("spells_by_element", "fire")
		if err != nil {
			t.Fatal(err)
		}
		fieldSets := []subscription.Fields{subscription.DefaultFields, subscription.DefaultFields | subscription.FieldIndex}
		for i := range subscribers {
			opt := subscription.Options{Fields: fieldSets[i%2], Buffer: 1}
			for _, target := range []subscription.Target{fire, subscription.Document(ref)} {
				s, err := b.Subscribe(ctx, target, opt)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
			}
		}
		for i := range 4 {
			commit(i + 1)
		}
		i := 0
		return testing.AllocsPerRun(50, func() {
			i++
			commit(i)
		})
	}
	few, many := allocs(2), allocs(2000)
	t.Logf("allocations per commit: %.0f with 2×2 subscribers, %.0f with 2000×2", few, many)
	if many > few+4 {
		t.Errorf("a commit allocates %.0f times with 4000 subscribers, %.0f with 4: allocations per subscriber", many, few)
	}
}
