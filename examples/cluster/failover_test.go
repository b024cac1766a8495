package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
	tjs "github.com/tidings/tidings/txlog/jetstream"
)

// lockedBuffer is a node's log, written by its process's stderr copier.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// marked is the final write's data: every subscriber stops at it.
const marked = `"marker":true`

// subscriber follows a stream over SSE from a cursor, on a node, and
// moves to the next node (with its last cursor, as EventSource's
// Last-Event-ID) whenever its connection ends, until it has seen the
// marker.
type subscriber struct {
	query  string
	nodes  func() []string // the nodes' URLs, the killed ones as ""
	node   int
	mu     sync.Mutex
	events []event // guarded by mu while run runs
	moves  int
	why    map[string]int // the reasons it moved
}

// seen returns how many events the subscriber has, and the last one's id.
func (s *subscriber) seen() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) == 0 {
		return 0, ""
	}
	return len(s.events), s.events[len(s.events)-1].id
}

func (s *subscriber) run(ctx context.Context, from string) error {
	last := from
	for ctx.Err() == nil {
		urls := s.nodes()
		for urls[s.node%len(urls)] == "" {
			s.node++
		}
		done, err := s.read(ctx, urls[s.node%len(urls)], last)
		if done {
			return nil
		}
		if n, id := s.seen(); n > 0 {
			last = id
		}
		// The node went away (or refused): resume on the next one.
		if s.why == nil {
			s.why = map[string]int{}
		}
		if err == nil {
			err = errors.New("the stream ended")
		}
		s.why[err.Error()]++
		s.node++
		s.moves++
		time.Sleep(50 * time.Millisecond)
	}
	return ctx.Err()
}

// read reads one connection's events; done once it has seen the marker.
func (s *subscriber) read(ctx context.Context, node, lastID string) (done bool, err error) {
	var ended error
	err = sse(ctx, node+"/tidings/sse?"+s.query, lastID, func(e event) bool {
		switch {
		case strings.Contains(e.data, `"type":"error"`):
			ended = errors.New(e.data)
			return false
		case e.id == "" || strings.Contains(e.data, `"type":"start"`):
			return true
		}
		s.mu.Lock()
		s.events = append(s.events, e)
		s.mu.Unlock()
		done = strings.Contains(e.data, marked)
		return !done
	})
	if ended != nil {
		return false, ended
	}
	return done, err
}

// post writes through a node's write endpoint and returns the txn.
func post(ctx context.Context, node, body string) (txlog.Txn, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, node+"/tidings/write", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var r struct{ Txn txlog.Txn }
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, err
	}
	return r.Txn, nil
}

// txnOf is the txn an event's data names.
func txnOf(t *testing.T, data string) txlog.Txn {
	var v struct{ Txn txlog.Txn }
	if err := json.Unmarshal([]byte(data), &v); err != nil || v.Txn == 0 {
		t.Fatalf("an event without a txn: %s", data)
	}
	return v.Txn
}

