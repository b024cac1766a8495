package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Guarantee 3 (broker package doc), byte for byte: a subscriber that
// replays the log gets exactly the events a live subscriber got: the same
// type, txn, cursor, cursor text, action and JSON bytes. Every kind of
// target (documents, collections, index sets with and without terms and
// values) with every shape of event (fields, data, updates) replays a few
// hundred random transactions, history rewrites among them. The replayed
// events are all kept and compared at the end, read through Events and
// through Batches, so that an event kept after its loop body must still
// be intact (the replay carves their JSON from shared chunks).
func TestReplayIsLiveByteForByte(t *testing.T) {
	b, err := New(Options{Log: txlog.NewMemory(txlog.MemoryOptions{MaxRecords: 1 << 20, MaxBytes: 1 << 30}),
		Schema: modelSchema, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()

	r := rand.New(rand.NewPCG(5, 8))
	mustCommit(t, b, func(tx *Tx) error { // document streams start on documents that exist
		for _, id := range []string{"0", "1", "2"} {
			for _, c := range []string{"spells", "users"} {
				ref := txlog.Ref{Collection: c, ID: id}
				if err := tx.Create(ref, encodeData(r, genData(r, c))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	var targets []subscription.Target
	for _, id := range []string{"0", "1", "2"} {
		targets = append(targets, subscription.Document(txlog.Ref{Collection: "spells", ID: id}),
			subscription.Document(txlog.Ref{Collection: "users", ID: id}))
	}
	for _, c := range modelSchema.Collections {
		targets = append(targets, subscription.Collection(c))
	}
	for _, m := range []struct {
		index string
		terms []any
	}{
		{"spells_by_element", []any{"fire"}}, {"spells_by_element", []any{"water"}}, {"spells_by_element", []any{nil}},
		{"spells_by_tag", []any{"aoe"}}, {"spells_by_level", nil},
		{"users_by_team_role", []any{"red", "admin"}}, {"users_all", nil},
	} {
		targets = append(targets, must(subscription.Match(m.index, m.terms...)))
	}
	opts := []subscription.Options{
		{},
		{Fields: subscription.FieldAction},
		{Fields: subscription.DefaultFields | subscription.FieldPrev | subscription.FieldDiff | subscription.FieldIndex, Data: true},
		{Fields: subscription.DefaultFields | subscription.FieldIndex, Updates: true},
		{Fields: subscription.DefaultFields | subscription.FieldDiff, Updates: true, Data: true},
	}
	type stream struct {
		target subscription.Target
		opt    subscription.Options
		live   *Subscription
	}
	var streams []stream
	for _, target := range targets {
		for _, opt := range opts {
			live := opt
			live.Buffer, live.BufferBytes = 1<<16, 1<<30 // never overflows: every event live
			// A status event comes only once the queue is empty: after
			// everything committed below.
			live.Heartbeat = 20 * time.Millisecond
			streams = append(streams, stream{target, opt, mustSubscribe(t, b, target, live)})
		}
	}

	refs := func() txlog.Ref {
		return txlog.Ref{Collection: pick(r, modelSchema.Collections...), ID: fmt.Sprint(r.IntN(4))}
	}
	for range 400 {
		if r.IntN(20) == 0 {
			ref := refs()
			if d, ok := b.Get(ref); ok && d.TS > 1 {
				var data []byte
				if r.IntN(2) == 0 {
					data = encodeData(nil, genData(r, ref.Collection))
				}
				if _, err := b.RewriteHistory(ctx, ref, d.TS-1, data); err != nil {
					t.Fatal(err)
				}
				continue
			}
		}
		_, err := b.Commit(ctx, func(tx *Tx) error {
			for range 1 + r.IntN(3) {
				ref := refs()
				var err error
				_, exists := tx.Get(ref)
				switch {
				case !exists:
					err = tx.Create(ref, encodeData(r, genData(r, ref.Collection)))
				case r.IntN(4) == 0:
					err = tx.Delete(ref)
				case r.IntN(2) == 0:
					err = tx.Update(ref, encodeData(nil, genPatch(r, ref.Collection)))
				case r.IntN(5) == 0:
					d, _ := tx.Get(ref)
					err = tx.Replace(ref, d.Data) // unchanged: updates only
				default:
					err = tx.Replace(ref, encodeData(r, genData(r, ref.Collection)))
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	total := 0
	for i, st := range streams {
		var live []subscription.Event
		for e := range st.live.Events() {
			if e.Type == subscription.TypeStatus {
				break
			}
			if e.Type != subscription.TypeStart {
				live = append(live, e)
			}
		}
		if len(live) == 0 {
			continue
		}
		opt := st.opt
		opt.Cursor = st.live.StartCursor().String()
		replay := mustSubscribe(t, b, st.target, opt)
		var got []subscription.Event
		if i%2 == 0 {
			for e := range replay.Events() {
				if e.Type != subscription.TypeStart {
					got = append(got, e)
				}
				if len(got) == len(live) {
					break
				}
			}
		} else {
			for batch := range replay.Batches() {
				for _, e := range batch {
					if e.Type != subscription.TypeStart && len(got) < len(live) {
						got = append(got, e)
					}
				}
				if len(got) == len(live) {
					break
				}
			}
		}
		for j := range live {
			l, g := &live[j], &got[j]
			if g.Type != l.Type || g.Txn != l.Txn || g.Cursor != l.Cursor || g.CursorText != l.CursorText ||
				g.Action != l.Action || string(g.JSON) != string(l.JSON) {
				t.Fatalf("%v %+v: event %d replayed as\n%+v\n%s\nlive\n%+v\n%s", st.target, st.opt, j, *g, g.JSON, *l, l.JSON)
			}
		}
		total += len(live)
	}
	if total < 2000 {
		t.Fatalf("only %d events compared", total)
	}
}
