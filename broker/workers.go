package broker

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/subscription"
)

// deliveryWorkers are the goroutines that call the callbacks of the
// subscriptions delivered with Subscription.Deliver.
//
// Why: a goroutine per subscriber costs a wake-up per subscriber per
// commit, and with thousands of subscribers those wake-ups queue behind
// each other and behind the committer on a few cores: the last
// subscriber hears of a commit long after the first. A few workers, one
// per processor, walk the subscribers that have something queued and call
// their callbacks one after the other, as the fastest in-process
// brokers do, with no scheduler in between.
//
// Isolation is kept two ways. A subscriber's events still go through its
// own bounded queue, so one that cannot keep up overflows and catches up
// from the log on a goroutine of its own, as with Batches. And a callback
// that blocks holds only the worker it runs on: a watchdog sees a worker
// that has been in one callback for two checks, stuckAfter apart, while others
// wait, and starts another worker; the surplus exits when idle.
type deliveryWorkers struct {
	mu     sync.Mutex
	cond   sync.Cond // workers wait on it, with mu
	ready  []*Subscription
	head   int // ready[head:] wait for a worker, in order of scheduling
	idle   int // workers waiting on cond
	all    []*worker
	target int
	closed bool
	// watch fires stuckAfter after work found every worker busy.
	watch    *time.Timer
	watching bool
	wg       sync.WaitGroup // workers and catch-up goroutines
	// delivered is the broker's count of events handed over.
	delivered *atomic.Int64
}

// stuckAfter is how long a worker may spend in one callback, while other
// subscribers wait, before another worker takes over the queue.
const stuckAfter = time.Millisecond

// worker is one delivery goroutine and its scratch space, reused from one
// subscriber to the next.
type worker struct {
	steps atomic.Uint64 // callbacks started: unchanged across a watch means stuck
	busy  atomic.Bool
	// seen is steps at the previous check, strikes the checks in a row
	// that found it in one callback; guarded by deliveryWorkers.mu.
	seen    uint64
	strikes int
	events  sink
	batch   []*subscription.Event
	// delivered is events handed over, not yet added to the broker's
	// counter (see step).
	delivered int64
	// took holds the subscribers taken from the line together; the
	// watchdog puts back into the line those of a stuck worker.
	took [16]atomic.Pointer[Subscription]
}

// schedule hands s to a worker, or to the end of the line of subscribers
// waiting for one. Called without locks but the queue's producer's (the
// commit lock), so it must not block: it takes the pool's lock, which
// nothing holds for long.
func (d *deliveryWorkers) schedule(s *Subscription) {
	d.mu.Lock()
	d.ready = append(d.ready, s)
	switch {
	case d.idle > 0:
		d.cond.Signal()
	case len(d.all) < d.target:
		d.start()
	default:
		d.watchLocked()
	}
	d.mu.Unlock()
}

func (d *deliveryWorkers) init(delivered *atomic.Int64) {
	d.delivered = delivered
	d.target = runtime.GOMAXPROCS(0)
	d.cond.L = &d.mu
}

// start starts a worker. Called with mu held. After close, which has
// stopped waiting for workers, one is started untracked, for a
// subscription closed since: it ends it and exits.
func (d *deliveryWorkers) start() {
	w := &worker{}
	d.all = append(d.all, w)
	if d.closed {
		go d.work(w)
		return
	}
	d.wg.Go(func() { d.work(w) })
}

// work runs w until it is not needed: the line is empty and enough
// workers wait already, or the broker closed.
func (d *deliveryWorkers) work(w *worker) {
	d.mu.Lock()
	for {
		if d.head == len(d.ready) {
			if d.closed || d.idle >= d.target {
				d.remove(w)
				d.mu.Unlock()
				return
			}
			d.idle++
			d.cond.Wait()
			d.idle--
			continue
		}
		// A few at a time, fewer when others wait for work too: one lock
		// for several subscribers, against the committer that schedules
		// them under the same lock.
		n := min(len(d.ready)-d.head, len(w.took), max(1, (len(d.ready)-d.head)/max(1, len(d.all))))
		for i := range n {
			w.took[i].Store(d.ready[d.head+i])
			d.ready[d.head+i] = nil
		}
		if d.head += n; d.head == len(d.ready) {
			d.ready, d.head = d.ready[:0], 0
		}
		if n > 1 {
			d.watchLocked() // the others taken wait behind each callback
		}
		d.mu.Unlock()
		for i := range n {
			// The watchdog takes back what a stuck worker has not begun.
			s := w.took[i].Swap(nil)
			if s == nil {
				continue
			}
			w.steps.Add(1)
			w.busy.Store(true)
			s.step(w)
			w.busy.Store(false)
		}
		if w.delivered != 0 {
			d.delivered.Add(w.delivered)
			w.delivered = 0
		}
		d.mu.Lock()
	}
}

// remove takes w out of the pool. Called with mu held.
func (d *deliveryWorkers) remove(w *worker) {
	for i, x := range d.all {
		if x == w {
			d.all[i] = d.all[len(d.all)-1]
			d.all[len(d.all)-1] = nil
			d.all = d.all[:len(d.all)-1]
			return
		}
	}
}

// watchLocked arms the watchdog, if it is not armed. Called with mu held.
func (d *deliveryWorkers) watchLocked() {
	if d.watching || d.closed {
		return
	}
	d.watching = true
	if d.watch == nil {
		d.watch = time.AfterFunc(stuckAfter, d.check)
	} else {
		d.watch.Reset(stuckAfter)
	}
}

// check is the watchdog. A worker in the callback it was in at the
// previous check gives back the subscribers it took but has not begun;
// at two checks in a row it is stuck, and with subscribers waiting one
// more worker is started for it. It watches again while any worker is
// busy.
func (d *deliveryWorkers) check() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.watching = false
	if d.closed {
		return
	}
	moving, busy := 0, false
	for _, w := range d.all {
		n := w.steps.Load()
		if n != w.seen || !w.busy.Load() {
			moving++
			w.strikes = 0
		} else {
			// In one callback since the last check: what it took and has
			// not begun goes back in line at once; it counts as stuck at
			// the second check in a row, so that a worker that the
			// operating system merely paused on a busy machine is not
			// replaced.
			for i := range w.took {
				if s := w.took[i].Swap(nil); s != nil {
					d.ready = append(d.ready, s)
				}
			}
			if w.strikes++; w.strikes < 2 {
				moving++
			}
		}
		busy = busy || w.busy.Load()
		w.seen = n
	}
	if d.head < len(d.ready) {
		d.cond.Broadcast()
		for ; moving < d.target; moving++ {
			d.start()
		}
	}
	if busy {
		d.watchLocked()
	}
}

// run runs fn on a goroutine of the pool's, which Close waits for: a
// subscriber's start, and its catching up from the log.
func (d *deliveryWorkers) run(fn func()) {
	d.mu.Lock()
	closed := d.closed
	if !closed {
		d.wg.Add(1)
	}
	d.mu.Unlock()
	go func() {
		if !closed {
			defer d.wg.Done()
		}
		fn()
	}()
}

// close lets the workers end once the line is empty, and waits for them
// and for the goroutines of run. Called after every subscriber was told
// that the broker is closing, so that they deliver their last events.
func (d *deliveryWorkers) close() {
	d.mu.Lock()
	d.closed = true
	if d.watch != nil {
		d.watch.Stop()
	}
	d.cond.Broadcast()
	d.mu.Unlock()
	d.wg.Wait()
}
