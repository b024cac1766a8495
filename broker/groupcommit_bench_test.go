package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// appendOnlyLog makes Stage the whole append, write and fsync, so that the
// broker appends under its commit lock, one fsync per commit: the baseline
// of BenchmarkFileCommit, measured in the same run. Its Wait finds the
// record written already.
type appendOnlyLog struct{ txlog.Log }

func (l appendOnlyLog) Stage(ws []txlog.Write) (txlog.Txn, error) {
	txn, err := l.Log.Stage(ws)
	if err != nil {
		return 0, err
	}
	return txn, l.Log.Wait(txn)
}

// BenchmarkFileCommit commits on the file log under SyncBatch (every
// commit fsynced before it returns) from 1, 16 and 64 goroutines, with a
// set subscriber receiving every commit. "locked" appends under the
// commit lock; "staged" is the broker's commit: staged under the lock,
// fsynced outside it, shared by whoever waits at the same time.
//
//	go test -run '^$' -bench FileCommit -benchtime 2s -count 5 ./broker/
func BenchmarkFileCommit(b *testing.B) {
	for _, committers := range []int{1, 16, 64} {
		for _, mode := range []string{"locked", "staged"} {
			b.Run(fmt.Sprintf("committers=%d/%s", committers, mode), func(b *testing.B) {
				fl, err := txlog.OpenFile(b.TempDir(), txlog.FileOptions{})
				if err != nil {
					b.Fatal(err)
				}
				var lg txlog.Log = fl
				if mode == "locked" {
					lg = appendOnlyLog{fl}
				}
				br := benchBroker(b, Options{Log: lg, Checkpoint: CheckpointOptions{Disable: true}})
				fire, _ := subscription.Match("spells_by_element", "fire")
				s, err := br.Subscribe(context.Background(), fire, subscription.Options{})
				if err != nil {
					b.Fatal(err)
				}
				var received atomic.Int64
				go func() {
					for range s.Events() {
						received.Add(1)
					}
				}()
				defer s.Close()
				var next atomic.Int64
				syncs0 := fl.Syncs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for range committers {
					wg.Go(func() {
						for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
							id := fmt.Sprint(n)
							if _, err := br.Commit(context.Background(), func(tx *Tx) error {
								return tx.Upsert(txlog.Ref{Collection: "spells", ID: id}, elementDocs[1])
							}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
				b.ReportMetric(float64(b.N)/float64(fl.Syncs()-syncs0), "commits/fsync")
			})
		}
	}
}