// TestFailover: 3 NATS servers and 3 nodes, each a process; writers on
// every node, and on every node subscribers of a document, the
// collection and the fire set, over SSE from the start of the log. Mid-run
// the stream leader's server and node 1 are killed (SIGKILL); node 1's
// subscribers resume on node 2 with their cursors, its writers write
// elsewhere; node 1 is started again from the shared checkpoint, and new
// subscribers there resume from the cursors the others had reached. In
// the end:
//   - every subscriber of a target, on whichever nodes it was, saw the
//     same events (txn, cursor, data), and the new ones on node 1 the
//     same events after their cursors;
//   - every write that returned a txn is in the stream exactly once; the
//     stream's txns increase; every event delivered is of a txn the stream
//     holds; the collection's subscribers saw one event per write;
//   - node 1 started again from a checkpoint.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 6 processes")
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), 150*time.Second, errors.New("the test's deadline"))
	defer cancel()
	logs := []*lockedBuffer{{}, {}, {}}
	c, err := Start(ctx, Config{
		Addrs:           []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"},
		NodeLog:         func(i int) io.Writer { return logs[i] },
		CheckpointEvery: 4 << 10, // a checkpoint every few dozen writes
		// All kept: the stream is not purged, and is checked whole.
		CheckpointKeep: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	var alive sync.Mutex
	urls := []string{c.Nodes[0].URL, c.Nodes[1].URL, c.Nodes[2].URL}
	nodes := func() []string {
		alive.Lock()
		defer alive.Unlock()
		return slices.Clone(urls)
	}

	// The log's identity, from a first write's event: subscribers start
	// from its zero cursor, the whole stream.
	first, err := post(ctx, urls[0], `{"writes":[{"action":"upsert","collection":"spells","id":"1","data":{"name":"Fire Beak","element":"fire"}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	start := zeroCursor(t, ctx, urls[0])

	queries := []string{
		"collection=spells&id=1&data=true",
		"collection=spells&updates=true&data=true",
		"index=spells_by_element&terms=" + url.QueryEscape(`["fire"]`) + "&updates=true&data=true",
	}
	var subs [][]*subscriber // by query
	var wg sync.WaitGroup
	for _, q := range queries {
		var row []*subscriber
		for n := range 3 {
			s := &subscriber{query: q, nodes: nodes, node: n}
			row = append(row, s)
			wg.Go(func() {
				if err := s.run(ctx, start); err != nil {
					t.Errorf("a subscriber of %s: %v", q, err)
				}
			})
		}
		subs = append(subs, row)
	}

	// Writers: two per node, on documents 1 to 8; one whose node is gone
	// writes on the next.
	var mu sync.Mutex
	var stop atomic.Bool
	var writers sync.WaitGroup
	defer func() {
		// A failure ends the test early: its goroutines end first.
		cancel()
		stop.Store(true)
		writers.Wait()
		wg.Wait()
	}()
	committed := []txlog.Txn{first}
	var returnedAt []time.Time // when each write returned, in order
	for n := range 3 {
		for w := range 2 {
			writers.Go(func() {
				r := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				node := n
				for !stop.Load() {
					id := fmt.Sprint(1 + r.IntN(8))
					body := fmt.Sprintf(`{"writes":[{"action":"upsert","collection":"spells","id":%q,"data":{"element":%q,"by":"%d/%d"}}]}`,
						id, []string{"fire", "water", "earth"}[r.IntN(3)], n, w)
					if r.IntN(6) == 0 && id != "1" {
						body = fmt.Sprintf(`{"writes":[{"action":"delete","collection":"spells","id":%q}]}`, id)
					}
					u := nodes()[node%3]
					if u == "" {
						node++
						continue
					}
					txn, err := post(ctx, u, body)
					if err != nil {
						// Refused (a delete of what is not there, a
						// conflict), or the node is gone: its fate is
						// unknown, and not counted.
						if !strings.Contains(err.Error(), "404") && !strings.Contains(err.Error(), "409") {
							node++
						}
						continue
					}
					mu.Lock()
					committed = append(committed, txn)
					returnedAt = append(returnedAt, time.Now())
					mu.Unlock()
				}
			})
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(committed)
	}
	waitFor := func(n int, what string) {
		t.Helper()
		for count() < n {
			if ctx.Err() != nil {
				stop.Store(true)
				t.Fatalf("%d writes, waiting for %d %s", count(), n, what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitFor(150, "before the kills")
	leader := streamLeader(t, ctx, c.NATSURLs())
	for _, s := range c.Servers {
		if s.Name == leader {
			s.Kill()
		}
	}
	alive.Lock()
	urls[1] = ""
	alive.Unlock()
	c.Nodes[1].Kill()
	killedAt, killTime := count(), time.Now()
	t.Logf("killed the stream leader %s and node 1 after %d writes", leader, killedAt)

	waitFor(killedAt+150, "after the kills")
	restartAt := time.Now()
	if err := c.Restart(c.Nodes[1]); err != nil {
		t.Fatalf("%v; its log:\n%s", err, logs[1].String())
	}
	alive.Lock()
	urls[1] = c.Nodes[1].URL
	alive.Unlock()
	// New subscribers on node 1, from the cursor that the first of each
	// target has reached.
	var again []*subscriber
	var from []int // where they start in the first's events
	for i, q := range queries {
		s := &subscriber{query: q, nodes: nodes, node: 1}
		n, cursor := subs[i][0].seen()
		if n == 0 {
			cursor = start
		}
		again, from = append(again, s), append(from, n)
		wg.Go(func() {
			if err := s.run(ctx, cursor); err != nil {
				t.Errorf("a subscriber of %s on node 1 restarted: %v", q, err)
			}
		})
	}
	t.Logf("node 1 started again after %d writes, serving in %v", count(), time.Since(restartAt).Round(time.Millisecond))
	waitFor(count()+100, "after node 1's restart")
	stop.Store(true)
	writers.Wait()
	gap := time.Duration(0) // the failover gap: the longest pause between writes returned after the kills
	for i := 1; i < len(returnedAt); i++ {
		if returnedAt[i].After(killTime) && returnedAt[i-1].Before(restartAt) {
			from := returnedAt[i-1]
			if from.Before(killTime) {
				from = killTime
			}
			gap = max(gap, returnedAt[i].Sub(from))
		}
	}
	t.Logf("writers stopped after %d writes; longest pause after the kills %v", count(), gap.Round(time.Millisecond))
	marker, err := post(ctx, c.Nodes[1].URL, `{"writes":[{"action":"upsert","collection":"spells","id":"1","data":{"element":"fire",`+marked+`}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	committed = append(committed, marker)
	t.Logf("the marker: txn %d", marker)
	wg.Wait()
	if t.Failed() {
		for i, row := range subs {
			for _, s := range append(row, again[i]) {
				t.Logf("%s: %d events, on node %d, %d moves", queries[i], len(s.events), s.node%3, s.moves)
			}
		}
		for i, l := range logs {
			t.Logf("node %d's log:\n%s", i, l.String())
		}
		return
	}

	if !strings.Contains(logs[1].String(), "state loaded from a checkpoint") {
		t.Fatalf("node 1 did not start again from a checkpoint; its log:\n%s", logs[1].String())
	}
	// The stream, read whole.
	inLog := map[txlog.Txn]int{}
	writes := 0
	var prev txlog.Txn
	for rec, err := range readStream(t, ctx, c.NATSURLs()) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Txn <= prev {
			t.Fatalf("txn %d after %d in the stream", rec.Txn, prev)
		}
		prev = rec.Txn
		inLog[rec.Txn]++
		writes += len(rec.Writes)
	}
	for _, txn := range committed {
		if inLog[txn] != 1 {
			t.Fatalf("the write of txn %d returned, and the stream holds it %d times", txn, inLog[txn])
		}
	}
	moves := 0
	for i, row := range subs {
		want := row[0].events
		for _, s := range row[1:] {
			if !slices.Equal(s.events, want) {
				t.Fatalf("%s: a subscriber saw %d events, another %d, or other ones", queries[i], len(s.events), len(want))
			}
			moves += s.moves
		}
		if !slices.Equal(again[i].events, want[from[i]:]) {
			for k, e := range again[i].events {
				if k >= len(want)-from[i] || e != want[from[i]+k] {
					t.Logf("from event %d on: %s\nwant %s", k, e.data, want[min(from[i]+k, len(want)-1)].data)
					break
				}
			}
			t.Fatalf("%s: a subscriber on node 1 restarted saw %d events, want the last %d of the others'", queries[i], len(again[i].events), len(want)-from[i])
		}
		for _, e := range want {
			if inLog[txnOf(t, e.data)] != 1 {
				t.Fatalf("%s: an event of a txn the stream does not hold: %s", queries[i], e.data)
			}
		}
	}
	// Seeds and writes: the collection's subscribers saw one event each.
	if n := len(subs[1][0].events); n != writes {
		t.Fatalf("the collection's subscribers saw %d events, the stream holds %d writes", n, writes)
	}
	why := map[string]int{}
	for i, row := range subs {
		for _, s := range append(row, again[i]) {
			for k, n := range s.why {
				why[k] += n
			}
		}
	}
	t.Logf("%d writes returned (%d in the stream, %d records), %d events per collection subscriber; subscribers moved %d times: %v",
		len(committed), writes, len(inLog), len(subs[1][0].events), moves, why)
}

// zeroCursor is the cursor of the start of the log, whose identity it
// reads from the cursor of a feed page.
func zeroCursor(t *testing.T, ctx context.Context, node string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, node+"/tidings/feed?collection=spells", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Cursor string }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || page.Cursor == "" {
		t.Fatalf("the feed's cursor: %v", err)
	}
	c, err := txlog.ParseCursor(page.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	return txlog.Cursor{Log: c.Log}.String()
}

// streamLeader is the name of the server that leads the stream.
func streamLeader(t *testing.T, ctx context.Context, urls []string) string {
	t.Helper()
	js := jsConnect(t, urls)
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("the stream's info: %v", err)
	}
	return info.Cluster.Leader
}

func jsConnect(t *testing.T, urls []string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// readStream reads the whole stream as a log.
func readStream(t *testing.T, ctx context.Context, urls []string) func(func(txlog.Record, error) bool) {
	t.Helper()
	l, err := tjs.Open(ctx, jsConnect(t, urls), tjs.Options{Stream: streamName})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Read(txlog.Cursor{Log: l.ID()})
}
