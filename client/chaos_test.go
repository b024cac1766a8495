package client

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/tcprelay"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// chaosEvent is what the test compares of an event.
type chaosEvent struct {
	Type   subscription.Type
	Txn    txlog.Txn
	Action string
}

func (e chaosEvent) String() string { return fmt.Sprintf("%s@%d:%s", e.Type, e.Txn, e.Action) }

// chaosTarget is a subscription of the chaos test and the model of the
// events it must receive.
type chaosTarget struct {
	name    string
	target  subscription.Target
	opt     subscription.Options
	doc     string // a document target's id
	coll    bool   // the collection
	element string // an index target's term
	want    []chaosEvent

	mu      sync.Mutex
	got     []chaosEvent
	started bool
}

// write is one write of a commit: the document's element before and after
// ("" for absent).
type chaosWrite struct {
	id            string
	before, after string
}

// expect adds to the model the events of one write committed at txn.
func (ct *chaosTarget) expect(txn txlog.Txn, w chaosWrite) {
	add := func(typ subscription.Type, action string) {
		ct.want = append(ct.want, chaosEvent{typ, txn, action})
	}
	switch {
	case ct.doc != "":
		if w.id != ct.doc {
			return
		}
		switch {
		case w.before == "":
			add(subscription.TypeVersion, "create")
		case w.after == "":
			add(subscription.TypeVersion, "delete")
		default:
			add(subscription.TypeVersion, "update")
		}
	case ct.coll:
		switch {
		case w.before == "":
			add(subscription.TypeSet, "add")
		case w.after == "":
			add(subscription.TypeSet, "remove")
		case ct.opt.Updates:
			add(subscription.TypeSet, "update")
		}
	default:
		in, out := w.before == ct.element, w.after == ct.element
		switch {
		case !in && out:
			add(subscription.TypeSet, "add")
		case in && !out:
			add(subscription.TypeSet, "remove")
		case in && out && ct.opt.Updates:
			add(subscription.TypeSet, "update")
		}
	}
}

func (ct *chaosTarget) progress() (n int, started bool) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return len(ct.got), ct.started
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(deadline time.Time, cond func() bool) bool {
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// A proxy between client and server cuts connections at random while
// commits go on: every subscriber's events are exactly the committed
// sequence of its target, nothing lost, nothing repeated, in order
// (Guarantees 1, 3 and 4 of the broker package doc, through the client's
// own resuming).
func TestChaos(t *testing.T) {
	for _, mode := range []struct{ h2c, sse bool }{{false, false}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("h2c=%v,sse=%v", mode.h2c, mode.sse), func(t *testing.T) { testChaos(t, mode.h2c, mode.sse) })
	}
}

