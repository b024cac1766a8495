package transport

import (
	"errors"
	"iter"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/broker"
)

// Protocols of the streams, as Stats and Streams name them.
const (
	ProtocolSSE    = "sse"
	ProtocolNDJSON = "ndjson"
)

// Stats is a snapshot of a Server's counters, since it started serving.
type Stats struct {
	// Open is the streams open now, by protocol (ProtocolSSE,
	// ProtocolNDJSON).
	Open map[string]int64
	// Refused counts the requests answered with an error, by HTTP status:
	// 400, 401, 403, 404, 405, 408, 410, 413, 415, 429, 500, 503.
	Refused map[int]int64
	// WriteTimeouts counts the streams cut off because a write missed
	// WriteTimeout: clients that stopped reading.
	WriteTimeouts int64
	// BytesWritten is what streams have written (events, heartbeats,
	// endings; not the responses' headers).
	BytesWritten int64
	// FeedPages counts the feed requests answered with a page, and
	// FeedCollapsed those of them that a read started by another
	// request answered (long-polls waiting together).
	FeedPages, FeedCollapsed int64
}

// counters are a Server's, added to as it serves.
type counters struct {
	open                                           [2]atomic.Int64 // by protocolIndex
	refused                                        [len(refusalStatuses)]atomic.Int64
	writeTimeouts, bytesWritten, feeds, feedShared atomic.Int64
}

// refusalStatuses are the statuses the Server answers errors with.
var refusalStatuses = [...]int{400, 401, 403, 404, 405, 408, 410, 413, 415, 429, 500, 503}

func protocolIndex(p string) int {
	if p == ProtocolNDJSON {
		return 1
	}
	return 0
}

// refused counts an error response.
func (c *counters) refusedWith(status int) {
	if i := slices.Index(refusalStatuses[:], status); i >= 0 {
		c.refused[i].Add(1)
	}
}

// wrote counts a stream's write of n bytes, or its failure.
func (c *counters) wrote(n int, err error) {
	if err == nil {
		c.bytesWritten.Add(int64(n))
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		c.writeTimeouts.Add(1)
	}
}

// Stats returns the Server's counters. Each is read on its own, not all
// at one instant.
func (s *Server) Stats() Stats {
	c := &s.counters
	st := Stats{
		Open:          map[string]int64{ProtocolSSE: c.open[0].Load(), ProtocolNDJSON: c.open[1].Load()},
		Refused:       map[int]int64{},
		WriteTimeouts: c.writeTimeouts.Load(),
		BytesWritten:  c.bytesWritten.Load(),
		FeedPages:     c.feeds.Load(),
		FeedCollapsed: c.feedShared.Load(),
	}
	for i, status := range refusalStatuses {
		if n := c.refused[i].Load(); n > 0 {
			st.Refused[status] = n
		}
	}
	return st
}

// StreamStats is what an operator sees of one open stream.
type StreamStats struct {
	Protocol string // ProtocolSSE or ProtocolNDJSON
	Remote   string // the client's address
	Started  time.Time
	Detached bool // see Server.Detach
	// ConnStreams is the streams open on the stream's connection (0 on a
	// server not set up with ConfigureServer, which does not count them).
	ConnStreams int
	// Subscriptions are the figures of its subscriptions (one, or those
	// of a multiplexed stream), by name ("" for the only one).
	Subscriptions map[string]broker.SubscriptionStats
}

// Streams returns the figures of every open stream, in no particular
// order.
func (s *Server) Streams() iter.Seq[StreamStats] {
	return func(yield func(StreamStats) bool) {
		s.mu.Lock()
		list := make([]*stream, 0, len(s.streams))
		for st := range s.streams {
			list = append(list, st)
		}
		s.mu.Unlock()
		for _, st := range list {
			if info, ok := st.stats(); ok && !yield(info) {
				return
			}
		}
	}
}

// stats returns the stream's figures; false if it has no subscriptions
// yet (it is starting) or any more.
func (st *stream) stats() (StreamStats, bool) {
	st.mu.Lock()
	ps := st.ps
	info := StreamStats{Protocol: st.protocol, Remote: st.remote, Started: st.started, Detached: st.detached,
		ConnStreams: st.conn.Streams()}
	st.mu.Unlock()
	if ps == nil {
		return info, false
	}
	info.Subscriptions = make(map[string]broker.SubscriptionStats, len(ps.list))
	for i := range ps.list {
		p := &ps.list[i]
		if p.sub == nil {
			return info, false
		}
		info.Subscriptions[p.name] = p.sub.Stats()
	}
	return info, true
}
