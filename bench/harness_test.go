package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// smallWorkload is a quick run: 20 subscribers, a light phase of about
// 50 events and a second phase of about 200, at fixed rates so that the
// count does not depend on the machine's speed.
func smallWorkload() Workload {
	return Workload{Subs: 20, Kind: KindSet, LightLoad: 2000, LightDuration: 500 * time.Millisecond,
		Rate: 1000, Size: 128, Duration: 200 * time.Millisecond, Window: 16, Drain: 10 * time.Second}
}

// checkComplete fails unless every subscriber received every event, in
// order, once.
func checkComplete(t *testing.T, r Result) {
	t.Helper()
	if r.Err != "" {
		t.Fatalf("%s/%s: %s", r.System, r.Transport, r.Err)
	}
	if r.Events < 100 {
		t.Errorf("%s/%s: only %d events published", r.System, r.Transport, r.Events)
	}
	for _, g := range []struct {
		name string
		g    GroupResult
	}{{"others", r.Fleet.Others}, {"stalled", r.Fleet.Stalled}} {
		want := uint64(g.g.Subs) * r.Events
		if g.g.Received != want || g.g.Lost != 0 || g.g.Repeated != 0 || !g.g.Complete {
			t.Errorf("%s/%s, %s: received %d of %d events, lost %d, repeated %d", r.System, r.Transport, g.name, g.g.Received, want, g.g.Lost, g.g.Repeated)
		}
	}
	if !r.Fleet.OthersComplete {
		t.Errorf("%s/%s: the subscribers that kept reading did not get every event before the stalled ones read again", r.System, r.Transport)
	}
}

// TestEverySystem runs every system over every transport it has, with the
// HTTP clients in this process, and checks that nothing was lost or
// reordered.
func TestEverySystem(t *testing.T) {
	for _, d := range drivers {
		if d.NA != "" {
			continue
		}
		t.Run(d.System+"/"+d.Transport, func(t *testing.T) {
			r := run(d, smallWorkload(), runOptions{LocalClients: true})
			checkComplete(t, r)
			if r.Rate <= 0 || r.LightP99 <= 0 || r.P99 <= 0 {
				t.Errorf("no rate or latency: %+v", r)
			}
		})
	}
}

// TestClientProcess runs the HTTP clients in a process of their own, as
// the command does: this test binary again.
func TestClientProcess(t *testing.T) {
	checkComplete(t, run(driverOf(t, "tidings", TransportSSE), smallWorkload(), runOptions{}))
}

// TestKinds: every kind of tidings subscription gets one event per commit.
func TestKinds(t *testing.T) {
	for _, kind := range []string{KindCollection, KindDocument} {
		for _, tr := range []string{TransportInProcess, TransportNDJSON} {
			t.Run(kind+"/"+tr, func(t *testing.T) {
				w := smallWorkload()
				w.Kind = kind
				checkComplete(t, run(driverOf(t, "tidings", tr), w, runOptions{LocalClients: true}))
			})
		}
	}
}

// TestStallTidings: subscribers that stop reading while the others go on
// receive everything once they read again, from the log (in process) or
// by resuming (over HTTP), and the others are not held up.
func TestStallTidings(t *testing.T) {
	for _, tr := range []string{TransportInProcess, TransportSSE, TransportNDJSON} {
		t.Run(tr, func(t *testing.T) {
			w := smallWorkload()
			w.Stall = 0.1
			w.Rate, w.Duration = 0, 500*time.Millisecond // as fast as the others read: overflow the stalled ones' queues
			r := run(driverOf(t, "tidings", tr), w, runOptions{LocalClients: true})
			checkComplete(t, r)
			if r.Fleet.Stalled.Subs != 2 {
				t.Errorf("%d stalled subscribers, want 2", r.Fleet.Stalled.Subs)
			}
			if tr == TransportInProcess && r.Events < 1100 {
				t.Logf("only %d events: the stalled subscribers' queues (1024) may not have overflowed", r.Events)
			}
		})
	}
}

func driverOf(t *testing.T, system, transport string) driver {
	for _, d := range drivers {
		if d.System == system && d.Transport == transport {
			return d
		}
	}
	t.Fatalf("no driver %s/%s", system, transport)
	return driver{}
}

func TestPayload(t *testing.T) {
	for _, size := range []int{64, 256, 4096} {
		p := appendPayload(nil, 12345, 1712345678901234567, size)
		if len(p) != size {
			t.Errorf("size %d: payload of %d bytes: %s", size, len(p), p)
		}
		// Inside another system's envelope, too.
		for _, b := range [][]byte{p, fmt.Appendf(nil, `{"type":"set","txn":17,"ts":3,"event":{"data":%s}}`, p)} {
			seq, ts, ok := parseEvent(b)
			if !ok || seq != 12345 || ts != 1712345678901234567 {
				t.Errorf("parseEvent(%s) = %d, %d, %v", b, seq, ts, ok)
			}
		}
	}
	if _, _, ok := parseEvent([]byte(`{"type":"start","txn":1}`)); ok {
		t.Error("parseEvent found a payload in a start event")
	}
}

func TestHist(t *testing.T) {
	for i := 1; i < histBuckets; i++ {
		if lowerBound(i) <= lowerBound(i-1) || bucketOf(lowerBound(i)) != i {
			t.Fatalf("bucket %d: lower bound %d, previous %d", i, lowerBound(i), lowerBound(i-1))
		}
	}
	var h Hist
	for v := 1; v <= 1000; v++ {
		h.Add(int64(v) * int64(time.Microsecond))
	}
	var l Latency
	l.Add(&h)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := l.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.07 || d < -0.07 {
			t.Errorf("quantile %g = %v, want %v within 7%%", c.q, got, c.want)
		}
	}
}

// TestOutputs: the table has a row for each run, and the chart is
// well-formed XML with a line per system and transport.
func TestOutputs(t *testing.T) {
	rep := &Report{Command: "go run ./bench/...", Machine: "test", Workload: smallWorkload(), Started: time.Now()}
	for _, n := range []int{1000, 10000} {
		for i, sys := range []string{"tidings", "go-sse", "centrifuge"} {
			for _, tr := range []string{TransportInProcess, TransportSSE} {
				r := Result{System: sys, Transport: tr, Subs: n, Events: 100, Rate: float64(1e6 / (i + 1) / (n / 1000)),
					P99: time.Duration(i+1) * time.Millisecond, LightP99: time.Millisecond}
				r.Fleet.OthersComplete = true
				rep.Results = append(rep.Results, r)
				r.Stall = 0.01
				rep.Results = append(rep.Results, r)
			}
		}
		rep.Results = append(rep.Results, Result{System: "r3labs", Transport: TransportInProcess, Subs: n, NA: "none"})
	}
	var md bytes.Buffer
	writeMarkdown(&md, rep)
	rows := 0
	for line := range strings.SplitSeq(md.String(), "\n") {
		if strings.HasPrefix(line, "| 1") {
			rows++
		}
	}
	if rows != len(rep.Results) {
		t.Errorf("%d table rows for %d results:\n%s", rows, len(rep.Results), md.String())
	}
	if !strings.Contains(md.String(), "| 2.00× |") {
		t.Errorf("no ratio of tidings to go-sse:\n%s", md.String())
	}

	var svg bytes.Buffer
	if err := writeSVG(&svg, rep); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	root, lines := "", 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "polyline" {
				lines++
			}
		}
	}
	if root != "svg" || lines != 2*6 {
		t.Errorf("root %q with %d polylines, want svg with 12 (6 series, 2 panels)", root, lines)
	}
}
