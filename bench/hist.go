package main

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"time"
)

// Hist is a latency histogram with fixed log-linear buckets (as HDR
// histograms do): values below 2^histSub nanoseconds each have a bucket,
// and every power of two above is split into 2^histSub buckets, so any
// value is known within 1/2^histSub (6%). Adding is an index computation
// and an increment: no allocation, no lock. Each receiver owns one, and
// they are merged at the end.
type Hist struct {
	Counts [histBuckets]uint32
	N      uint64
	Max    int64
}

const (
	histSub     = 4
	histMaxExp  = 40 // 2^40 ns: 18 minutes, beyond any run
	histBuckets = (histMaxExp - histSub + 1) << histSub
)

func bucketOf(v uint64) int {
	if v < 1<<histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSub - 1 // v>>e is in [2^histSub, 2^(histSub+1))
	i := e<<histSub + int(v>>e)
	return min(i, histBuckets-1)
}

// lowerBound is the smallest value of bucket i.
func lowerBound(i int) uint64 {
	if i < 1<<histSub {
		return uint64(i)
	}
	e := i>>histSub - 1
	m := uint64(i&(1<<histSub-1) | 1<<histSub)
	return m << e
}

// Add records a latency of d nanoseconds (negative ones, from clocks read
// on two CPUs, count as zero).
func (h *Hist) Add(d int64) {
	d = max(d, 0)
	h.Counts[bucketOf(uint64(d))]++
	h.N++
	if d > h.Max {
		h.Max = d
	}
}

// Latency is histograms merged: the same buckets, counted in 64 bits,
// since a run's deliveries can exceed what one receiver's 32-bit counts
// hold. It travels as JSON from a client process, and is kept in
// results.json, as its non-empty buckets only.
type Latency struct {
	Counts []uint64
	N      uint64
	Max    int64
}

// latencyJSON is Latency on the wire: [bucket, count] pairs.
type latencyJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	N       uint64      `json:"n"`
	Max     int64       `json:"max"`
}

func (h Latency) MarshalJSON() ([]byte, error) {
	j := latencyJSON{N: h.N, Max: h.Max, Buckets: [][2]uint64{}}
	for i, c := range h.Counts {
		if c > 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(j)
}

func (h *Latency) UnmarshalJSON(b []byte) error {
	var j latencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = Latency{N: j.N, Max: j.Max, Counts: make([]uint64, histBuckets)}
	for _, p := range j.Buckets {
		if p[0] >= histBuckets {
			return fmt.Errorf("latency bucket %d out of range", p[0])
		}
		h.Counts[p[0]] = p[1]
	}
	return nil
}

// Add adds h's counts.
func (h *Latency) Add(o *Hist) {
	if h.Counts == nil {
		h.Counts = make([]uint64, histBuckets)
	}
	for i, c := range o.Counts {
		h.Counts[i] += uint64(c)
	}
	h.N += o.N
	h.Max = max(h.Max, o.Max)
}

// Merge adds o's counts.
func (h *Latency) Merge(o *Latency) {
	if h.Counts == nil {
		h.Counts = make([]uint64, histBuckets)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.Max = max(h.Max, o.Max)
}

// Quantile returns the latency below which a fraction q of the values
// fall: the middle of the bucket that holds it (the maximum for the top
// one).
func (h *Latency) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := uint64(q*float64(h.N) + 0.5)
	rank = min(max(rank, 1), h.N)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			v := int64(lo + (hi-lo)/2)
			return time.Duration(min(v, h.Max))
		}
	}
	return time.Duration(h.Max)
}
