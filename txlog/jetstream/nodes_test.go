package jetstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

var spellSchema = index.Schema{
	Collections: []string{"spells"},
	Indexes:     []index.Definition{{Name: "by_element", Collection: "spells", Terms: []string{"element"}}},
}

// startNode starts a broker node on the stream, with a connection of its
// own, closed at the end of the test.
func startNode(t testing.TB, url, stream string) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Options{Log: openLog(t, connect(t, url), Options{Stream: stream}), Schema: spellSchema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// nodeTargets are what every node's subscribers follow (sets with update
// events: every write to a member is an event).
func nodeTargets(t *testing.T) []subscription.Target {
	fire, err := subscription.Match("by_element", "fire")
	if err != nil {
		t.Fatal(err)
	}
	return []subscription.Target{
		subscription.Document(txlog.Ref{Collection: "spells", ID: "0"}),
		subscription.Collection("spells"),
		fire,
	}
}

// seen is an event as a subscriber saw it: every node must show the same.
type seen struct {
	txn    txlog.Txn
	cursor string
	json   string
}

// follow subscribes and gathers the events (not start, not status) until
// one at txn until() or later; opt.Heartbeat must be set, for the case
// where that event came before until() knew it.
func follow(ctx context.Context, b *broker.Broker, target subscription.Target, opt subscription.Options, until func() txlog.Txn) ([]seen, error) {
	sub, err := b.Subscribe(ctx, target, opt)
	if err != nil {
		return nil, err
	}
	var got []seen
	done := func() bool {
		u := until()
		return u != 0 && len(got) > 0 && got[len(got)-1].txn >= u
	}
	for e := range sub.Events() {
		switch e.Type {
		case subscription.TypeStatus:
			// The last event may have come before until was known.
			if done() {
				return got, nil
			}
			continue
		case subscription.TypeStart:
			continue
		case subscription.TypeError:
			return got, fmt.Errorf("%s", e.JSON)
		}
		got = append(got, seen{e.Txn, e.CursorString(), string(e.JSON)})
		if done() {
			break
		}
	}
	return got, ctx.Err()
}

// TestNodes: three broker nodes on one stream, each with its own
// connection. Writers on every node commit to a few documents at once (so
// that nodes conflict), and subscribers on every node follow a document, the
// collection and an index. Every subscriber of a target sees the same
// events, with the same cursors, on every node; every commit that
// returned is in the log once, txns increasing, and the collection's
// subscribers saw exactly the log; a cursor taken on one node resumes on
// another with exactly the events after it.
func TestNodes(t *testing.T) {
	url := runServer(t).ClientURL()
	name := newStreamName()
	nodes := []*broker.Broker{startNode(t, url, name), startNode(t, url, name), startNode(t, url, name)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	targets := nodeTargets(t)

	var last sync.Mutex
	var marker txlog.Txn // the final commit, which every target sees
	until := func() txlog.Txn {
		last.Lock()
		defer last.Unlock()
		return marker
	}
	type key struct{ node, target int }
	events := map[key][]seen{}
	var mu sync.Mutex
	var subs sync.WaitGroup
	for n, b := range nodes {
		for i, target := range targets {
			subs.Go(func() {
				got, err := follow(ctx, b, target, subscription.Options{Cursor: txlog.Cursor{Log: b.LogID()}.String(), Updates: true, Heartbeat: 100 * time.Millisecond}, until)
				if err != nil {
					t.Errorf("node %d, %v: %v", n, target, err)
				}
				mu.Lock()
				events[key{n, i}] = got
				mu.Unlock()
			})
		}
	}

	const writers, commits = 2, 40
	var committed []txlog.Txn
	var writes sync.WaitGroup
	for n, b := range nodes {
		for w := range writers {
			writes.Go(func() {
				r := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				for range commits {
					id := fmt.Sprint(r.IntN(5))
					element := []string{"fire", "water"}[r.IntN(2)]
					txn, err := b.Commit(ctx, func(tx *broker.Tx) error {
						ref := txlog.Ref{Collection: "spells", ID: id}
						if _, ok := tx.Get(ref); ok && r.IntN(4) == 0 {
							return tx.Delete(ref)
						}
						return tx.Upsert(ref, fmt.Appendf(nil, `{"element":%q,"by":"%d/%d"}`, element, n, w))
					})
					if errors.Is(err, broker.ErrConflict) {
						continue
					}
					if err != nil {
						t.Errorf("node %d: %v", n, err)
						return
					}
					mu.Lock()
					committed = append(committed, txn)
					mu.Unlock()
				}
			})
		}
	}
	writes.Wait()
	// The marker: document 0 into fire, seen by all three targets (an
	// update of a member is an event with Updates).
	txn, err := nodes[0].Commit(ctx, func(tx *broker.Tx) error {
		return tx.Upsert(txlog.Ref{Collection: "spells", ID: "0"}, []byte(`{"element":"fire","by":"marker"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	last.Lock()
	marker = txn
	last.Unlock()
	committed = append(committed, txn)
	subs.Wait()
	if t.Failed() {
		return
	}

	// Every node shows every target the same.
	for i := range targets {
		want := events[key{0, i}]
		if len(want) == 0 || want[len(want)-1].txn != marker {
			t.Fatalf("%v on node 0: %d events, not up to the marker", targets[i], len(want))
		}
		for n := 1; n < len(nodes); n++ {
			if got := events[key{n, i}]; !slices.Equal(got, want) {
				t.Fatalf("%v: node %d saw %d events, node 0 %d, or other ones", targets[i], n, len(got), len(want))
			}
		}
	}

	// The log: every commit once, txns increasing; the collection's
	// subscribers saw an event per write (add, update or remove).
	l := openLog(t, connect(t, url), Options{Stream: name})
	defer l.Close()
	var logTxns []txlog.Txn
	writesInLog := 0
	for rec, err := range l.Read(txlog.Cursor{Log: l.ID()}) {
		if err != nil {
			t.Fatal(err)
		}
		if n := len(logTxns); n > 0 && rec.Txn <= logTxns[n-1] {
			t.Fatalf("txn %d after %d", rec.Txn, logTxns[n-1])
		}
		logTxns = append(logTxns, rec.Txn)
		writesInLog += len(rec.Writes)
	}
	slices.Sort(committed)
	if !slices.Equal(committed, logTxns) {
		t.Fatalf("%d commits returned, the log holds %d records", len(committed), len(logTxns))
	}
	coll := events[key{0, 1}]
	if len(coll) != writesInLog {
		t.Fatalf("the collection's subscribers saw %d events, the log holds %d writes", len(coll), writesInLog)
	}

	// A cursor of node 0 resumes on node 2 with exactly what follows.
	mid := len(coll) / 2
	got, err := follow(ctx, nodes[2], targets[1], subscription.Options{Cursor: coll[mid].cursor, Updates: true, Heartbeat: 100 * time.Millisecond}, until)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, coll[mid+1:]) {
		t.Fatalf("resumed on another node: %d events, want %d", len(got), len(coll)-mid-1)
	}
	var conflicts int64
	for _, b := range nodes {
		conflicts += b.Stats().Conflicts
	}
	t.Logf("%d commits on 3 nodes, %d conflicts (%.2f per commit), %d events per target on each node",
		len(committed), conflicts, float64(conflicts)/float64(len(committed)), len(coll))
}
