package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// BenchmarkClientEvents measures events/s through the client over
// loopback: each subscriber receives b.N events of a collection while
// another goroutine commits in a loop.
func BenchmarkClientEvents(b *testing.B) {
	for _, subs := range []int{1, 16} {
		for _, h2c := range []bool{false, true} {
			b.Run(fmt.Sprintf("subs=%d/h2c=%v", subs, h2c), func(b *testing.B) { benchEvents(b, subs, h2c) })
		}
	}
}

func benchEvents(b *testing.B, subs int, h2c bool) {
	ts, br := server(b, nil)
	c := &Client{URL: ts.URL, H2C: h2c}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var startWG, doneWG sync.WaitGroup
	var received atomic.Int64
	for range subs {
		sub, err := c.Subscribe(ctx, subscription.Collection("spells"), subscription.Options{})
		if err != nil {
			b.Fatal(err)
		}
		startWG.Add(1)
		doneWG.Add(1)
		go func() {
			defer doneWG.Done()
			n := 0
			for e := range sub.Events() {
				switch e.Type {
				case subscription.TypeStart:
					startWG.Done()
				case subscription.TypeSet:
					if n++; n == b.N {
						received.Add(int64(n))
						return
					}
				}
			}
		}()
	}
	startWG.Wait()

	stop := make(chan struct{})
	committed := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		data := []byte(`{"element":"fire"}`)
		for i := range b.N {
			select {
			case <-stop:
				committed <- nil
				return
			default:
			}
			_, err := br.Commit(context.Background(), func(tx *broker.Tx) error {
				return tx.Create(txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}, data)
			})
			if err != nil {
				committed <- err
				return
			}
		}
		committed <- nil
	}()
	doneWG.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	if err := <-committed; err != nil {
		b.Fatal(err)
	}
	if got := received.Load(); got != int64(subs*b.N) {
		b.Fatalf("received %d events, want %d", got, subs*b.N)
	}
	b.ReportMetric(float64(subs*b.N)/elapsed.Seconds(), "events/s")
}
