package broker

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidings/tidings/subscription"
)

// A subscriber that stops reading shows its lag growing, in commits and
// in time, then overflows and catches up from the log, while the others
// show none: one that keeps up, and a document stream that no commit
// concerns.
func TestSubscriptionStatsLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := spellsBroker(t)
		mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("quiet"), []byte(`{}`)) })
		coll := subscription.Collection("spells")

		keeping := &recorder{}
		mustSubscribe(t, b, coll, subscription.Options{}).Deliver(keeping.fn)
		quiet := mustSubscribe(t, b, subscription.Document(spell("quiet")), subscription.Options{})
		quiet.Deliver(func([]subscription.Event) bool { return true })

		// The slow one takes an event only when given a token.
		slow := mustSubscribe(t, b, coll, subscription.Options{Buffer: 4})
		tokens := make(chan int, 100)
		slowDone := make(chan struct{})
		go func() {
			defer close(slowDone)
			for range slow.Events() {
				if n := <-tokens; n < 0 {
					return
				}
			}
		}()
		tokens <- 1 // its start event
		synctest.Wait()

		// Three commits a second apart: the slow one holds them queued.
		for i := range 3 {
			mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell(fmt.Sprint(i)), []byte(`{}`)) })
			time.Sleep(time.Second)
		}
		synctest.Wait()
		n := 0
		for range b.Subscriptions() {
			n++
		}
		if n != 3 {
			t.Fatalf("Subscriptions lists %d, want 3", n)
		}
		// It was handed the first commit's event, and holds it waiting for
		// a token: two are queued, the oldest committed 2s ago.
		if st := slow.Stats(); st.Queued != 2 || st.Behind != 2 || st.Lag != 2*time.Second || st.CatchingUp || st.Overflows != 0 {
			t.Fatalf("slow subscriber after 3 commits: %+v; want 2 queued, 2 commits and 2s behind", st)
		}
		if st := quiet.Stats(); st.Behind != 0 || st.Lag != 0 || st.Position != b.Head() || st.Delivered != 1 {
			t.Fatalf("document stream no commit concerns: %+v; want nothing behind, at the head", st)
		}
		time.Sleep(2 * time.Second)
		if st := slow.Stats(); st.Lag != 4*time.Second {
			t.Fatalf("slow subscriber 2s later: lag %v, want 4s", st.Lag)
		}

		// More commits than its queue holds: it overflows.
		for i := 3; i < 10; i++ {
			mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell(fmt.Sprint(i)), []byte(`{}`)) })
		}
		synctest.Wait()
		st := slow.Stats()
		// Behind counts from its position, which moves once a batch: the
		// event it holds is counted too.
		if st.Overflows != 1 || st.Queued != 0 || st.Behind != 10 || st.Lag != 5*time.Second {
			t.Fatalf("slow subscriber after its overflow: %+v; want 1 overflow, nothing queued, 10 and 5s behind", st)
		}
		// Its next events come from the log, one token at a time.
		tokens <- 1
		tokens <- 1
		synctest.Wait()
		st = slow.Stats()
		if !st.CatchingUp || st.Behind >= 10 || st.Behind == 0 {
			t.Fatalf("slow subscriber reading the log: %+v; want catching up, fewer behind", st)
		}
		for range 20 {
			tokens <- 1
		}
		synctest.Wait()
		st = slow.Stats()
		if st.CatchingUp || st.Behind != 0 || st.Lag != 0 || st.Delivered != 11 || st.Position != b.Head() {
			t.Fatalf("slow subscriber caught up: %+v; want nothing behind, 11 events", st)
		}
		if st := keeping.events(); len(st) != 11 {
			t.Fatalf("the subscriber that keeps up has %d events", len(st))
		}
		for x := range b.Subscriptions() {
			if x.Behind != 0 || x.Lag != 0 {
				t.Fatalf("after catching up: %+v", x)
			}
		}

		all := b.Stats()
		if all.Commits != 11 || all.Overflows != 1 || all.Subscriptions != 3 || all.Commit.Count != 11 || all.Fsync.Count != 11 ||
			all.FirstQueue.Count != 10 || all.LastQueue.Count != 10 {
			t.Fatalf("broker stats %+v", all)
		}
		tokens <- -1
		slow.Close()
		<-slowDone
	})
}

// The histograms put each duration in the bucket of the smallest bound
// that holds it, and Quantile reads them back.
func TestLatencies(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{0, time.Microsecond, 1500 * time.Nanosecond, 3 * time.Millisecond, time.Hour} {
		h.observe(d)
	}
	l := h.snapshot()
	want := map[int]uint64{0: 2, 1: 1, 12: 1, histogramBuckets: 1} // 3ms: 4096µs is 2^12
	for i, c := range l.Counts {
		if c != want[i] {
			t.Fatalf("bucket %d (bound %v): %d, want %d (counts %v)", i, l.Bounds[min(i, len(l.Bounds)-1)], c, want[i], l.Counts)
		}
	}
	if l.Count != 5 || l.Sum != time.Hour+3*time.Millisecond+2500*time.Nanosecond {
		t.Fatalf("count %d, sum %v", l.Count, l.Sum)
	}
	if q := l.Quantile(0.5); q != 2*time.Microsecond {
		t.Fatalf("median %v, want the 2µs bound", q)
	}
	if q := l.Quantile(0.75); q != 4096*time.Microsecond {
		t.Fatalf("75th percentile %v", q)
	}
}

// Each subscription has an ID of its own, the same in its Stats and in
// Subscriptions, never 0 and never given again, not even by another
// broker.
func TestSubscriptionStatsID(t *testing.T) {
	b, other := spellsBroker(t), spellsBroker(t)
	coll := subscription.Collection("spells")
	a := mustSubscribe(t, b, coll, subscription.Options{})
	c := mustSubscribe(t, b, coll, subscription.Options{})
	d := mustSubscribe(t, other, coll, subscription.Options{})
	seen := map[uint64]bool{}
	for _, s := range []*Subscription{a, c, d} {
		id := s.Stats().ID
		if id == 0 || seen[id] || s.Stats().ID != id {
			t.Fatalf("ID %d (seen %v)", id, seen)
		}
		seen[id] = true
	}
	listed := map[uint64]bool{}
	for st := range b.Subscriptions() {
		listed[st.ID] = true
	}
	if len(listed) != 2 || !listed[a.Stats().ID] || !listed[c.Stats().ID] {
		t.Fatalf("Subscriptions lists IDs %v; want %d and %d", listed, a.Stats().ID, c.Stats().ID)
	}
	c.Close()
	e := mustSubscribe(t, b, coll, subscription.Options{})
	if id := e.Stats().ID; seen[id] || id == 0 {
		t.Fatalf("a new subscription has ID %d, given before", id)
	}
}
