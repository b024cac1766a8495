package broker

import (
	"iter"
	"math/bits"
	"sort"
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Stats is a snapshot of the broker's counters and latencies.
type Stats struct {
	Subscriptions   int64 // open subscriptions
	Commits         int64 // transactions committed since start
	EventsDelivered int64 // events handed to subscribers' iterators
	CatchingUp      int64 // subscribers reading the log after an overflow or a resume
	BytesBuffered   int64 // bytes of events waiting in subscribers' queues
	// Overflows counts the times a subscriber's queue overflowed, so that
	// it went on from the log.
	Overflows int64
	// Conflicts counts the commits of this node run again because
	// another node appended first (on a txlog.Shared log; see ErrConflict).
	Conflicts int64

	// Commit is the time Commit takes, from its call to its return, for
	// commits that wrote something.
	Commit Latencies
	// Fsync is the part of a commit spent waiting for the log to make it
	// durable (txlog.Log.Wait): the fsync on a file log, shared by the
	// commits of one group.
	Fsync Latencies
	// FirstQueue and LastQueue are the time from a commit's start to its
	// first event in a subscriber's queue, and to its last, for commits
	// that some subscription follows.
	FirstQueue, LastQueue Latencies
}

type counters struct {
	subscriptions, commits, delivered, catchingUp, buffered, conflicts, overflows atomic.Int64

	commit, fsync, firstQueue, lastQueue histogram
}

// Stats returns the broker's counters and latencies. Each figure is read
// on its own, not all at one instant.
func (b *Broker) Stats() Stats {
	return Stats{
		Subscriptions:   b.stats.subscriptions.Load(),
		Commits:         b.stats.commits.Load(),
		EventsDelivered: b.stats.delivered.Load(),
		CatchingUp:      b.stats.catchingUp.Load(),
		BytesBuffered:   b.stats.buffered.Load(),
		Overflows:       b.stats.overflows.Load(),
		Conflicts:       b.stats.conflicts.Load(),
		Commit:          b.stats.commit.snapshot(),
		Fsync:           b.stats.fsync.snapshot(),
		FirstQueue:      b.stats.firstQueue.snapshot(),
		LastQueue:       b.stats.lastQueue.snapshot(),
	}
}

// Latencies is a histogram of durations, cumulative since the broker
// started: Counts[i] observations were at most Bounds[i] (and above the
// bound before), and the last count is of those above every bound. The
// bounds are powers of two microseconds, 1µs to about 17s, the same for
// every histogram.
type Latencies struct {
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Quantile returns the bound of the bucket that holds quantile q (0 to 1)
// of the observations: an upper estimate, within a factor of two. Zero
// when there is none.
func (l Latencies) Quantile(q float64) time.Duration {
	if l.Count == 0 {
		return 0
	}
	rank := uint64(q*float64(l.Count-1)) + 1
	var seen uint64
	for i, c := range l.Counts {
		if seen += c; seen >= rank {
			if i < len(l.Bounds) {
				return l.Bounds[i]
			}
			break
		}
	}
	return l.Bounds[len(l.Bounds)-1]
}

// histogramBuckets is the number of bounds: 1µs·2^i for i below it.
const histogramBuckets = 25

// latencyBounds are the histograms' bounds, shared by every snapshot.
var latencyBounds = func() []time.Duration {
	b := make([]time.Duration, histogramBuckets)
	for i := range b {
		b[i] = time.Microsecond << i
	}
	return b
}()

// histogram counts durations in fixed buckets with atomic adds: no lock,
// no allocation, a few nanoseconds on the commit path.
type histogram struct {
	counts [histogramBuckets + 1]atomic.Uint64
	sum    atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	us := uint64(max(d, 0)+time.Microsecond-1) / uint64(time.Microsecond) // rounded up
	i := 0
	if us > 1 {
		i = min(bits.Len64(us-1), histogramBuckets)
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) snapshot() Latencies {
	l := Latencies{Bounds: latencyBounds, Counts: make([]uint64, histogramBuckets+1), Sum: time.Duration(h.sum.Load())}
	for i := range l.Counts {
		l.Counts[i] = h.counts[i].Load()
		l.Count += l.Counts[i]
	}
	return l
}

// SubscriptionStats is what an operator sees of one open subscription.
type SubscriptionStats struct {
	// ID tells the subscription from the others of the process: assigned
	// at Subscribe, from 1 up, never reused (across brokers too). A front
	// that lists its streams' figures names their subscriptions by it, so
	// that a view of Subscriptions can tell which are whose.
	ID      uint64
	Target  subscription.Target
	Started time.Time
	// Position is the txn of the last event handed over: the stream has
	// everything up to it (its start txn before any).
	Position txlog.Txn
	// Behind is the commits delivered by the broker since the oldest one
	// this subscription has not been handed in full (its oldest queued
	// event's, or the first after Position while it reads the log), and
	// Lag how long ago that one was committed: zero for a subscription
	// that is keeping up. Exact within the last RecentCommits commits;
	// beyond, the figures of the oldest of those, so a floor.
	Behind int64
	Lag    time.Duration
	// Queued and QueuedBytes are the events waiting in its queue.
	Queued, QueuedBytes int
	// CatchingUp: it is reading the log, after an overflow or a resume.
	CatchingUp bool
	// Overflows counts its queue's overflows; Delivered the events it was
	// handed.
	Overflows, Delivered int64
}

// subscriptionIDs is the last ID given to a subscription (SubscriptionStats.ID).
var subscriptionIDs atomic.Uint64

// RecentCommits is how many of the last commits the broker remembers for
// SubscriptionStats' Behind and Lag.
const RecentCommits = 4096

// commitRing is the last RecentCommits commits delivered: their txn,
// their number, and when they started. Guarded by Broker.mu.
type commitRing struct {
	entries [RecentCommits]recentCommit
	next    int // where the next goes
	n       int // entries in use
}

type recentCommit struct {
	txn   txlog.Txn
	count int64 // commits delivered up to and with this one
	at    int64 // start of the commit, Unix ns
}

func (r *commitRing) add(c recentCommit) {
	r.entries[r.next] = c
	r.next = (r.next + 1) % RecentCommits
	r.n = min(r.n+1, RecentCommits)
}

// ordered returns the entries oldest first, in a copy.
func (r *commitRing) ordered() []recentCommit {
	out := make([]recentCommit, 0, r.n)
	start := (r.next - r.n + RecentCommits) % RecentCommits
	for i := range r.n {
		out = append(out, r.entries[(start+i)%RecentCommits])
	}
	return out
}

// behind returns how many of recent (oldest first; the last is the
// newest commit) come after pos, and when the first of those started.
func behind(recent []recentCommit, pos txlog.Txn) (n int64, since int64) {
	i := sort.Search(len(recent), func(i int) bool { return recent[i].txn > pos })
	if i == len(recent) {
		return 0, 0
	}
	last := recent[len(recent)-1]
	return last.count - recent[i].count + 1, recent[i].at
}

// Stats returns the subscription's figures now.
func (s *Subscription) Stats() SubscriptionStats {
	b := s.b
	b.mu.Lock()
	recent, published := b.recent.ordered(), b.published
	b.mu.Unlock()
	return s.stats(recent, published, time.Now())
}

// stats computes the figures, given the recent commits and the last one
// delivered.
func (s *Subscription) stats(recent []recentCommit, published txlog.Txn, now time.Time) SubscriptionStats {
	events, bytes, oldest, overflowed := s.sub.q.State()
	st := SubscriptionStats{
		ID:          s.id,
		Target:      s.sub.spec.target,
		Started:     s.started,
		Position:    txlog.Txn(s.shown.Load()),
		Queued:      events,
		QueuedBytes: bytes,
		CatchingUp:  s.catching.Load(),
		Overflows:   s.sub.q.Overflows(),
		Delivered:   s.total.Load(),
	}
	// What it has not been handed starts after its position when it reads
	// the log, at its oldest queued event when it is live, and nowhere
	// when its queue is empty: then it has every commit delivered so far,
	// those that concern it and those that do not.
	var from txlog.Txn
	switch {
	case overflowed || st.CatchingUp:
		from = st.Position
	case oldest != nil:
		from = oldest.Txn - 1
	default:
		st.Position = max(st.Position, published)
		return st
	}
	var since int64
	if st.Behind, since = behind(recent, from); st.Behind > 0 {
		st.Lag = max(now.Sub(time.Unix(0, since)), 0)
	}
	return st
}

// Subscriptions returns the figures of every open subscription, in no
// particular order. It holds the commit lock only to list them.
func (b *Broker) Subscriptions() iter.Seq[SubscriptionStats] {
	return func(yield func(SubscriptionStats) bool) {
		b.mu.Lock()
		var subs []*Subscription
		b.subs.each(func(s *subscriber) { subs = append(subs, s.owner) })
		recent, published := b.recent.ordered(), b.published
		b.mu.Unlock()
		now := time.Now()
		for _, s := range subs {
			if !yield(s.stats(recent, published, now)) {
				return
			}
		}
	}
}
