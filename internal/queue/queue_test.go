package queue

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// ev returns an event of size bytes whose txn is n.
func ev(n, size int) *subscription.Event {
	return &subscription.Event{Txn: txlog.Txn(n), JSON: make([]byte, size)}
}

func txns(es []*subscription.Event) []int {
	var ns []int
	for _, e := range es {
		ns = append(ns, int(e.Txn))
	}
	return ns
}

// woken reports whether the queue's wake channel holds a signal, and
// consumes it.
func woken(q *Queue) bool {
	select {
	case <-q.Wake():
		return true
	default:
		return false
	}
}

func TestQueueOrderAndBytes(t *testing.T) {
	q := NewQueue(100, 1<<20)
	if woken(q) {
		t.Fatal("a new queue is signalled")
	}
	for i := range 50 {
		queued, d := q.Push(ev(i, i+1))
		if !queued || d != i+1 {
			t.Fatalf("Push %d = %v, %d", i, queued, d)
		}
	}
	got, overflowed, d := q.Take(nil)
	if overflowed || d != -50*51/2 {
		t.Errorf("Take: overflowed %v, released %d", overflowed, d)
	}
	if fmt.Sprint(txns(got)) != fmt.Sprint(seq(0, 50)) {
		t.Errorf("order: %v", txns(got))
	}
	// Take appends to dst and leaves the queue empty.
	got, overflowed, d = q.Take(got[:1])
	if len(got) != 1 || overflowed || d != 0 {
		t.Errorf("second Take: %v %v %d", txns(got), overflowed, d)
	}
}

// TestQueueWrapsAround interleaves pushes and takes so that the ring's
// head moves around it, including across a grow.
func TestQueueWrapsAround(t *testing.T) {
	q := NewQueue(64, 1<<20)
	next, want := 0, 0
	var got []*subscription.Event
	for round := range 200 {
		for range round%13 + 1 {
			if queued, _ := q.Push(ev(next, 1)); !queued {
				t.Fatalf("push %d refused", next)
			}
			next++
		}
		if round%3 != 0 {
			continue
		}
		got, _, _ = q.Take(got[:0])
		for _, e := range got {
			if int(e.Txn) != want {
				t.Fatalf("got %d, want %d", e.Txn, want)
			}
			want++
		}
	}
	got, _, _ = q.Take(got[:0])
	want += len(got)
	if want != next {
		t.Errorf("took %d of %d", want, next)
	}
	if q.Overflowed() {
		t.Error("overflowed")
	}
}

// A queue holds at most its bound of events: the push past it empties the
// queue, which then queues nothing until Rejoin. This is how a subscriber
// costs bounded memory and never holds up the commits (Guarantee 5, broker
// package doc).
func TestQueueOverflowOnEvents(t *testing.T) {
	q := NewQueue(4, 1<<20)
	for i := range 4 {
		if queued, _ := q.Push(ev(i, 10)); !queued {
			t.Fatalf("push %d refused", i)
		}
	}
	woken(q)
	queued, d := q.Push(ev(4, 10))
	if queued || d != -40 {
		t.Errorf("overflowing push = %v, %d; want false, -40", queued, d)
	}
	if !woken(q) {
		t.Error("overflow did not wake the consumer")
	}
	if !q.Overflowed() {
		t.Error("not overflowed")
	}
	if q.n != 0 || q.bytes != 0 || q.ring[0] != nil {
		t.Errorf("overflow did not empty the queue: n %d, bytes %d", q.n, q.bytes)
	}
	// While overflowed, nothing is queued, and nothing changes in bytes.
	if queued, d := q.Push(ev(5, 10)); queued || d != 0 {
		t.Errorf("push while overflowed = %v, %d", queued, d)
	}
	got, overflowed, d := q.Take(nil)
	if len(got) != 0 || !overflowed || d != 0 {
		t.Errorf("Take after overflow = %v, %v, %d", txns(got), overflowed, d)
	}
	// Take does not end the overflowed state: only Rejoin does.
	if !q.Overflowed() {
		t.Error("Take cleared the overflow")
	}
	q.Rejoin()
	if q.Overflowed() {
		t.Error("still overflowed after Rejoin")
	}
	if queued, d := q.Push(ev(6, 3)); !queued || d != 3 {
		t.Errorf("push after Rejoin = %v, %d", queued, d)
	}
	if !woken(q) {
		t.Error("push to an empty queue did not wake the consumer")
	}
	got, overflowed, d = q.Take(nil)
	if fmt.Sprint(txns(got)) != "[6]" || overflowed || d != -3 {
		t.Errorf("Take after Rejoin = %v, %v, %d", txns(got), overflowed, d)
	}
}

// A queue holds at most its bound of bytes, as it does of events
// (Guarantee 5, broker package doc).
func TestQueueOverflowOnBytes(t *testing.T) {
	q := NewQueue(100, 100)
	for i := range 3 {
		if queued, _ := q.Push(ev(i, 30)); !queued {
			t.Fatalf("push %d refused", i)
		}
	}
	if queued, d := q.Push(ev(3, 10)); !queued || d != 10 { // exactly 100 bytes fits
		t.Fatalf("push to the byte limit = %v, %d", queued, d)
	}
	if queued, d := q.Push(ev(4, 1)); queued || d != -100 {
		t.Errorf("push beyond the byte limit = %v, %d; want false, -100", queued, d)
	}
	if _, overflowed, _ := q.Take(nil); !overflowed {
		t.Error("not overflowed")
	}

	// One event larger than the whole bound is queued when the queue is
	// empty: it could never be delivered live otherwise.
	q = NewQueue(100, 100)
	if queued, d := q.Push(ev(0, 500)); !queued || d != 500 {
		t.Errorf("a big event into an empty queue = %v, %d", queued, d)
	}
	if queued, d := q.Push(ev(1, 1)); queued || d != -500 {
		t.Errorf("the next one = %v, %d", queued, d)
	}
}

