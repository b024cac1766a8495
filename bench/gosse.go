package main

import (
	"context"
	"strconv"
	"sync"

	sse "github.com/tmaxmax/go-sse"
)

// goSSE is github.com/tmaxmax/go-sse: its default provider Joe, without a
// Replayer (so nothing is kept for replay, as by default), and its Server
// for SSE. Joe sends each message to every subscriber in turn from one
// goroutine, and Publish waits for Joe to take the message.
type goSSE struct {
	joe    *sse.Joe
	lb     *loopback
	ctx    context.Context
	cancel context.CancelFunc
	subs   sync.WaitGroup
}

// goSSETopics is the one broadcast topic standing in for the set.
var goSSETopics = []string{sse.DefaultTopic}

func openGoSSE(tr string) func(w *Workload) (system, error) {
	return func(w *Workload) (system, error) {
		g := &goSSE{joe: &sse.Joe{}}
		g.ctx, g.cancel = context.WithCancel(context.Background())
		if tr == TransportSSE {
			var err error
			if g.lb, err = serveLoopback(&sse.Server{Provider: g.joe}); err != nil {
				return nil, err
			}
		}
		return g, nil
	}
}

// publish sends a message whose id is the sequence number (so that
// Last-Event-ID could resume, had the provider a Replayer) and whose data
// is the payload.
func (g *goSSE) publish(seq uint64, p []byte) error {
	m := &sse.Message{ID: sse.ID(strconv.FormatUint(seq, 10))}
	m.AppendData(string(p))
	return g.joe.Publish(m, goSSETopics)
}

// goSSEWriter is an in-process subscriber: go-sse's MessageWriter, which
// Joe calls for every message. A Message keeps its data private; the way
// to read it is to write it out, as a Session does to its response, here
// into a buffer that is reused.
type goSSEWriter struct {
	f   *fleet
	r   *receiver
	buf appendBuffer
}

func (m *goSSEWriter) Send(msg *sse.Message) error {
	m.buf = m.buf[:0]
	if _, err := msg.WriteTo(&m.buf); err != nil {
		return err
	}
	if seq, sent, ok := parseEvent(m.buf); ok {
		m.f.deliver(m.r, seq, sent, nowNano())
	}
	return nil
}

func (m *goSSEWriter) Flush() error { return nil }

// subscribe runs Joe.Subscribe, which returns when the subscription ends,
// in a goroutine of its own.
func (g *goSSE) subscribe(f *fleet, r *receiver) error {
	w := &goSSEWriter{f: f, r: r}
	g.subs.Go(func() {
		if err := g.joe.Subscribe(g.ctx, sse.Subscription{Client: w, Topics: goSSETopics}); err == nil || g.ctx.Err() != nil {
			return
		}
		f.disconnected(r)
	})
	return nil
}

func (g *goSSE) endpoint() Endpoint {
	return g.lb.endpoint(Endpoint{Format: TransportSSE, Method: "GET", Path: "/", Resume: ResumeLastEventID})
}

func (g *goSSE) close() {
	if g.lb != nil {
		g.lb.close()
	}
	g.cancel()
	g.joe.Shutdown(context.Background())
	g.subs.Wait()
}

// appendBuffer is an io.Writer that appends to itself.
type appendBuffer []byte

func (b *appendBuffer) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}
