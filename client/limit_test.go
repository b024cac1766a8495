package client

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// connCounter counts, per client connection (RemoteAddr), the streams the
// server has accepted (answered 200) and not yet ended, and the most ever
// open at once; and, through Authorize, every stream asked for.
type connCounter struct {
	mu       sync.Mutex
	open     map[string]int
	max      map[string]int
	asked    map[string]int
	accepted int
}

func newConnCounter() *connCounter {
	return &connCounter{open: map[string]int{}, max: map[string]int{}, asked: map[string]int{}}
}

func (cc *connCounter) authorize(r *http.Request, _ subscription.Target) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.asked[r.RemoteAddr]++
	return nil
}

// wrap counts a stream as open from its 200 until its handler returns.
func (cc *connCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, cc: cc, addr: r.RemoteAddr}
		defer func() {
			if sw.ok {
				cc.mu.Lock()
				cc.open[r.RemoteAddr]--
				cc.mu.Unlock()
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	cc   *connCounter
	addr string
	ok   bool
}

func (sw *statusWriter) WriteHeader(code int) {
	if code == http.StatusOK && !sw.ok {
		sw.ok = true
		cc := sw.cc
		cc.mu.Lock()
		cc.accepted++
		cc.open[sw.addr]++
		cc.max[sw.addr] = max(cc.max[sw.addr], cc.open[sw.addr])
		cc.mu.Unlock()
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// 250 subscriptions from one h2c client: all live, never more than the
// server's 100 streams on one connection (counted on the server side).
func TestManySubscriptions(t *testing.T) {
	const n = 250
	cc := newConnCounter()
	ts, b := server(t, func(s *transport.Server) { s.Authorize = cc.authorize })
	// No connection is open yet: the handler is read by each connection
	// after it is accepted.
	ts.Config.Handler = cc.wrap(ts.Config.Handler)

	c := &Client{URL: ts.URL, H2C: true, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	started := make(chan int, n)
	got := make(chan struct {
		i   int
		txn txlog.Txn
	}, n)
	var wg sync.WaitGroup
	for i := range n {
		target, err := subscription.Match("spells_by_element", fmt.Sprint("e", i))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := c.Subscribe(ctx, target, subscription.Options{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range sub.Events() {
				switch e.Type {
				case subscription.TypeStart:
					started <- i
				case subscription.TypeSet:
					got <- struct {
						i   int
						txn txlog.Txn
					}{i, e.Txn}
				}
			}
		}()
	}
	for range n {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatalf("not every subscription started: %d streams accepted", cc.accepted)
		}
	}
	// One commit reaches every set.
	txn, err := b.Commit(ctx, func(tx *broker.Tx) error {
		for i := range n {
			ref := txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}
			if err := tx.Create(ref, fmt.Appendf(nil, `{"element":"e%d"}`, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, n)
	for range n {
		select {
		case g := <-got:
			if g.txn != txn || seen[g.i] {
				t.Fatalf("subscription %d: event at txn %d (commit %d, seen before %v)", g.i, g.txn, txn, seen[g.i])
			}
			seen[g.i] = true
		case <-ctx.Done():
			t.Fatal("not every subscription received the commit")
		}
	}
	c.Close()
	wg.Wait()

	cc.mu.Lock()
	defer cc.mu.Unlock()
	asked := 0
	for addr, m := range cc.max {
		asked += cc.asked[addr]
		t.Logf("connection %s: at most %d streams at once, %d asked for", addr, m, cc.asked[addr])
		if m > transport.DefaultMaxStreamsPerConn {
			t.Errorf("connection %s held %d streams at once", addr, m)
		}
	}
	if cc.accepted < n {
		t.Errorf("%d streams accepted for %d subscriptions", cc.accepted, n)
	}
	if len(cc.max) < 3 {
		t.Errorf("%d connections for %d streams", len(cc.max), n)
	}
	t.Logf("%d connections, %d streams accepted, %d refused", len(cc.max), cc.accepted, asked-cc.accepted)
}
