package main

import "time"

// audience is the subscribers of a run as the writer sees them, wherever
// they live: in process (a fleet the system delivers to), HTTP clients in
// this process (httpClients), or HTTP clients in a process of their own
// (remoteClients).
type audience interface {
	// ready reports whether every subscriber has received a warm-up event.
	ready() bool
	// delivered is the events received by all subscribers so far.
	delivered() uint64
	// waitMark returns true when every subscriber that keeps reading has
	// received event m (a multiple of the window), false at the deadline.
	waitMark(m uint64, deadline time.Time) bool
	// finish waits for the last event and returns what was received; see
	// fleet.finish.
	finish(last uint64, drain time.Duration) FleetResult
	close()
}

// FleetResult is what the subscribers of a run received.
type FleetResult struct {
	// Run is the subscribers that kept reading, as of the moment the last
	// of them received the last event (or the drain ran out): what their
	// delivery rate is computed from.
	Run GroupResult `json:"run"`
	// RunAt is that moment, Unix ns.
	RunAt int64 `json:"run_at"`
	// OthersComplete: every subscriber that kept reading received every
	// event before the stalled ones read again. False when a system made
	// everyone wait for the stalled ones.
	OthersComplete bool `json:"others_complete"`
	// Others and Stalled are the two groups at the very end, after the
	// stalled ones read again and drained.
	Others  GroupResult `json:"others"`
	Stalled GroupResult `json:"stalled"`
	// Err says why there is no result.
	Err string `json:"err,omitempty"`
}

// finish waits until every subscriber that kept reading has received
// event last, or none has received anything for drain, takes stock, lets
// the stalled subscribers read again, and waits until they too have
// received everything, or until nothing moves for stalledDrain (at least
// drain): a connection that has not been read for seconds may take
// seconds to move again, as TCP probes a window closed that long ever
// more slowly, and the server may have cut it off, after which the client
// waits and reconnects.
func (f *fleet) finish(last uint64, drain time.Duration) FleetResult {
	var res FleetResult
	seen, quietSince := f.delivered(), time.Now()
	for !f.reachedAll(last, false) && time.Since(quietSince) < drain {
		time.Sleep(2 * time.Millisecond)
		if n := f.delivered(); n != seen {
			seen, quietSince = n, time.Now()
		}
	}
	res.OthersComplete = f.reachedAll(last, false)
	res.Run = f.group(last, false)
	res.RunAt = time.Now().UnixNano()
	if res.OthersComplete {
		res.RunAt = res.Run.LastAt
	}
	f.resume()
	seen, quietSince = f.delivered(), time.Now()
	for !(f.reachedAll(last, false) && f.reachedAll(last, true)) && time.Since(quietSince) < max(drain, stalledDrain) {
		time.Sleep(5 * time.Millisecond)
		if n := f.delivered(); n != seen {
			seen, quietSince = n, time.Now()
		}
	}
	res.Others = f.group(last, false)
	res.Stalled = f.group(last, true)
	return res
}

// stalledDrain is the least time finish waits for stalled subscribers
// that read again and receive nothing.
const stalledDrain = 10 * time.Second

// inProcessAudience is a fleet delivered to by an in-process system.
type inProcessAudience struct{ *fleet }

func (a inProcessAudience) ready() bool { return a.allReady() }

func (a inProcessAudience) waitMark(m uint64, deadline time.Time) bool {
	return a.marks.wait(m, deadline)
}

// close releases receivers still blocked in a stall.
func (a inProcessAudience) close() {
	a.resume()
	close(a.stopped)
}
