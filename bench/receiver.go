package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// receiver is one subscriber's account of what it received: it checks
// that sequence numbers arrive in order and without gaps, and records the
// latency of each event. One goroutine at a time delivers to it (whichever
// the system calls it from); the atomics are read by the progress display
// and the wait for the last event.
type receiver struct {
	next     uint64 // the sequence number expected next
	got      uint64 // events received (seq ≥ 1, not repeated)
	gotMain  uint64 // of which in the second phase
	lost     uint64 // sequence numbers skipped
	repeated uint64 // events at or before one already received: repeated or out of order
	light    Hist   // latency in the first phase
	hist     Hist   // latency in the second phase
	stall    bool

	progress    atomic.Uint64 // next-1: the highest in-order event received
	lastAt      atomic.Int64  // when it received its last event, Unix ns
	ready       atomic.Bool   // it has received something: it is connected
	disconnects atomic.Int64  // times the system cut it off
}

// fleet is the receivers of a run, the side that a system delivers to:
// in process, or in a client process for the HTTP transports.
type fleet struct {
	recv    []receiver
	window  uint64
	light   uint64        // the last event of the first phase
	resumed chan struct{} // closed when stalled receivers may read again
	stopped chan struct{} // closed at the end: stalled receivers give up waiting
	once    sync.Once
	marks   tracker
}

func newFleet(w *Workload) *fleet {
	f := &fleet{
		recv:    make([]receiver, w.Subs),
		window:  uint64(w.Window),
		resumed: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	f.light, _ = w.lightEvents()
	others := 0
	for i, s := range w.stalled() {
		f.recv[i].next = 1
		f.recv[i].stall = s
		if !s {
			others++
		}
	}
	f.marks.init(others)
	return f
}

// deliver records event seq, published at sent, received at now (Unix
// ns). A stalled receiver blocks here on its first event of the run, so
// that whatever calls it stops reading until the run is over. It returns
// the time of receipt: later than now if it blocked.
func (f *fleet) deliver(r *receiver, seq uint64, sent, now int64) int64 {
	if seq == 0 { // warm-up
		if !r.ready.Load() {
			r.ready.Store(true)
		}
		return now
	}
	if r.stall {
		select {
		case <-f.resumed:
		default:
			select {
			case <-f.resumed:
			case <-f.stopped:
			}
			now = time.Now().UnixNano()
		}
	}
	switch {
	case seq == r.next:
	case seq > r.next:
		r.lost += seq - r.next
	default:
		r.repeated++
		return now
	}
	prev := r.next - 1
	r.next = seq + 1
	r.got++
	if seq <= f.light {
		r.light.Add(now - sent)
	} else {
		r.gotMain++
		r.hist.Add(now - sent)
	}
	r.lastAt.Store(now)
	r.progress.Store(seq)
	if !r.stall {
		for m := (prev/f.window + 1) * f.window; m <= seq; m += f.window {
			f.marks.reached(m)
		}
	}
	return now
}

// disconnected records that the system cut r off.
func (f *fleet) disconnected(r *receiver) { r.disconnects.Add(1) }

// delivered is the events received by every receiver together, so far.
func (f *fleet) delivered() uint64 {
	var n uint64
	for i := range f.recv {
		n += f.recv[i].progress.Load()
	}
	return n
}

// allReady reports whether every receiver has received a warm-up event.
func (f *fleet) allReady() bool {
	for i := range f.recv {
		if !f.recv[i].ready.Load() {
			return false
		}
	}
	return true
}

// reachedAll reports whether every receiver of the group (stalled or
// not) has received event last.
func (f *fleet) reachedAll(last uint64, stalled bool) bool {
	for i := range f.recv {
		r := &f.recv[i]
		if r.stall == stalled && r.progress.Load() < last {
			return false
		}
	}
	return true
}

// resume lets the stalled receivers read again.
func (f *fleet) resume() { f.once.Do(func() { close(f.resumed) }) }

// GroupResult is what one group of receivers (those that kept reading, or
// the stalled ones) received. Counts are summed over the group.
type GroupResult struct {
	Subs         int     `json:"subs"`
	Received     uint64  `json:"received"`      // events, in order, no repeats
	ReceivedMain uint64  `json:"received_main"` // of which in the second phase
	Lost         uint64  `json:"lost"`          // sequence numbers skipped or never received
	Repeated     uint64  `json:"repeated"`      // repeated or out of order
	Disconnects  int64   `json:"disconnects"`   // times the system cut one off
	Complete     bool    `json:"complete"`      // every one received every event
	Latency      Latency `json:"latency"`       // in the second phase
	LightLatency Latency `json:"light_latency"` // in the first phase
	LastAt       int64   `json:"last_at"`       // the latest receipt of the group's last event, Unix ns
}

// group sums the receivers of one group, as of now, counting as lost
// what they have not received up to last.
func (f *fleet) group(last uint64, stalled bool) GroupResult {
	g := GroupResult{Complete: true}
	for i := range f.recv {
		r := &f.recv[i]
		if r.stall != stalled {
			continue
		}
		g.Subs++
		p := r.progress.Load()
		g.Received += r.got
		g.ReceivedMain += r.gotMain
		g.Lost += r.lost
		if p < last {
			g.Lost += last - p
			g.Complete = false
		}
		g.Repeated += r.repeated
		g.Disconnects += r.disconnects.Load()
		g.Latency.Add(&r.hist)
		g.LightLatency.Add(&r.light)
		g.LastAt = max(g.LastAt, r.lastAt.Load())
	}
	if g.Repeated > 0 || g.Lost > 0 {
		g.Complete = false
	}
	return g
}

// tracker counts the receivers that have reached each multiple of the
// window, so that the writer can stay a bounded distance ahead of the
// slowest one. complete is the highest multiple every receiver has
// reached.
type tracker struct {
	mu       sync.Mutex
	n        int
	pending  map[uint64]int
	complete atomic.Uint64
	changed  chan struct{} // closed and replaced when complete moves
}

func (t *tracker) init(n int) {
	t.n, t.pending, t.changed = n, map[uint64]int{}, make(chan struct{})
}

func (t *tracker) reached(m uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.pending[m] + 1
	if c < t.n {
		t.pending[m] = c
		return
	}
	delete(t.pending, m)
	if m > t.complete.Load() {
		t.complete.Store(m)
		close(t.changed)
		t.changed = make(chan struct{})
	}
}

// wait returns true when every receiver has reached m, false at the
// deadline.
func (t *tracker) wait(m uint64, deadline time.Time) bool {
	for {
		t.mu.Lock()
		if t.complete.Load() >= m || t.n == 0 {
			t.mu.Unlock()
			return true
		}
		ch := t.changed
		t.mu.Unlock()
		d := time.Until(deadline)
		if d <= 0 {
			return false
		}
		timer := time.NewTimer(d)
		select {
		case <-ch:
			timer.Stop()
		case <-timer.C:
			return false
		}
	}
}
