package main

import (
	"strconv"
	"sync/atomic"
	"time"

	r3 "github.com/r3labs/sse/v2"
)

// r3labs is github.com/r3labs/sse/v2: one stream, "bench", with
// AutoReplay off (on, its default, it keeps every event ever published in
// memory and replays them all to each new subscriber). A stream's
// goroutine hands each event to every subscriber's channel (64 events) in
// turn, blocking on a full one; each subscriber's handler writes its
// events with one flush each.
type r3labs struct {
	srv              *r3.Server
	lb               *loopback
	subbed, unsubbed atomic.Int64
}

const r3labsStream = "bench"

func openR3labs(w *Workload) (system, error) {
	r := &r3labs{srv: r3.New()}
	r.srv.AutoReplay = false
	r.srv.OnSubscribe = func(string, *r3.Subscriber) { r.subbed.Add(1) }
	r.srv.OnUnsubscribe = func(string, *r3.Subscriber) { r.unsubbed.Add(1) }
	r.srv.CreateStream(r3labsStream)
	var err error
	if r.lb, err = serveLoopback(r.srv); err != nil {
		r.srv.Close()
		return nil, err
	}
	return r, nil
}

func (r *r3labs) publish(seq uint64, p []byte) error {
	r.srv.Publish(r3labsStream, &r3.Event{ID: strconv.AppendUint(nil, seq, 10), Data: p})
	return nil
}

func (r *r3labs) endpoint() Endpoint {
	return r.lb.endpoint(Endpoint{Format: TransportSSE, Method: "GET", Path: "/?stream=" + r3labsStream, Resume: ResumeLastEventID})
}

// close closes the connections, waits until the stream has let go of
// every subscriber, and only then closes the server: a handler whose
// connection ends sends its subscriber to the stream's goroutine, and
// blocks for ever if that goroutine has already returned (which
// Server.Close makes it do).
func (r *r3labs) close() {
	r.lb.close()
	for deadline := time.Now().Add(10 * time.Second); r.unsubbed.Load() < r.subbed.Load() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	r.srv.Close()
}
