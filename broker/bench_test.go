package broker

// Benchmarks of matching and delivery: a commit among idle subscriptions,
// fan-out to many subscribers, and catching up from the log. Run them with
//
//	go test -run '^$' -bench 'CommitIdleSubscriptions|Fanout|CatchUp' -benchtime=1s -timeout 20m ./broker/
//
// in about 25 s on two cores, at a peak of about 2.2 GB of memory (two
// brokers of 500k documents, one with 1M subscriptions). -benchtime=1x
// takes about 17 s; it is enough for the fan-out and catch-up figures and
// the interleaved commit ratio, not for the per-size commit ns/op.
//
// Each benchmark builds its state once, outside the timed loop.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// numGC returns the number of garbage collections so far.
func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// BenchmarkCommitIdleSubscriptions measures a one-write commit (an update
// of a spell that moves it between the index sets element=fire and
// element=water) while 1k or 1M idle subscriptions exist on other
// documents and other index terms, none of which the commit concerns. A
// write is matched by hashed keys, never by a scan (the broker package
// doc, Delivery), so its cost should not grow with unrelated
// subscriptions. Half are document streams on documents of "others"; the
// other half set streams on spells_by_element with terms no spell has,
// every 16th on the "others" collection instead, some asking for update
// events (which makes every spells update look up its member sets), with
// assorted fields.
//
// Two brokers are built, identical but for the number of subscriptions:
// both hold the same 500k documents in "others" (a document stream needs
// its document), so that only the subscriptions differ. Sub-benchmarks:
//
//   - subs=1000, subs=1000000: commits on one broker. B/sub is the live
//     heap per subscription (after GC, before and after the Subscribe
//     calls; they are never iterated, so no event ever reaches them); GCs
//     counts the collections during the timed loop.
//   - interleaved: blocks of commits on the two brokers in turn, so that
//     the noise of a shared machine falls on both alike; x1k is the 1M
//     broker's time over the 1k broker's, which should stay within 1.2
//     (1 when matching ignores unrelated subscriptions entirely). ns/op
//     there is one block on each broker.
func BenchmarkCommitIdleSubscriptions(b *testing.B) {
	sizes := []int{1_000, 1_000_000}
	ref := txlog.Ref{Collection: "spells", ID: "written"}
	var brokers []*Broker
	var perSub []float64
	for _, n := range sizes {
		br, bytes := idleBroker(b, ref, n)
		brokers, perSub = append(brokers, br), append(perSub, bytes)
	}
	commits := make([]int, len(brokers))
	commit := func(b *testing.B, k int) {
		commits[k]++
		benchCommit(b, brokers[k], func(tx *Tx) error { return tx.Replace(ref, elementDocs[commits[k]&1]) })
	}
	for k, n := range sizes {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			gcs := numGC()
			for b.Loop() {
				commit(b, k)
			}
			b.ReportMetric(perSub[k], "B/sub")
			b.ReportMetric(float64(numGC()-gcs), "GCs")
		})
	}
	b.Run("interleaved", func(b *testing.B) {
		const block = 500
		var elapsed [2]time.Duration
		for b.Loop() {
			for k := range brokers {
				start := time.Now()
				for range block {
					commit(b, k)
				}
				elapsed[k] += time.Since(start)
			}
		}
		for k, n := range sizes {
			b.ReportMetric(float64(elapsed[k].Nanoseconds())/float64(b.N*block), fmt.Sprintf("ns/commit@%d", n))
		}
		b.ReportMetric(float64(elapsed[1])/float64(elapsed[0]), "x1k")
	})
	for k, br := range brokers {
		if st := br.Stats(); st.Subscriptions != int64(sizes[k]) || st.EventsDelivered != 0 || st.BytesBuffered != 0 {
			b.Fatalf("idle subscriptions are not idle: %+v", st)
		}
	}
}