func testChaos(t *testing.T, h2c, sse bool) {
	const (
		docs    = 6
		commits = 500
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	ts, b := server(t, nil)
	p := tcprelay.Start(t, strings.TrimPrefix(ts.URL, "http://"))
	defer p.Close()
	c := &Client{URL: "http://" + p.Addr(), H2C: h2c, SSE: sse, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	defer c.Close()

	// The documents exist before their streams open.
	state := map[string]string{}
	for i := range docs {
		id := fmt.Sprint("d", i)
		state[id] = "fire"
		create(t, b, id, "fire")
	}

	var targets []*chaosTarget
	for _, id := range []string{"d0", "d1", "d2", "d3"} {
		targets = append(targets, &chaosTarget{name: "doc " + id, doc: id,
			target: subscription.Document(txlog.Ref{Collection: "spells", ID: id})})
	}
	for _, updates := range []bool{false, true} {
		targets = append(targets, &chaosTarget{name: fmt.Sprint("collection updates=", updates), coll: true,
			target: subscription.Collection("spells"), opt: subscription.Options{Updates: updates}})
	}
	for _, el := range []string{"fire", "water"} {
		for _, updates := range []bool{false, true} {
			target, err := subscription.Match("spells_by_element", el)
			if err != nil {
				t.Fatal(err)
			}
			targets = append(targets, &chaosTarget{name: fmt.Sprint("index ", el, " updates=", updates), element: el,
				target: target, opt: subscription.Options{Updates: updates}})
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, ct := range targets {
		sub, err := c.Subscribe(ctx, ct.target, ct.opt)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range sub.Events() {
				ct.mu.Lock()
				switch e.Type {
				case subscription.TypeStart:
					if ct.started {
						ct.got = append(ct.got, chaosEvent{e.Type, e.Txn, "start again"})
					}
					ct.started = true
				case subscription.TypeStatus:
				default:
					ct.got = append(ct.got, chaosEvent{e.Type, e.Txn, e.Action})
				}
				ct.mu.Unlock()
			}
			if err := sub.Err(); err != nil {
				t.Errorf("%s: %v", ct.name, err)
			}
		}()
	}

	// The cutter cuts from the start, subscriptions included.
	stop := make(chan struct{})
	cutterDone := make(chan struct{})
	rounds := 0
	go func() {
		defer close(cutterDone)
		crng := rand.New(rand.NewPCG(seed, 2))
		for {
			timer := time.NewTimer(time.Duration(2+crng.IntN(28)) * time.Millisecond)
			select {
			case <-stop:
				timer.Stop()
				return
			case <-timer.C:
			}
			p.Cut(crng, 0.5)
			rounds++
		}
	}()

	deadline := time.Now().Add(20 * time.Second)
	if !waitFor(deadline, func() bool {
		for _, ct := range targets {
			if _, ok := ct.progress(); !ok {
				return false
			}
		}
		return true
	}) {
		t.Fatal("not every subscription started")
	}

	commit := func(ids []string, after func(id string) string) {
		var ws []chaosWrite
		txn, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
			ws = ws[:0]
			for _, id := range ids {
				w := chaosWrite{id: id, before: state[id], after: after(id)}
				ref := txlog.Ref{Collection: "spells", ID: id}
				data := fmt.Appendf(nil, `{"element":%q,"n":%d}`, w.after, rng.Int())
				var err error
				switch {
				case w.before == "":
					err = tx.Create(ref, data)
				case w.after == "":
					err = tx.Delete(ref)
				default:
					err = tx.Replace(ref, data)
				}
				if err != nil {
					return err
				}
				ws = append(ws, w)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			state[w.id] = w.after
			for _, ct := range targets {
				ct.expect(txn, w)
			}
		}
	}
	elements := []string{"fire", "water", "earth"}
	for range commits {
		// One or two documents per commit, each created, changed or deleted.
		ids := []string{fmt.Sprint("d", rng.IntN(docs))}
		if rng.IntN(3) == 0 {
			if id := fmt.Sprint("d", rng.IntN(docs)); id != ids[0] {
				ids = append(ids, id)
			}
		}
		commit(ids, func(id string) string {
			if state[id] != "" && rng.IntN(4) == 0 {
				return ""
			}
			return elements[rng.IntN(len(elements))]
		})
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond) // spread the commits over the cuts
	}
	// The marker reaches every target.
	all := make([]string, docs)
	for i := range all {
		all[i] = fmt.Sprint("d", i)
	}
	commit(all, func(id string) string {
		if strings.HasSuffix(id, "0") {
			return "water"
		}
		return "fire"
	})

	ok := waitFor(deadline, func() bool {
		for _, ct := range targets {
			if n, _ := ct.progress(); n < len(ct.want) {
				return false
			}
		}
		return true
	})
	close(stop)
	<-cutterDone
	c.Close()
	wg.Wait()
	for _, ct := range targets {
		ct.mu.Lock()
		got := ct.got
		ct.mu.Unlock()
		if i := firstDiff(got, ct.want); i >= 0 {
			t.Errorf("%s: got %d events, want %d; first difference at %d:\n got %v\nwant %v",
				ct.name, len(got), len(ct.want), i, got[i:min(i+5, len(got))], ct.want[i:min(i+5, len(ct.want))])
		}
	}
	if !ok {
		t.Fatal("not every subscriber saw the marker in time")
	}
	t.Logf("%d commits, %d cut rounds, %d connections cut", commits+1, rounds, p.Cuts())
	if p.Cuts() == 0 {
		t.Fatal("no connection was cut")
	}
}

// firstDiff is the index of the first difference of got and want, -1 if
// they are equal.
func firstDiff(got, want []chaosEvent) int {
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			return i
		}
	}
	return -1
}

// waits records the delays of the client's reconnections, from its log.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) Enabled(context.Context, slog.Level) bool { return true }
func (w *waits) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *waits) WithGroup(string) slog.Handler            { return w }
func (w *waits) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "after" {
			w.mu.Lock()
			w.d = append(w.d, a.Value.Duration())
			w.mu.Unlock()
		}
		return true
	})
	return nil
}

// A stream that was cut after it had worked reconnects after the shortest
// backoff: the backoff grows only over attempts that fail in a row, not
// over every cut in the life of the stream.
func TestBackoffResetsAfterWorkingConnection(t *testing.T) {
	const (
		cuts = 10
		lo   = time.Millisecond
	)
	ts, b := server(t, nil)
	p := tcprelay.Start(t, strings.TrimPrefix(ts.URL, "http://"))
	defer p.Close()
	w := &waits{}
	c := &Client{URL: "http://" + p.Addr(), MinBackoff: lo, MaxBackoff: time.Hour, Logger: slog.New(w)}
	defer c.Close()
	sub, err := c.Subscribe(context.Background(), subscription.Collection("spells"), subscription.Options{})
	if err != nil {
		t.Fatal(err)
	}
	next, stop := pull(t, c, sub)
	if e := next(); e.Type != subscription.TypeStart {
		t.Fatalf("first event %s", e.JSON)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range cuts {
		txn := create(t, b, fmt.Sprint(i), "fire")
		if e := next(); e.Txn != txn {
			t.Fatalf("event %s, want txn %d", e.JSON, txn)
		}
		if n := p.Cut(rng, 1); n == 0 {
			t.Fatal("no connection to cut")
		}
	}
	txn := create(t, b, "last", "fire")
	if e := next(); e.Txn != txn {
		t.Fatalf("event %s, want txn %d", e.JSON, txn)
	}
	stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.d) < cuts {
		t.Fatalf("%d reconnections logged for %d cuts", len(w.d), cuts)
	}
	for i, d := range w.d {
		if d > 2*lo {
			t.Errorf("reconnection %d after %v: the backoff grew over connections that worked (all: %v)", i, d, w.d)
			break
		}
	}
}
