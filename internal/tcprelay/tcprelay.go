// Package tcprelay is a TCP relay on loopback for tests, whose connections
// a test cuts: some of them at random (a flaky network), or all of them
// with new ones refused until it is resumed (a partition).
package tcprelay

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Relay relays connections to a target address. Its methods are safe for
// concurrent use.
type Relay struct {
	t      testing.TB
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener          // nil while paused
	conns  map[net.Conn]net.Conn // client side → target side
	wg     sync.WaitGroup
	cuts   atomic.Int64
}

// Start relays from a new loopback address to target, until Close.
func Start(t testing.TB, target string) *Relay {
	t.Helper()
	r := &Relay{t: t, target: target, conns: map[net.Conn]net.Conn{}}
	r.listen("127.0.0.1:0")
	return r
}

// Addr is the relay's address (host:port).
func (r *Relay) Addr() string { return r.addr }

func (r *Relay) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.ln, r.addr = ln, ln.Addr().String()
	r.mu.Unlock()
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns[c] = s
			r.mu.Unlock()
			r.wg.Go(func() { r.pipe(c, s, c, s) })
			r.wg.Go(func() { r.pipe(c, s, s, c) })
		}
	})
}

// pipe copies src to dst, then closes both sides of the pair.
func (r *Relay) pipe(c, s net.Conn, dst io.Writer, src io.Reader) {
	io.Copy(dst, src)
	c.Close()
	s.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// Cut closes each live connection with probability prob, and returns how
// many it closed.
func (r *Relay) Cut(rng *rand.Rand, prob float64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for c, s := range r.conns {
		if prob >= 1 || rng.Float64() < prob {
			c.Close()
			s.Close()
			delete(r.conns, c)
			n++
		}
	}
	r.cuts.Add(int64(n))
	return n
}

// Cuts is how many connections Cut and Pause closed.
func (r *Relay) Cuts() int64 { return r.cuts.Load() }

// Pause closes every connection and refuses new ones, until Resume.
func (r *Relay) Pause() {
	r.mu.Lock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	r.mu.Unlock()
	r.Cut(nil, 1)
}

// Resume takes connections again, on the same address.
func (r *Relay) Resume() { r.listen(r.addr) }

// Close stops the relay and waits for its goroutines.
func (r *Relay) Close() {
	r.Pause()
	r.wg.Wait()
}
