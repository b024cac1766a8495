package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// system is one library under test, set up for one run: a broker, or a
// server, that the writer publishes to.
type system interface {
	// publish sends event seq, whose payload is p, to every subscriber.
	// It may block, if the system makes publishers wait for subscribers.
	// The system may keep p.
	publish(seq uint64, p []byte) error
	// close stops the system; every goroutine it started returns.
	close()
}

// inProcess is a system whose subscribers live in the same process: each
// delivers to its receiver from whatever goroutine the system calls it on.
type inProcess interface {
	system
	subscribe(f *fleet, r *receiver) error
}

// overHTTP is a system serving its subscribers over loopback HTTP.
type overHTTP interface {
	system
	endpoint() Endpoint
}

// The transports.
const (
	TransportInProcess = "inproc"
	TransportSSE       = "sse"
	TransportNDJSON    = "ndjson"
)

// driver is one system over one transport.
type driver struct {
	System, Transport string
	// NA, when set, says why this combination cannot be measured.
	NA   string
	open func(w *Workload) (system, error)
}

// drivers lists every system and transport, tidings first (the others
// are compared with it).
var drivers = []driver{
	{System: "tidings", Transport: TransportInProcess, open: openTidings(TransportInProcess)},
	{System: "tidings", Transport: TransportSSE, open: openTidings(TransportSSE)},
	{System: "tidings", Transport: TransportNDJSON, open: openTidings(TransportNDJSON)},
	{System: "tidings-detached", Transport: TransportInProcess, NA: "Server.Detach is for streams over HTTP/1.1"},
	{System: "tidings-detached", Transport: TransportSSE, open: openTidingsDetached(TransportSSE)},
	{System: "tidings-detached", Transport: TransportNDJSON, open: openTidingsDetached(TransportNDJSON)},
	{System: "go-sse", Transport: TransportInProcess, open: openGoSSE(TransportInProcess)},
	{System: "go-sse", Transport: TransportSSE, open: openGoSSE(TransportSSE)},
	{System: "go-sse", Transport: TransportNDJSON, NA: "SSE only"},
	{System: "centrifuge", Transport: TransportInProcess, open: openCentrifuge(TransportInProcess)},
	{System: "centrifuge", Transport: TransportSSE, open: openCentrifuge(TransportSSE)},
	{System: "centrifuge", Transport: TransportNDJSON, NA: "its HTTP streaming speaks its own protocol, not NDJSON events"},
	{System: "r3labs", Transport: TransportInProcess, NA: "no in-process subscriber API: a Stream's subscribers are unexported, made only by its HTTP handler"},
	{System: "r3labs", Transport: TransportSSE, open: openR3labs},
	{System: "r3labs", Transport: TransportNDJSON, NA: "SSE only"},
}

// stallBuffer is the send buffer of the server's connections to stalled
// clients, and their receive buffer. Left to the kernel, both grow to
// megabytes on loopback (autotuning: up to 4 MiB to send, 32 MiB to
// receive here), so that a client that stops reading holds up nothing
// within a run: the kernel reads for it, thousands of events. With 4 KiB
// at each end (which the kernel doubles for its bookkeeping), a client
// that stops reading pushes back on the server after a few dozen events,
// as a slow client on a real network would. The server does not know:
// the stalled clients connect to a second listener on the same server and
// handler, whose sockets have the small buffer; everyone else's keep the
// kernel's.
const stallBuffer = 4 << 10

// loopback is a real net/http server on 127.0.0.1, HTTP/1.1.
// It listens twice: for everyone, and for the stalled clients (see
// stallBuffer).
type loopback struct {
	srv      *http.Server
	ln, slow net.Listener
	served   sync.WaitGroup
}

func serveLoopback(h http.Handler) (*loopback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: sendBuffer(stallBuffer)}
	slow, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &loopback{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln, slow: slow}
	for _, ln := range []net.Listener{ln, slow} {
		l.served.Go(func() {
			if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				panic(err)
			}
		})
	}
	return l, nil
}

// endpoint completes ep with the listeners' addresses.
func (l *loopback) endpoint(ep Endpoint) Endpoint {
	ep.Addr, ep.StallAddr = l.ln.Addr().String(), l.slow.Addr().String()
	return ep
}

// close closes the listeners and every connection. Handlers return when
// they notice, which the systems' close waits for in their own way.
func (l *loopback) close() {
	l.srv.Close()
	l.served.Wait()
}
