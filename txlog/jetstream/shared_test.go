package jetstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidings/tidings/txlog"
)

// TestTwoAppenders: two logs on one stream. An append of one that another
// appender displaced fails with ErrConflict, and so does every append
// chained after it (none lands after the other's record); the log is not
// broken: once its chain is settled it follows the stream's last record,
// and its next append goes after it, with a greater txn.
func TestTwoAppenders(t *testing.T) {
	s := runServer(t)
	name := newStreamName()
	a := openLog(t, connect(t, s.ClientURL()), Options{Stream: name})
	defer a.Close()
	b := openLog(t, connect(t, s.ClientURL()), Options{Stream: name})
	defer b.Close()

	first := appendOne(t, a, "a1")
	// b has not seen a1: its chain of five expects the empty stream.
	var txns []txlog.Txn
	for i := range 5 {
		txn, err := b.Stage(write(fmt.Sprint("b", i)))
		if err != nil {
			t.Fatal(err)
		}
		txns = append(txns, txn)
	}
	for i, txn := range txns {
		if err := b.Wait(txn); !errors.Is(err, ErrConflict) {
			t.Fatalf("b's append %d: %v, want ErrConflict", i, err)
		}
	}
	after := appendOne(t, b, "b5")
	if after <= first {
		t.Fatalf("b's txn %d is not after a's %d", after, first)
	}
	// a is now behind: its append conflicts, and the one after goes on.
	txn, err := a.Stage(write("a2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(txn); !errors.Is(err, ErrConflict) {
		t.Fatalf("a's stale append: %v", err)
	}
	last := appendOne(t, a, "a3")

	var ids []string
	var prev txlog.Txn
	for rec, err := range a.Read(txlog.Cursor{Log: a.ID()}) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Txn <= prev {
			t.Fatalf("txn %d after %d", rec.Txn, prev)
		}
		prev = rec.Txn
		ids = append(ids, rec.Writes[0].Ref.ID)
	}
	if fmt.Sprint(ids) != "[a1 b5 a3]" || prev != last {
		t.Fatalf("the stream holds %v", ids)
	}
}

// TestFollow: a log follows what another appender writes to its stream:
// the records come as they are appended, Head moves, and its next append
// goes after them without a conflict; the other log follows it back.
func TestFollow(t *testing.T) {
	s := runServer(t)
	name := newStreamName()
	a := openLog(t, connect(t, s.ClientURL()), Options{Stream: name})
	defer a.Close()
	b := openLog(t, connect(t, s.ClientURL()), Options{Stream: name})
	defer b.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan txlog.Record, 16)
	done := make(chan error, 1)
	go func() {
		for rec, err := range b.Follow(ctx, txlog.Cursor{Log: b.ID()}) {
			if err != nil {
				done <- err
				return
			}
			got <- rec
		}
		done <- nil
	}()
	var txns []txlog.Txn
	for i := range 3 {
		txns = append(txns, appendOne(t, a, fmt.Sprint("a", i)))
	}
	for _, want := range txns {
		select {
		case rec := <-got:
			if rec.Txn != want {
				t.Fatalf("b followed txn %d, want %d", rec.Txn, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("b followed nothing for 10s")
		}
	}
	if b.Head().Txn != txns[2] {
		t.Fatalf("b's head %v, want txn %d", b.Head(), txns[2])
	}
	mine := appendOne(t, b, "b0") // no conflict: b follows a's last record
	if mine <= txns[2] {
		t.Fatalf("b's txn %d is not after %d", mine, txns[2])
	}
	select {
	case rec := <-got:
		if rec.Txn != mine {
			t.Fatalf("b followed txn %d, want its own %d", rec.Txn, mine)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b did not follow its own record")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("the follower ended with %v", err)
	}
}
