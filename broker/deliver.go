package broker

import (
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/subscription"
)

// Deliver is Batches with the broker's goroutines calling fn: it returns
// at once, and fn receives the events, a batch at a time, in order,
// exactly as a loop over Batches would, until the stream ends (fn returns
// false, the subscription is closed, its context is done, or an error
// event was the last one). However it ended, fn is then called once more
// with a nil batch, its result ignored: the end, for a caller that has no
// goroutine waiting for it. The channel returned is closed after that
// last call, once the subscription is closed.
//
// Use it for many subscriptions in one process: instead of a goroutine
// and a wake-up per subscription per commit, a few workers (one per
// processor) call the callbacks of the subscriptions that have events,
// one after the other, so the delay from commit to the last callback is
// a short loop, not a queue of goroutines for the scheduler.
//
// Concurrency: fn is never called by two goroutines at once, and its
// calls are ordered; it runs on a delivery worker, or on a goroutine of
// its own while the subscription starts or catches up from the log. fn
// should return quickly and must not call Close on the broker. A fn that
// blocks delays no other subscription for long: within two milliseconds
// another worker takes over the others, and events for this one wait in
// its queue and then in the log, as for a slow loop over Batches. The
// batch is valid until fn returns. The broker's Close waits for the
// callbacks in progress. Like Events and Batches, a
// subscription is delivered one way, once: a second call returns a
// closed channel and never calls fn.
func (s *Subscription) Deliver(fn func(batch []subscription.Event) bool) <-chan struct{} {
	ended := make(chan struct{})
	if !s.used.CompareAndSwap(false, true) {
		close(ended)
		return ended
	}
	cb := &callback{fn: fn, ended: ended}
	s.cb = cb
	s.b.workers.run(func() {
		k := &sink{many: fn}
		if !s.begin(k) {
			s.finish()
			return
		}
		if hb := s.opt.Heartbeat; hb > 0 {
			cb.beat = time.AfterFunc(hb, func() {
				cb.beatDue.Store(true)
				s.sub.q.Notify()
			})
		}
		// From here on a push schedules the subscription on a worker.
		// Anything pushed before (a wake-up on the channel no one reads)
		// is taken by the first step, scheduled here.
		s.sub.q.SetNotify(s.schedule)
		s.schedule()
	})
	return ended
}

// callback is the state of a subscription delivered by Deliver.
type callback struct {
	fn    func([]subscription.Event) bool
	ended chan struct{}
	// state: idle, scheduled (waiting for a worker, or in a step, or
	// catching up), again (signalled while in a step: step again), or
	// over. A subscription is in at most one step at a time.
	state   atomic.Int32
	beat    *time.Timer // heartbeat, when asked for
	beatDue atomic.Bool
}

const (
	cbIdle int32 = iota
	cbScheduled
	cbAgain
	cbOver
)

// schedule puts s in line for a worker, unless it is there already: the
// queue's notify function, called after a push to an empty queue, on
// overflow, and by Close and the broker's closing.
func (s *Subscription) schedule() {
	st := &s.cb.state
	for {
		switch st.Load() {
		case cbIdle:
			if st.CompareAndSwap(cbIdle, cbScheduled) {
				s.b.workers.schedule(s)
				return
			}
		case cbScheduled:
			if st.CompareAndSwap(cbScheduled, cbAgain) {
				return
			}
		default: // again, or over
			return
		}
	}
}

// step delivers what s has queued, on worker w: the loop body of run,
// without its wait. A queue that overflowed is left to a goroutine that
// catches up from the log, so that the worker goes on with the others.
func (s *Subscription) step(w *worker) {
	cb := s.cb
	cb.state.Store(cbScheduled) // what was signalled so far, Take gets
	k := &w.events
	k.many = cb.fn
	ended, overflowed := s.stepOn(k, &w.batch)
	// The worker's sink goes on to other subscriptions: nothing of this
	// one's may stay in it (a stream that ended may leave a batch unsent).
	clear(k.buf)
	k.buf, k.many = k.buf[:0], nil
	// The broker's counter is added to once per few subscribers, by the
	// worker: two workers adding to it after every step would bounce its
	// cache line between them. An ended stream's finish adds its own, so
	// that it is counted before the end is seen.
	if s.delivered != 0 && !ended {
		w.delivered += s.take()
	}
	switch {
	case ended:
		s.finish()
	case overflowed:
		s.b.workers.run(func() {
			k := &sink{many: cb.fn}
			if !s.catchUp(k) || s.stopped(k) {
				s.finish()
				return
			}
			s.countDelivered()
			s.b.workers.schedule(s) // still scheduled: nothing else queues it
		})
	case !cb.state.CompareAndSwap(cbScheduled, cbIdle):
		cb.state.Store(cbScheduled) // signalled again meanwhile
		s.b.workers.schedule(s)
	}
}

// stepOn is step's delivery through k: what is queued, or a heartbeat
// when it is due and nothing was. It reports whether the stream ended,
// and whether the queue overflowed.
func (s *Subscription) stepOn(k *sink, scratch *[]*subscription.Event) (ended, overflowed bool) {
	cb := s.cb
	got, overflowed, ok := s.drain(k, scratch)
	switch {
	case !ok:
		return true, false
	case got && cb.beat != nil:
		cb.beat.Reset(s.opt.Heartbeat)
	case !got && cb.beatDue.Swap(false):
		if !s.heartbeat(k) {
			return true, false
		}
		cb.beat.Reset(s.opt.Heartbeat)
	}
	return s.stopped(k), overflowed
}

// finish ends a subscription delivered by Deliver: fn is not called
// again.
func (s *Subscription) finish() {
	cb := s.cb
	cb.state.Store(cbOver)
	if cb.beat != nil {
		cb.beat.Stop()
	}
	s.countDelivered()
	s.Close()
	cb.fn(nil)
	close(cb.ended)
}
