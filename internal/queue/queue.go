// Package queue is a subscriber's bounded buffer of live events, between
// the broker's commit path, which pushes every event for the subscriber
// and must never block, and the subscriber, which takes them in batches.
package queue

import (
	"sync"
	"sync/atomic"

	"github.com/tidings/tidings/subscription"
)

// Queue is a subscriber's bounded buffer of live events: a ring of
// pointers to shared events, bounded in events and in bytes.
//
// Concurrency: one producer (the broker's commit path, under its commit
// lock) and one consumer (the subscriber). Push never blocks: on overflow
// the queue empties itself and remembers that it overflowed, so the
// producer moves on at once and the memory is released; the consumer then
// reads what it missed from the log and calls Rejoin under the same lock
// that orders the pushes. A pointer in a ring costs a few nanoseconds where
// a channel send costs tens, and one lock per batch on the consumer side
// lets it drain many events at once.
type Queue struct {
	// mu guards the ring and the overflowed state. Lock order: it is the
	// innermost lock, and nothing else is taken while it is held (the
	// wake-up is sent after it is released, and never blocks). The
	// producer's Push and the consumer's Rejoin take it under the lock
	// that orders the pushes (the broker's commit lock, Broker.mu); Take
	// takes it alone.
	mu         sync.Mutex
	ring       []*subscription.Event // allocated on first push: an idle subscriber holds none
	head, n    int
	bytes      int
	overflowed bool
	maxEvents  int
	maxBytes   int
	wake       chan struct{}
	// notify, when set, replaces the wake channel: for a consumer that
	// does not wait on a channel of its own (the broker's delivery
	// workers). Atomic, because it is set while pushes go on.
	notify atomic.Pointer[func()]
	// overflows counts Push's overflows, for an operator's figures.
	overflows atomic.Int64
}

// NewQueue returns an empty queue bounded by maxEvents and maxBytes.
func NewQueue(maxEvents, maxBytes int) *Queue {
	q := &Queue{}
	q.Init(maxEvents, maxBytes)
	return q
}

// Init prepares a zero Queue in place, so that it can live inside another
// struct without an allocation of its own.
func (q *Queue) Init(maxEvents, maxBytes int) {
	q.maxEvents, q.maxBytes = max(maxEvents, 1), max(maxBytes, 1)
	q.wake = make(chan struct{}, 1)
}

// Push adds e, or, if e does not fit, empties the queue and marks it
// overflowed. It reports whether e was queued, and the change in bytes
// held: negative exactly when this push overflowed the queue (which held
// events, each with its JSON). While overflowed it queues nothing.
func (q *Queue) Push(e *subscription.Event) (queued bool, dBytes int) {
	q.mu.Lock()
	if q.overflowed {
		q.mu.Unlock()
		return false, 0
	}
	size := len(e.JSON)
	if q.n == q.maxEvents || (q.bytes+size > q.maxBytes && q.n > 0) {
		dBytes = -q.bytes
		clear(q.ring)
		q.head, q.n, q.bytes = 0, 0, 0
		q.overflowed = true
		q.mu.Unlock()
		q.overflows.Add(1)
		q.signal()
		return false, dBytes
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = e
	q.n++
	q.bytes += size
	wasEmpty := q.n == 1
	q.mu.Unlock()
	if wasEmpty {
		q.signal()
	}
	return true, size
}

// grow doubles the ring, up to maxEvents, keeping the order.
func (q *Queue) grow() {
	size := min(max(2*len(q.ring), 8), q.maxEvents)
	ring := make([]*subscription.Event, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// Take moves every queued event to dst and returns it, with whether the
// queue has overflowed since the last Rejoin, and the bytes released.
func (q *Queue) Take(dst []*subscription.Event) (events []*subscription.Event, overflowed bool, dBytes int) {
	q.mu.Lock()
	for i := range q.n {
		j := (q.head + i) % len(q.ring)
		dst = append(dst, q.ring[j])
		q.ring[j] = nil
	}
	dBytes = -q.bytes
	q.head, q.n, q.bytes = 0, 0, 0
	overflowed = q.overflowed
	q.mu.Unlock()
	return dst, overflowed, dBytes
}

// State returns the events queued, their bytes, the oldest of them (nil
// when none), and whether the queue has overflowed since the last Rejoin.
func (q *Queue) State() (events, bytes int, oldest *subscription.Event, overflowed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n > 0 {
		oldest = q.ring[q.head]
	}
	return q.n, q.bytes, oldest, q.overflowed
}

// Overflows returns how many times Push overflowed the queue.
func (q *Queue) Overflows() int64 { return q.overflows.Load() }

// Overflowed reports whether the queue has overflowed since the last Rejoin.
func (q *Queue) Overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.overflowed
}

// MarkOverflowed empties the queue and puts it in the overflowed state, for
// a subscriber that starts by reading the log (one that resumes from a
// cursor). It returns the bytes released.
func (q *Queue) MarkOverflowed() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := -q.bytes
	clear(q.ring)
	q.head, q.n, q.bytes = 0, 0, 0
	q.overflowed = true
	return d
}

// Rejoin ends the overflowed state: pushes queue events again. The caller
// holds the lock that orders pushes, and has read from the log everything
// that was pushed before it.
func (q *Queue) Rejoin() {
	q.mu.Lock()
	q.overflowed = false
	q.mu.Unlock()
}

// Wake returns a channel that receives a value after a push to an empty
// queue and on overflow: the consumer's signal to Take.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

// Notify wakes the consumer as a push would, without an event: for a stop
// (its subscription's close, its broker's) that the consumer checks when it
// wakes, so that it waits on this one channel alone.
func (q *Queue) Notify() { q.signal() }

// SetNotify makes every later wake-up a call of fn instead of a value on
// the Wake channel. fn is called without the queue's lock, from the
// producer's goroutine (under the lock that orders pushes) or from
// Notify's caller; it must not block.
func (q *Queue) SetNotify(fn func()) { q.notify.Store(&fn) }

func (q *Queue) signal() {
	if fn := q.notify.Load(); fn != nil {
		(*fn)()
		return
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
