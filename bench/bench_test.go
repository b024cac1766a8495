package main

// BenchmarkFanout drives the harness's workload as a testing.B benchmark,
// for profiles of what limits tidings:
//
//	cd bench
//	go test -run '^$' -bench 'Fanout/tidings/inproc' -benchtime 1x -cpuprofile cpu.out .
//	go tool pprof -top cpu.out | head -40
//
// Each iteration is one whole run (setup excluded from nothing: use
// -benchtime 1x and read the metrics, not ns/op). Over HTTP the clients
// run in a process of their own, as with the command, so that the profile
// is the server's alone. -bench.subs sets the subscribers (default 1000).

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

var benchSubs = flag.Int("bench.subs", 1000, "subscribers for BenchmarkFanout")

func BenchmarkFanout(b *testing.B) {
	raiseFileLimit()
	for _, d := range drivers {
		if d.NA != "" {
			continue
		}
		b.Run(fmt.Sprintf("%s/%s/%d", d.System, d.Transport, *benchSubs), func(b *testing.B) {
			w := Workload{Subs: *benchSubs, Kind: KindSet, Size: 256, Duration: 5 * time.Second, Window: 32, Drain: 5 * time.Second}
			var rate, p99 float64
			for b.Loop() {
				r := run(d, w, runOptions{Progress: os.Stderr})
				if r.Err != "" {
					b.Fatal(r.Err)
				}
				rate += r.Rate
				p99 += float64(r.P99) / 1e6
			}
			b.ReportMetric(rate/float64(b.N), "deliveries/s")
			b.ReportMetric(p99/float64(b.N), "p99-ms")
		})
	}
}
