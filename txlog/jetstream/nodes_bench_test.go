package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// BenchmarkNodes: three broker nodes on one stream, R1 (one server) and
// R3 (an in-process three-server cluster), with 1 or 3 of them committing
// (a goroutine each, a document of its own). A subscriber on the node that
// does not commit first (node 2) follows the collection; reported: commits
// per second, the latency from the start of a commit to its delivery on
// that node (p50, p99), the commits run again because another node
// appended first, per commit, and those that gave up (ErrConflict after
// broker.MaxCommitAttempts), per commit.
func BenchmarkNodes(b *testing.B) {
	parent := b // the servers live as long as the whole benchmark
	var r1, r3 string
	for _, rep := range []int{1, 3} {
		for _, committers := range []int{1, 3} {
			b.Run(fmt.Sprintf("R%d/committers=%d", rep, committers), func(b *testing.B) {
				url := ""
				if rep == 1 {
					if r1 == "" {
						r1 = runServer(parent).ClientURL()
					}
					url = r1
				} else {
					if r3 == "" {
						r3 = runCluster(parent, 3)[0].ClientURL()
					}
					url = r3
				}
				name := newStreamName()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				openNode := func() *broker.Broker {
					l := openLog(b, connect(b, url), Options{Stream: name, Replicas: rep})
					n, err := broker.New(broker.Options{Log: l, Schema: spellSchema})
					if err != nil {
						b.Fatal(err)
					}
					return n
				}
				nodes := []*broker.Broker{openNode(), openNode(), openNode()}
				defer func() {
					for _, n := range nodes {
						n.Close()
					}
				}()
				sub, err := nodes[2].Subscribe(ctx, subscription.Collection("spells"), subscription.Options{Updates: true, Buffer: 1 << 16})
				if err != nil {
					b.Fatal(err)
				}
				var mu sync.Mutex
				started := map[txlog.Txn]time.Time{} // by the committer, once its commit returned
				arrived := map[txlog.Txn]time.Time{}
				seen := make(chan struct{})
				go func() {
					defer close(seen)
					for e := range sub.Events() {
						if e.Type == subscription.TypeSet {
							now := time.Now()
							mu.Lock()
							arrived[e.Txn] = now
							mu.Unlock()
						}
					}
				}()
				var wg sync.WaitGroup
				var gaveUp atomic.Int64 // commits that met MaxCommitAttempts conflicts
				var last txlog.Txn
				per := max(b.N/committers, 1)
				b.ResetTimer()
				start := time.Now()
				for c := range committers {
					wg.Go(func() {
						n := nodes[c]
						ref := txlog.Ref{Collection: "spells", ID: fmt.Sprint("n", c)}
						for i := range per {
							t0 := time.Now()
							txn, err := n.Commit(ctx, func(tx *broker.Tx) error {
								return tx.Upsert(ref, fmt.Appendf(nil, `{"element":"fire","i":%d}`, i))
							})
							if errors.Is(err, broker.ErrConflict) {
								gaveUp.Add(1)
								continue
							}
							if err != nil {
								b.Error(err)
								return
							}
							mu.Lock()
							started[txn] = t0
							last = max(last, txn)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				// Every commit reaches the subscriber on node 2.
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					mu.Lock()
					_, ok := arrived[last]
					mu.Unlock()
					if ok || time.Now().After(deadline) {
						break
					}
				}
				sub.Close()
				<-seen
				var lat []time.Duration
				for txn, t0 := range started {
					if t1, ok := arrived[txn]; ok {
						lat = append(lat, t1.Sub(t0))
					}
				}
				if len(lat) != len(started) {
					b.Fatalf("%d of %d commits delivered on node 2", len(lat), len(started))
				}
				slices.Sort(lat)
				var conflicts int64
				for _, n := range nodes {
					conflicts += n.Stats().Conflicts
				}
				b.ReportMetric(float64(len(started))/elapsed.Seconds(), "commits/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(conflicts)/float64(len(started)), "conflicts/commit")
				b.ReportMetric(float64(gaveUp.Load())/float64(len(started)), "gave-up/commit")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