// idleBroker returns a broker with the spell ref, 500k documents in
// "others", and n idle subscriptions; and the live heap each subscription
// added.
func idleBroker(b *testing.B, ref txlog.Ref, n int) (*Broker, float64) {
	const docs, batch = 500_000, 1000
	ctx := context.Background()
	br := benchBroker(b, Options{})
	benchCommit(b, br, func(tx *Tx) error { return tx.Create(ref, elementDocs[0]) })
	for i := 0; i < docs; i += batch {
		benchCommit(b, br, func(tx *Tx) error {
			for j := i; j < i+batch; j++ {
				if err := tx.Create(txlog.Ref{Collection: "others", ID: fmt.Sprint("o", j)}, fmt.Appendf(nil, `{"n":%d,"element":"fire"}`, j)); err != nil {
					return err
				}
			}
			return nil
		})
	}

	fieldSets := []subscription.Fields{0, subscription.FieldAction, subscription.DefaultFields | subscription.FieldDiff | subscription.FieldPrev, subscription.DefaultFields | subscription.FieldIndex}
	before := liveHeap()
	for i := range n {
		j := i / 2
		opt := subscription.Options{Fields: fieldSets[j%len(fieldSets)]}
		var target subscription.Target
		switch {
		case i%2 == 0:
			target = subscription.Document(txlog.Ref{Collection: "others", ID: fmt.Sprint("o", j%docs)})
		case j%16 == 15:
			target = subscription.Collection("others")
		default:
			var err error
			if target, err = subscription.Match("spells_by_element", fmt.Sprint("term", j)); err != nil {
				b.Fatal(err)
			}
			opt.Updates = j%3 == 0
		}
		if _, err := br.Subscribe(ctx, target, opt); err != nil {
			b.Fatal(err)
		}
	}
	return br, float64(liveHeap()-before) / float64(n)
}

// BenchmarkFanout measures the delivery of one commit to 1k, 10k and 100k
// subscribers of one set (spells_by_element = fire), each drained by its
// own goroutine ranging over Events. Each commit moves one spell into or
// out of the set, so every subscriber receives exactly one event per
// commit.
//
// One op is one commit and its complete delivery: the loop waits until
// every consumer has received the commit's event (the consumer whose
// receipt completes the count signals) before the next commit. So ns/op is
// the latency from the commit to its last consumer, and deliveries/s is
// subscribers × commits / elapsed time: events handed to consumers per
// second, from commit to each consumer receiving it. allocs/op includes,
// spread over the run, two allocations per subscriber on its first event
// (its queue's ring and its batch); none is per delivery.
//
// deliver/subs=N is the same with Subscription.Deliver: the callbacks run
// on the broker's delivery workers instead of a goroutine per subscriber.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanout(b, n, false) })
	}
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("deliver/subs=%d", n), func(b *testing.B) { benchFanout(b, n, true) })
	}
}

