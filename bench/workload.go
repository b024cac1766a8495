package main

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Workload is what one run does: how many subscribers follow the one set
// (for the peers, the one broadcast topic), how fast and how much the
// writer publishes, and for how long.
//
// A run has two phases. The first, at a light load that every system
// sustains (LightLoad deliveries per second, so LightLoad/Subs events per
// second), measures latency at equal load: latency measured while a
// system is saturated says mostly how far ahead its publisher may run
// (go-sse's Publish returns only once every subscriber has the event, so
// nothing ever queues). The second, at Rate (by default as fast as the
// slowest reader allows), measures deliveries per second, and latency
// under saturation.
type Workload struct {
	Subs          int           // subscribers
	Kind          string        // tidings' kind of subscription: set, collection or document
	LightLoad     int           // deliveries per second of the first phase; 0: no first phase
	LightDuration time.Duration // how long the first phase lasts
	Rate          int           // events per second of the second phase; 0: as fast as the slowest reader allows
	Size          int           // payload bytes
	Duration      time.Duration // how long the second phase lasts
	Stall         float64       // fraction of subscribers that stop reading for the run
	Window        int           // in-flight bound, in events, when Rate is 0
	Drain         time.Duration // how long to wait for the last events after the writer stops
}

// lightEvents is the number of events of the first phase, and their rate.
func (w *Workload) lightEvents() (n uint64, perSecond float64) {
	if w.LightLoad <= 0 || w.LightDuration <= 0 {
		return 0, 0
	}
	perSecond = float64(w.LightLoad) / float64(w.Subs)
	return uint64(max(1, perSecond*w.LightDuration.Seconds())), perSecond
}

// The kinds of tidings subscription: every one receives one event per
// commit, each carrying the payload.
const (
	KindSet        = "set"        // index items_by_topic matched on "bench"; each commit adds a document
	KindCollection = "collection" // the collection items; each commit adds a document
	KindDocument   = "document"   // one document; each commit replaces it
)

// stalled reports which subscribers stop reading: count of them, spread
// evenly over the indexes (every k-th), so that in-process and remote
// clients pick the same ones.
func (w *Workload) stalled() []bool {
	out := make([]bool, w.Subs)
	n := int(float64(w.Subs)*w.Stall + 0.5)
	if w.Stall > 0 && n == 0 {
		n = 1
	}
	for j := range n {
		out[j*w.Subs/n] = true
	}
	return out
}

func (w *Workload) check() error {
	switch {
	case w.Subs < 1:
		return fmt.Errorf("subscribers: %d", w.Subs)
	case w.Size < 64:
		return fmt.Errorf("size %d: the payload needs at least 64 bytes for its sequence number and time", w.Size)
	case w.Stall < 0 || w.Stall >= 1:
		return fmt.Errorf("stall fraction %g outside [0,1)", w.Stall)
	case w.Window < 1:
		return fmt.Errorf("window %d", w.Window)
	}
	switch w.Kind {
	case KindSet, KindCollection, KindDocument:
	default:
		return fmt.Errorf("kind %q: set, collection or document", w.Kind)
	}
	return nil
}

// The payload is the same JSON object for every system:
//
//	{"topic":"bench","pad":"xxxx…","seq":17,"t":1712345678901234567}
//
// padded to the workload's size. seq numbers the events from 1 (0 is a
// warm-up event, which only tells a subscriber that it is connected); t is
// the wall-clock time of publishing in Unix nanoseconds, comparable across
// the processes of one machine; topic puts the document in tidings' set.
// The receiver finds seq and t with a substring search from the end (each
// system puts the payload at or near the end of what it delivers, so the
// search is short whatever the envelope): no JSON decoding, no allocation.
var (
	keySeq = []byte(`"seq":`)
	keyT   = []byte(`,"t":`)
)

// appendPayload appends the payload of event seq published at t.
func appendPayload(dst []byte, seq uint64, t int64, size int) []byte {
	start := len(dst)
	var tail [64]byte
	end := append(tail[:0], `","seq":`...)
	end = strconv.AppendUint(end, seq, 10)
	end = append(end, `,"t":`...)
	end = strconv.AppendInt(end, t, 10)
	end = append(end, '}')
	dst = append(dst, `{"topic":"bench","pad":"`...)
	for len(dst)-start < size-len(end) {
		dst = append(dst, 'x')
	}
	return append(dst, end...)
}

// parseEvent finds seq and t in an event as any system delivers it (the
// payload, possibly inside an envelope). The payload ends the event, or
// nearly (a few closing braces of an envelope): the last 's' is almost
// always that of "seq", found in a few bytes; bytes.LastIndex (which
// hashes its way back, byte by byte) is the fallback for an envelope that
// has an 's' after the payload. The cost matters: at millions of
// deliveries a second, 50ns more per event is a tenth of a core.
func parseEvent(b []byte) (seq uint64, t int64, ok bool) {
	i := bytes.LastIndexByte(b, 's') - 1
	if i < 0 || !bytes.HasPrefix(b[i:], keySeq) {
		if i = bytes.LastIndex(b, keySeq); i < 0 {
			return 0, 0, false
		}
	}
	seq, rest, ok := parseUint(b[i+len(keySeq):])
	if !ok || !bytes.HasPrefix(rest, keyT) {
		return 0, 0, false
	}
	tt, _, ok := parseUint(rest[len(keyT):])
	return seq, int64(tt), ok
}

// parseUint reads the decimal digits at the start of b.
func parseUint(b []byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, b[i:], i > 0
}

// nowNano is the wall clock in Unix nanoseconds: what t in the payload is
// compared with, in this process or another one.
func nowNano() int64 { return time.Now().UnixNano() }