func TestQueueMarkOverflowed(t *testing.T) {
	q := NewQueue(10, 1000)
	q.Push(ev(0, 7))
	q.Push(ev(1, 8))
	if d := q.MarkOverflowed(); d != -15 {
		t.Errorf("MarkOverflowed released %d, want -15", d)
	}
	if queued, _ := q.Push(ev(2, 1)); queued {
		t.Error("queued while overflowed")
	}
	got, overflowed, d := q.Take(nil)
	if len(got) != 0 || !overflowed || d != 0 {
		t.Errorf("Take = %v %v %d", txns(got), overflowed, d)
	}
	if d := NewQueue(1, 1).MarkOverflowed(); d != 0 {
		t.Errorf("MarkOverflowed of an empty queue released %d", d)
	}
}

// TestQueueGrowsWithinBound: an idle queue holds no ring; the ring grows
// as events wait, never beyond maxEvents, also when maxEvents is not a
// power of two or is below the first allocation.
func TestQueueGrowsWithinBound(t *testing.T) {
	for _, maxEvents := range []int{1, 3, 8, 9, 100, 1024} {
		q := NewQueue(maxEvents, 1<<30)
		if q.ring != nil {
			t.Fatalf("max %d: an idle queue holds a ring of %d", maxEvents, len(q.ring))
		}
		for i := range maxEvents {
			if queued, _ := q.Push(ev(i, 1)); !queued {
				t.Fatalf("max %d: push %d refused", maxEvents, i)
			}
			if len(q.ring) > maxEvents || len(q.ring) < q.n {
				t.Fatalf("max %d: ring of %d holding %d", maxEvents, len(q.ring), q.n)
			}
		}
		if len(q.ring) != maxEvents {
			t.Errorf("max %d: full ring of %d", maxEvents, len(q.ring))
		}
		if queued, _ := q.Push(ev(maxEvents, 1)); queued {
			t.Errorf("max %d: push beyond the bound was queued", maxEvents)
		}
		if len(q.ring) > maxEvents {
			t.Errorf("max %d: ring grew to %d", maxEvents, len(q.ring))
		}
	}
	// Zero or negative bounds are raised to one.
	q := NewQueue(0, 0)
	if queued, _ := q.Push(ev(0, 5)); !queued {
		t.Error("a queue bounded at zero refuses its first event")
	}
	if queued, _ := q.Push(ev(1, 0)); queued {
		t.Error("a queue bounded at zero holds two events")
	}
}

func TestQueueInitInPlace(t *testing.T) {
	var holder struct {
		x int
		q Queue
	}
	holder.q.Init(2, 10)
	holder.q.Push(ev(1, 1))
	if !woken(&holder.q) {
		t.Error("no wake")
	}
	if got, _, _ := holder.q.Take(nil); fmt.Sprint(txns(got)) != "[1]" {
		t.Errorf("got %v", txns(got))
	}
}

// TestQueueConcurrent runs one producer against one consumer (under
// -race): every event the producer was told was queued, and that no
// overflow released, reaches the consumer exactly once and in order, and
// nothing else does. Overflows
// are forced by a small queue; the consumer rejoins after each one, as
// the broker's consumer does after reading the log.
//
// With a queue large enough for everything, no overflow may happen and
// every event arrives.
func TestQueueConcurrent(t *testing.T) {
	const total = 200_000
	t.Run("overflowing", func(t *testing.T) { testQueueConcurrent(t, total, 64) })
	t.Run("large", func(t *testing.T) {
		if received, overflows := testQueueConcurrent(t, total, total); received != total || overflows != 0 {
			t.Errorf("received %d of %d, %d overflows", received, total, overflows)
		}
	})
}

func testQueueConcurrent(t *testing.T, total, maxEvents int) (received, overflows int) {
	q := NewQueue(maxEvents, 1<<30)
	var queuedTxns []int
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range total {
			queued, d := q.Push(ev(i, 1))
			switch {
			case queued:
				queuedTxns = append(queuedTxns, i)
			case d < 0:
				// An overflow released the -d events still queued, the
				// newest ones (each is one byte): they will never be
				// received (the broker's consumer reads them from the log).
				queuedTxns = queuedTxns[:len(queuedTxns)+d]
			}
		}
	})
	var got []int
	var batch []*subscription.Event
	take := func() {
		var overflowed bool
		batch, overflowed, _ = q.Take(batch[:0])
		for _, e := range batch {
			got = append(got, int(e.Txn))
		}
		if overflowed {
			overflows++
			q.Rejoin()
		}
	}
	for finished := false; !finished; {
		select {
		case <-q.Wake():
		case <-done:
			finished = true
		}
		take()
	}
	wg.Wait()
	take()
	if len(got) != len(queuedTxns) {
		t.Fatalf("received %d events, %d were queued", len(got), len(queuedTxns))
	}
	for i := range got {
		if got[i] != queuedTxns[i] {
			t.Fatalf("event %d: received %d, queued %d", i, got[i], queuedTxns[i])
		}
	}
	t.Logf("%d of %d events queued and received, %d overflows", len(got), total, overflows)
	return len(got), overflows
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
