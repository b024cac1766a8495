package main

import (
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"
)

// Result is one run: one system over one transport, with one workload.
type Result struct {
	System    string  `json:"system"`
	Transport string  `json:"transport"`
	Subs      int     `json:"subs"`
	Stall     float64 `json:"stall"`
	NA        string  `json:"na,omitempty"`  // why it was not measured
	Err       string  `json:"err,omitempty"` // why it failed

	Events  uint64        `json:"events"`  // events published
	Elapsed time.Duration `json:"elapsed"` // of the second phase: from its first publish to the last delivery
	// Rate is deliveries per second to the subscribers that kept reading,
	// in the second phase.
	Rate float64 `json:"rate"`
	// Latency from publish to delivery, to the subscribers that kept
	// reading: at the light load of the first phase, and at the second's.
	LightP50, LightP99, LightP999 time.Duration
	P50, P99, P999                time.Duration
	BytesPerSub                   float64 `json:"bytes_per_sub"`       // heap and stacks, server side
	AllocsPerDelivery             float64 `json:"allocs_per_delivery"` // server side (and in-process receivers)
	// PublisherBlocked: the writer was still inside a publish when the run
	// ended: the system made it wait for subscribers.
	PublisherBlocked bool        `json:"publisher_blocked"`
	Fleet            FleetResult `json:"fleet"`
	// Rates are the deliveries/s of every repetition of the case (with
	// -repeat), of which this is the median.
	Rates []float64 `json:"rates,omitempty"`
}

// runOptions are how runs are made, beyond the workload.
type runOptions struct {
	// LocalClients runs HTTP clients in this process instead of a client
	// process (for tests: no second process, small counts).
	LocalClients bool
	// Progress receives a line a second while a run goes.
	Progress io.Writer
}

