package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// gatedLog is a file log whose Wait, the second half of an append, waits
// for the test to open a gate for that txn: the test decides when each
// commit becomes durable, or that it fails.
type gatedLog struct {
	*txlog.FileLog
	mu      sync.Mutex
	gates   map[txlog.Txn]chan error
	entered chan txlog.Txn
}

func newGatedLog(t *testing.T) *gatedLog {
	fl, err := txlog.OpenFile(t.TempDir(), txlog.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &gatedLog{FileLog: fl, gates: map[txlog.Txn]chan error{}, entered: make(chan txlog.Txn, 16)}
}

func (l *gatedLog) gate(txn txlog.Txn) chan error {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.gates[txn]
	if g == nil {
		g = make(chan error, 1)
		l.gates[txn] = g
	}
	return g
}

func (l *gatedLog) Wait(txn txlog.Txn) error {
	l.entered <- txn
	if err := <-l.gate(txn); err != nil {
		return err
	}
	return l.FileLog.Wait(txn)
}

// gatedBroker returns a broker on a gated log, without checkpoints.
func gatedBroker(t *testing.T) (*Broker, *gatedLog) {
	lg := newGatedLog(t)
	b, err := New(Options{Log: lg, Schema: ckptSchema, Checkpoint: CheckpointOptions{Disable: true}, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	return b, lg
}

// open lets txn's Wait go on (err nil) or fail with err.
func (l *gatedLog) open(txn txlog.Txn, err error) { l.gate(txn) <- err }

// reader drains a subscription into a channel, for checking what has been
// delivered at a point where everything else is blocked.
func reader(s *Subscription) chan subscription.Event {
	ch := make(chan subscription.Event, 100)
	go func() {
		defer close(ch)
		for e := range s.Events() {
			ch <- e
		}
	}()
	return ch
}

func drainNow(ch chan subscription.Event) []subscription.Event {
	var evs []subscription.Event
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, e)
		default:
			return evs
		}
	}
}

func kinds(evs []subscription.Event) string {
	s := ""
	for _, e := range evs {
		s += fmt.Sprintf("%s/%s@%d ", e.Type, e.Action, e.Txn)
	}
	return s
}

// A commit waiting for its fsync is applied to the state (the next
// transaction sees it) but shown to nobody: no event, no start of a stream
// whose snapshot holds it, no Get, no Head. Commits that become durable
// out of order are still delivered in txn order, each once.
//
// Guarantee 6 (broker package doc), and 1 and 2 while commits wait for
// their fsync: delivery in txn order, and a snapshot at exactly its start
// txn, none of whose commits is delivered again.
func TestNothingShownBeforeDurable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, lg := gatedBroker(t)
		defer b.Close()
		ctx := context.Background()
		commit := func(id, element string) chan txlog.Txn {
			done := make(chan txlog.Txn, 1)
			go func() {
				txn, err := b.Commit(ctx, func(tx *Tx) error {
					return tx.Upsert(spell(id), []byte(`{"element":"`+element+`"}`))
				})
				if err != nil {
					t.Error(err)
				}
				done <- txn
			}()
			return done
		}
		c0 := commit("0", "fire")
		lg.open(<-lg.entered, nil)
		t0 := <-c0
		fire := must(subscription.Match("spells_by_element", "fire"))
		live := reader(mustSubscribe(t, b, fire, subscription.Options{}))

		cA := commit("A", "fire")
		tA := <-lg.entered
		// B reads A's write: the state has it while A waits for its fsync.
		cB := make(chan txlog.Txn, 1)
		go func() {
			txn, err := b.Commit(ctx, func(tx *Tx) error {
				if _, ok := tx.Get(spell("A")); !ok {
					return errors.New("B does not see A")
				}
				return tx.Upsert(spell("B"), []byte(`{"element":"fire"}`))
			})
			if err != nil {
				t.Error(err)
			}
			cB <- txn
		}()
		tB := <-lg.entered
		late := reader(mustSubscribe(t, b, fire, subscription.Options{Snapshot: true}))
		got := make(chan bool, 1)
		go func() { _, ok := b.Get(spell("B")); got <- ok }()
		synctest.Wait()

		if h := b.Head(); h != t0 {
			t.Fatalf("head %d while A and B wait for their fsync, want %d", h, t0)
		}
		if evs := drainNow(live); len(evs) != 1 || evs[0].Type != subscription.TypeStart {
			t.Fatalf("before the fsync, the live stream has %s", kinds(evs))
		}
		if evs := drainNow(late); len(evs) != 0 {
			t.Fatalf("before the fsync, the late stream has %s", kinds(evs))
		}
		if len(got) != 0 {
			t.Fatal("Get returned a document whose commit is not durable")
		}

		// B's fsync comes first, and covers A: B's committer delivers both.
		lg.open(tB, nil)
		if txn := <-cB; txn != tB {
			t.Fatalf("B committed at %d, want %d", txn, tB)
		}
		synctest.Wait()
		evs := drainNow(live)
		if len(evs) != 2 || evs[0].Txn != tA || evs[1].Txn != tB || evs[0].Action != "add" {
			t.Fatalf("after B's fsync, the live stream has %s; want A's add then B's", kinds(evs))
		}
		evs = drainNow(late)
		if len(evs) != 2 || evs[0].Txn != tB || evs[1].Type != subscription.TypeSnapshot {
			t.Fatalf("after B's fsync, the late stream has %s; want start and snapshot at %d", kinds(evs), tB)
		}
		if ok := <-got; !ok {
			t.Fatal("Get did not find B")
		}
		lg.open(tA, nil)
		if txn := <-cA; txn != tA {
			t.Fatalf("A committed at %d, want %d", txn, tA)
		}
		synctest.Wait()
		if evs := drainNow(live); len(evs) != 0 {
			t.Fatalf("A delivered again: %s", kinds(evs))
		}
		if evs := drainNow(late); len(evs) != 0 {
			t.Fatalf("the late stream got events its snapshot holds: %s", kinds(evs))
		}
	})
}

