package jetstream

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/txlog"
)

// benchLogs are the logs the benchmarks compare, made fresh for each run:
// the file log (SyncBatch: acknowledged once fsynced, concurrent appends
// sharing an fsync) beside JetStream on one embedded server (R1) and on an
// R3 stream of an in-process three-server cluster. A JetStream append is
// acknowledged once on a quorum of servers, not fsynced (see the package
// doc): the rows are not the same guarantee. The servers live as long as
// parent, the benchmark that runs the others.
func benchLogs(parent *testing.B) []struct {
	name string
	open func(b *testing.B) txlog.Log
} {
	var r1, r3 string
	return []struct {
		name string
		open func(b *testing.B) txlog.Log
	}{
		{"file", func(b *testing.B) txlog.Log {
			l, err := txlog.OpenFile(b.TempDir(), txlog.FileOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return l
		}},
		{"jetstream-r1", func(b *testing.B) txlog.Log {
			if r1 == "" {
				r1 = runServer(parent).ClientURL()
			}
			return openLog(b, connect(b, r1), Options{})
		}},
		{"jetstream-r3", func(b *testing.B) txlog.Log {
			if r3 == "" {
				r3 = runCluster(parent, 3)[0].ClientURL()
			}
			return openLog(b, connect(b, r3), Options{Replicas: 3})
		}},
	}
}

// benchWrites is a record of one write of a small document.
func benchWrites(i int) []txlog.Write {
	return []txlog.Write{{Ref: txlog.Ref{Collection: "spells", ID: strconv.Itoa(i)}, Action: txlog.ActionCreate,
		After: []byte(`{"name":"Fire Beak","element":"fire","cost":15}`)}}
}

// BenchmarkAppend: appends acknowledged per second with 1, 16 and 64
// appenders, each staging a record and waiting for it, in a loop.
func BenchmarkAppend(b *testing.B) {
	for _, lg := range benchLogs(b) {
		for _, appenders := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/appenders=%d", lg.name, appenders), func(b *testing.B) {
				l := lg.open(b)
				defer l.Close()
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				b.ResetTimer()
				for range appenders {
					wg.Go(func() {
						for {
							i := int(next.Add(1))
							if i > b.N {
								return
							}
							txn, err := l.Stage(benchWrites(i))
							if err == nil {
								err = l.Wait(txn)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
			})
		}
	}
}

// BenchmarkRead: records read per second from the start of a log of
// 20,000 records.
func BenchmarkRead(b *testing.B) {
	const n = 20_000
	for _, lg := range benchLogs(b) {
		b.Run(lg.name, func(b *testing.B) {
			l := lg.open(b)
			defer l.Close()
			var last txlog.Txn
			for i := range n {
				txn, err := l.Stage(benchWrites(i))
				if err != nil {
					b.Fatal(err)
				}
				last = txn
			}
			if err := l.Wait(last); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			b.ResetTimer()
			for range b.N {
				got := 0
				for _, err := range l.Read(txlog.Cursor{Log: l.ID()}) {
					if err != nil {
						b.Fatal(err)
					}
					got++
				}
				if got != n {
					b.Fatalf("read %d records of %d", got, n)
				}
			}
			b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