// memNow is the heap and goroutine stacks in use after collecting.
func memNow() (bytes uint64, mallocs uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, ms.Mallocs
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// run measures one driver with one workload.
func run(d driver, w Workload, opt runOptions) (res Result) {
	res = Result{System: d.System, Transport: d.Transport, Subs: w.Subs, Stall: w.Stall, NA: d.NA}
	if d.NA != "" {
		return res
	}
	var fl *fleet
	if d.Transport == TransportInProcess {
		fl = newFleet(&w) // the receivers' own state, before the baseline
	}
	base, _ := memNow()
	sys, err := d.open(&w)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer sys.close()

	// A system may offer both ways; the transport says which is measured.
	var aud audience
	if fl != nil {
		s := sys.(inProcess)
		for i := range fl.recv {
			if err := s.subscribe(fl, &fl.recv[i]); err != nil {
				res.Err = err.Error()
				return res
			}
		}
		aud = inProcessAudience{fl}
	} else {
		ep := sys.(overHTTP).endpoint()
		if opt.LocalClients {
			aud = startClients(ep, &w)
		} else if aud, err = spawnClients(ep, &w); err != nil {
			res.Err = err.Error()
			return res
		}
	}
	defer aud.close()

	// Warm-up events (seq 0) until every subscriber has received one: it
	// is connected and subscribed. Some systems say nothing before a first
	// event (go-sse sends no response header until then). They are spaced
	// so as to load the system less than the light phase does (at least
	// 20µs per subscriber, and ten times what a publish took): a system
	// busy delivering them would register its new subscribers late or
	// never (go-sse's Joe takes a subscription or a message at a time).
	readyIn := 30*time.Second + time.Duration(w.Subs)*2*time.Millisecond
	readyBy := time.Now().Add(readyIn)
	for !aud.ready() {
		if time.Now().After(readyBy) {
			res.Err = fmt.Sprintf("not every subscriber received a warm-up event in %v", readyIn)
			return res
		}
		t0 := time.Now()
		if err := sys.publish(0, appendPayload(nil, 0, nowNano(), w.Size)); err != nil {
			res.Err = err.Error()
			return res
		}
		time.Sleep(max(20*time.Millisecond, time.Duration(w.Subs)*20*time.Microsecond, 10*time.Since(t0)))
	}
	time.Sleep(100 * time.Millisecond) // the last warm-ups arrive
	mem, m0 := memNow()
	res.BytesPerSub = float64(int64(mem)-int64(base)) / float64(w.Subs)

	wr := &writer{sys: sys, aud: aud, w: &w}
	done := make(chan error, 1)
	start := time.Now()
	stopProgress := progress(opt.Progress, d, &w, aud, start)
	go func() { done <- wr.run(start) }()
	// The writer stops by itself at the end of the second phase, unless it
	// is stuck in a publish: the system waits for the stalled subscribers.
	// Their resumption (in finish) unsticks it.
	light, lightRate := w.lightEvents()
	expected := w.Duration + 2*time.Second
	if light > 0 {
		expected += time.Duration(float64(light) / lightRate * float64(time.Second))
	}
	select {
	case err = <-done:
	case <-time.After(expected):
		res.PublisherBlocked = true
	}
	if err != nil {
		res.Err = err.Error()
	}
	wr.stop.Store(true)
	res.Events = wr.started.Load()
	res.Fleet = aud.finish(res.Events, w.Drain)
	if res.PublisherBlocked {
		<-done
	}
	m1 := mallocs()
	stopProgress()
	if res.Fleet.Err != "" {
		res.Err = res.Fleet.Err
		return res
	}

	run := &res.Fleet.Run
	if ms := wr.mainStart.Load(); ms > 0 {
		res.Elapsed = time.Duration(res.Fleet.RunAt - ms)
	}
	if res.Elapsed > 0 {
		res.Rate = float64(run.ReceivedMain) / res.Elapsed.Seconds()
	}
	lat := &res.Fleet.Others.Latency
	res.P50, res.P99, res.P999 = lat.Quantile(0.5), lat.Quantile(0.99), lat.Quantile(0.999)
	lat = &res.Fleet.Others.LightLatency
	res.LightP50, res.LightP99, res.LightP999 = lat.Quantile(0.5), lat.Quantile(0.99), lat.Quantile(0.999)
	if n := res.Fleet.Others.Received + res.Fleet.Stalled.Received; n > 0 {
		res.AllocsPerDelivery = float64(m1-m0) / float64(n)
	}
	return res
}

// writer publishes the events of a run: events 1..light at the light
// load, then, for the workload's duration, at its rate, or as fast as the
// slowest reading subscriber allows, never more than two windows ahead of
// it. started is the last event whose publish began.
type writer struct {
	sys       system
	aud       audience
	w         *Workload
	started   atomic.Uint64
	mainStart atomic.Int64 // when the second phase began, Unix ns
	stop      atomic.Bool  // the run is over: publish nothing more
}

func (wr *writer) run(start time.Time) error {
	w := wr.w
	light, perSecond := w.lightEvents()
	window := uint64(w.Window)
	var end, mainStart time.Time
	for seq := uint64(1); !wr.stop.Load(); seq++ {
		now := time.Now()
		switch {
		case seq <= light:
			at := start.Add(time.Duration(float64(seq-1) / perSecond * float64(time.Second)))
			if d := at.Sub(now); d > 0 {
				time.Sleep(d)
			}
		case seq == light+1:
			mainStart, end = now, now.Add(w.Duration)
			wr.mainStart.Store(now.UnixNano())
		case !now.Before(end):
			return nil
		case w.Rate > 0:
			at := mainStart.Add(time.Duration(float64(seq-light-1) / float64(w.Rate) * float64(time.Second)))
			if d := at.Sub(now); d > 0 {
				time.Sleep(d)
			}
		case seq > light+2*window && (seq-1)%window == 0:
			if !wr.aud.waitMark(seq-1-window, end) {
				return nil // at the end of the run, still waiting
			}
		}
		p := appendPayload(make([]byte, 0, w.Size), seq, nowNano(), w.Size)
		wr.started.Store(seq)
		if err := wr.sys.publish(seq, p); err != nil {
			return err
		}
	}
	return nil
}

// progress prints a line a second: the run, the events delivered so far,
// and the rate over the last second. stop ends it.
func progress(out io.Writer, d driver, w *Workload, aud audience, start time.Time) (stop func()) {
	if out == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev uint64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := aud.delivered()
				fmt.Fprintf(out, "%-10s %-6s subs=%-6d stall=%-4g %4.0fs  delivered %11d  %9.0f/s\n",
					d.System, d.Transport, w.Subs, w.Stall, time.Since(start).Seconds(), n, float64(n-prev))
				prev = n
			}
		}
	}()
	return func() { close(done); <-finished }
}
