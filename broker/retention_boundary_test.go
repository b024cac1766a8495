package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// A cursor whose own write retention dropped cannot resume (the rest of
// that write's events are gone): Subscribe and ReadPage both refuse it
// before anything is delivered, and both accept the first cursor that the
// retained history can resume. Guarantee 3 of the package doc.
func TestResumeAtRetentionBoundary(t *testing.T) {
	l := txlog.NewMemory(txlog.MemoryOptions{MaxRecords: 3})
	b, err := New(Options{Log: l, Schema: index.Schema{Collections: []string{"c"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	for i := range 6 {
		if _, err := b.Commit(ctx, func(tx *Tx) error {
			return tx.Upsert(txlog.Ref{Collection: "c", ID: "x"}, []byte(`{"i":`+string(rune('0'+i))+`}`))
		}); err != nil {
			t.Fatal(err)
		}
	}
	oldest := l.Oldest()
	if oldest.Op == ^uint32(0) {
		t.Fatalf("oldest %+v: the test wants a position within a record", oldest)
	}
	target := subscription.Collection("c")
	for name, c := range map[string]txlog.Cursor{
		"at the oldest position": {Log: l.ID(), Pos: oldest},
		"before it":              {Log: l.ID(), Pos: txlog.AfterTxn(oldest.Txn - 1)},
	} {
		opt := subscription.Options{Cursor: c.String()}
		if _, err := b.Subscribe(ctx, target, opt); !errors.Is(err, ErrHistoryUnavailable) {
			t.Errorf("%s: Subscribe: %v, want ErrHistoryUnavailable", name, err)
		}
		if _, err := b.ReadPage(ctx, target, opt, 10, false); !errors.Is(err, ErrHistoryUnavailable) {
			t.Errorf("%s: ReadPage: %v, want ErrHistoryUnavailable", name, err)
		}
	}
	// The end of the oldest retained record resumes, in both.
	ok := txlog.Cursor{Log: l.ID(), Pos: txlog.AfterTxn(oldest.Txn)}
	opt := subscription.Options{Cursor: ok.String(), Updates: true}
	p, err := b.ReadPage(ctx, target, opt, 10, false)
	if err != nil || len(p.Events) != 3 {
		t.Fatalf("ReadPage after the oldest record: %d events, %v; want the 3 retained", len(p.Events), err)
	}
	sub, err := b.Subscribe(ctx, target, opt)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for e := range sub.Events() {
		if e.Type == subscription.TypeError {
			t.Fatalf("%s", e.JSON)
		}
		if e.Type == subscription.TypeSet {
			if n++; n == 3 {
				break
			}
		}
	}
}