// When the log fails to make a commit durable, the commit fails, nothing of
// it is shown, the broker takes no more commits or subscriptions, and every
// stream ends with shutting_down: with its cursor for a stream that had
// started, with none for one whose start was the failed commit's.
// Guarantees 6 and 7 (broker package doc).
func TestLogFailureStopsTheBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, lg := gatedBroker(t)
		defer b.Close()
		ctx := context.Background()
		fire := must(subscription.Match("spells_by_element", "fire"))
		live := reader(mustSubscribe(t, b, fire, subscription.Options{}))
		synctest.Wait()
		start := drainNow(live)[0]

		failed := make(chan error, 1)
		go func() {
			_, err := b.Commit(ctx, func(tx *Tx) error { return tx.Create(spell("A"), []byte(`{"element":"fire"}`)) })
			failed <- err
		}()
		tA := <-lg.entered
		late := reader(mustSubscribe(t, b, fire, subscription.Options{Snapshot: true}))
		disk := errors.New("disk on fire")
		lg.open(tA, disk)
		if err := <-failed; !errors.Is(err, disk) {
			t.Fatalf("the commit returned %v, want the log's error", err)
		}
		synctest.Wait()
		evs := drainNow(live)
		if len(evs) != 1 || evs[0].Action != subscription.CodeShuttingDown || parse(t, evs[0]).Event.Cursor != start.CursorText {
			t.Fatalf("the live stream ended with %s, want shutting_down at its start cursor", kinds(evs))
		}
		evs = drainNow(late)
		if len(evs) != 1 || evs[0].Action != subscription.CodeShuttingDown || parse(t, evs[0]).Event.Cursor != "" {
			t.Fatalf("the late stream ended with %s, want shutting_down without a cursor", kinds(evs))
		}
		if _, err := b.Commit(ctx, func(tx *Tx) error { return tx.Create(spell("B"), []byte(`{}`)) }); !errors.Is(err, disk) {
			t.Fatalf("a commit after the failure: %v", err)
		}
		if _, err := b.Subscribe(ctx, fire, subscription.Options{}); !errors.Is(err, disk) {
			t.Fatalf("a subscription after the failure: %v", err)
		}
		// Close still releases the log, so that it can be reopened.
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		l, err := txlog.OpenFile(lg.Dir(), txlog.FileOptions{})
		if err != nil {
			t.Fatalf("reopening the log after Close: %v", err)
		}
		l.Close()
	})
}

// Concurrent commits on the file log share fsyncs, and each is delivered
// once, in txn order (Guarantees 1 and 6, broker package doc).
func TestBrokerGroupCommit(t *testing.T) {
	fl, err := txlog.OpenFile(t.TempDir(), txlog.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Log: fl, Schema: ckptSchema, Checkpoint: CheckpointOptions{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	all := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Buffer: 1 << 12})
	const committers, each = 32, 10
	var wg sync.WaitGroup
	for c := range committers {
		wg.Go(func() {
			for i := range each {
				if _, err := b.Commit(context.Background(), func(tx *Tx) error {
					return tx.Create(spell(fmt.Sprint(c, ".", i)), []byte(`{"element":"air"}`))
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	syncs := fl.Syncs()
	t.Logf("%d commits, %d fsyncs", committers*each, syncs)
	if syncs >= committers*each {
		t.Fatalf("%d fsyncs for %d concurrent commits: no group commit", syncs, committers*each)
	}
	evs := take(t, all, 1+committers*each)
	for i := 2; i < len(evs); i++ {
		if evs[i].Txn <= evs[i-1].Txn {
			t.Fatalf("event %d at txn %d after %d", i, evs[i].Txn, evs[i-1].Txn)
		}
	}
}