func benchFanout(b *testing.B, n int, deliver bool) {
	ctx := context.Background()
	br := benchBroker(b, Options{})
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	benchCommit(b, br, func(tx *Tx) error { return tx.Create(ref, elementDocs[0]) })
	fire, err := subscription.Match("spells_by_element", "fire")
	if err != nil {
		b.Fatal(err)
	}

	var (
		received atomic.Int64 // set events received by all consumers
		want     atomic.Int64 // the count that completes the current commit
		wrong    atomic.Int64 // events other than start, set, and the final error
		complete = make(chan struct{}, 1)
		started  sync.WaitGroup
		running  sync.WaitGroup
	)
	started.Add(n)
	for range n {
		s, err := br.Subscribe(ctx, fire, subscription.Options{})
		if err != nil {
			b.Fatal(err)
		}
		take := func(e *subscription.Event) {
			switch {
			case e.Type == subscription.TypeStart:
				started.Done()
			case e.Type == subscription.TypeSet:
				if received.Add(1) == want.Load() {
					complete <- struct{}{}
				}
			case e.Type == subscription.TypeError && e.Action == subscription.CodeShuttingDown:
			default:
				wrong.Add(1)
			}
		}
		if deliver {
			ended := s.Deliver(func(batch []subscription.Event) bool {
				for i := range batch {
					take(&batch[i])
				}
				return true
			})
			running.Go(func() { <-ended })
			continue
		}
		running.Go(func() {
			for e := range s.Events() {
				take(&e)
			}
		})
	}
	started.Wait()

	b.ReportAllocs()
	commits := 0
	for b.Loop() {
		commits++
		// Set before the commit, so that the consumer completing the count
		// reads it.
		want.Store(int64(commits * n))
		benchCommit(b, br, func(tx *Tx) error { return tx.Replace(ref, elementDocs[commits&1]) })
		<-complete
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")

	br.Close() // ends every consumer's stream with shutting_down
	running.Wait()
	if got := received.Load(); got != int64(commits*n) || wrong.Load() != 0 {
		b.Fatalf("received %d events for %d commits × %d subscribers, and %d unexpected ones", got, commits, n, wrong.Load())
	}
}

// BenchmarkCatchUp measures the replay of 1M events from the log to a
// resuming subscriber: a log of 1M single-write commits (built once, in a
// memory log that retains them all), each moving one spell between fire
// and water; a subscriber resumes from the cursor right after the spell's
// creation, before all of them, and reads until it has received all 1M
// events. Document: a document stream on the spell (1M version events);
// set: a stream on the fire set (1M add and remove events, which replays
// each write's membership diff). allocs/event is the allocations of the
// whole run (subscribing included) per event replayed: near zero, since a
// replaying subscriber carves its events' JSON and cursor texts from
// chunks and diffs its set with buffers it reuses. cpu-ns/event is the
// process's CPU time (GC included) per event: steadier than events/s on a
// shared machine. file/document and file/set are the same over a file log
// (SyncNever, in a temporary directory), which reads and decodes every
// record from its segments.
func BenchmarkCatchUp(b *testing.B) {
	benchCatchUp(b, func(*testing.B) txlog.Log {
		return txlog.NewMemory(txlog.MemoryOptions{MaxRecords: catchUpEvents + 100, MaxBytes: 1 << 34})
	})
	b.Run("file", func(b *testing.B) {
		dir := b.TempDir()
		benchCatchUp(b, func(sb *testing.B) txlog.Log {
			l, err := txlog.OpenFile(dir, txlog.FileOptions{Sync: txlog.SyncNever, Logger: quietLogger})
			if err != nil {
				sb.Fatal(err)
			}
			return l
		})
	})
}

const catchUpEvents = 1_000_000

// benchCatchUp runs BenchmarkCatchUp's sub-benchmarks over a log that
// open returns, built by the first of them that runs (none when none is
// selected).
func benchCatchUp(b *testing.B, open func(*testing.B) txlog.Log) {
	const events = catchUpEvents
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	var br *Broker
	var cursor string
	// build runs in the first sub-benchmark: sb is that one, for Fatal.
	build := func(sb *testing.B) {
		var err error
		if br, err = New(Options{Schema: benchSchema, Log: open(sb), Logger: quietLogger}); err != nil {
			sb.Fatal(err)
		}
		created := benchCommit(sb, br, func(tx *Tx) error { return tx.Create(ref, elementDocs[0]) })
		cursor = txlog.Cursor{Log: br.LogID(), Pos: txlog.AfterTxn(created)}.String()
		for i := range events {
			benchCommit(sb, br, func(tx *Tx) error { return tx.Replace(ref, elementDocs[(i+1)&1]) })
		}
		// As the testing package does before a benchmark: the building's
		// garbage is not the replay's.
		runtime.GC()
	}
	// Closed when done, so that the next log's run does not carry this
	// one's records.
	defer func() {
		if br != nil {
			br.Close()
		}
	}()
	fire, err := subscription.Match("spells_by_element", "fire")
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		target subscription.Target
		typ    subscription.Type
	}{
		{"document", subscription.Document(ref), subscription.TypeVersion},
		{"set", fire, subscription.TypeSet},
	} {
		b.Run(tt.name, func(b *testing.B) {
			if br == nil {
				build(b)
			}
			b.ReportAllocs()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			cpu0 := cpuTime()
			for b.Loop() {
				s, err := br.Subscribe(context.Background(), tt.target, subscription.Options{Cursor: cursor})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for e := range s.Events() {
					if e.Type == tt.typ {
						if n++; n == events {
							break
						}
					} else if e.Type != subscription.TypeStart {
						b.Fatalf("unexpected event %s", e.JSON)
					}
				}
				if n != events {
					b.Fatalf("replayed %d events, want %d", n, events)
				}
			}
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(events*b.N), "cpu-ns/event")
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(events*b.N), "allocs/event")
		})
	}
}
