// Package fanouttest is what the fan-out benchmarks share: a count of how
// many clients have reached each mark (their n-th event), so that the
// committer can wait for the slowest without a channel per client.
package fanouttest

import (
	"sync"
	"testing"
	"time"
)

// Tracker counts the clients that have reached each mark. Marks complete
// in order: a client reaches n after every mark below it.
type Tracker struct {
	clients  int
	mu       sync.Mutex
	marks    map[int]*mark
	complete int // every client has reached it
}

type mark struct {
	left int
	done chan struct{}
}

// New returns a Tracker of the given number of clients.
func New(clients int) *Tracker { return &Tracker{clients: clients, marks: map[int]*mark{}} }

func (tr *Tracker) mark(n int) *mark {
	m := tr.marks[n]
	if m == nil {
		m = &mark{left: tr.clients, done: make(chan struct{})}
		tr.marks[n] = m
	}
	return m
}

// Reached is called by a client that has reached mark n. It is safe for
// concurrent use.
func (tr *Tracker) Reached(n int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := tr.mark(n)
	if m.left--; m.left == 0 {
		close(m.done)
		delete(tr.marks, n)
		tr.complete = n
	}
}

// Wait returns when every client has reached n; it fails the benchmark on
// an error from fail, or after 60s.
func (tr *Tracker) Wait(b testing.TB, n int, fail <-chan error) {
	tr.mu.Lock()
	if n <= tr.complete {
		tr.mu.Unlock()
		return
	}
	m := tr.mark(n)
	tr.mu.Unlock()
	select {
	case <-m.done:
	case err := <-fail:
		b.Fatal(err)
	case <-time.After(60 * time.Second):
		b.Fatalf("the clients did not all reach %d in 60s", n)
	}
}
