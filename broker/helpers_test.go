package broker

import (
	"context"
	"encoding/json"
	"iter"
	"log/slog"
	"runtime"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Helpers that the tests of several files use: brokers and commits,
// subscriptions and their events, and the benchmarks' fixtures. A helper
// that one file's tests use stays in that file; so does the machinery of
// one larger test (the reference model in model_test.go, the crash test in
// crash_*_test.go), even where another test borrows from it.

// ---------------------------------------------------------------------------
// Brokers and commits.

// spellsBroker is an in-memory broker with the spells collection and the
// spells_by_element index (terms only), closed when the test ends.
func spellsBroker(t testing.TB) *Broker {
	t.Helper()
	b, err := New(Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// ckptSchema is the spells collection with two indexes, one with values:
// the schema of the checkpoint and group-commit tests.
var ckptSchema = index.Schema{
	Collections: []string{"spells"},
	Indexes: []index.Definition{
		{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}, Values: []string{"level"}},
		{Name: "spells_by_level", Collection: "spells", Terms: []string{"level"}},
	},
}

// quietLogger discards what a broker or a log logs.
var quietLogger = slog.New(slog.DiscardHandler)

// spell is the ref of a document of spells.
func spell(id string) txlog.Ref { return txlog.Ref{Collection: "spells", ID: id} }

// mustCommit commits fn, failing the test on an error.
func mustCommit(t testing.TB, b *Broker, fn func(tx *Tx) error) txlog.Txn {
	t.Helper()
	txn, err := b.Commit(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	return txn
}

// must returns v, and panics on an error: for values a test cannot do
// without.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// ---------------------------------------------------------------------------
// Subscriptions and their events.

// mustSubscribe subscribes, failing the test on an error; the
// subscription is closed when the test ends.
func mustSubscribe(t testing.TB, b *Broker, target subscription.Target, opt subscription.Options) *Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), target, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// take reads n events from s in a goroutine-free way: the events must be
// there already or arrive without further commits.
func take(t *testing.T, s *Subscription, n int) []subscription.Event {
	t.Helper()
	var evs []subscription.Event
	if n == 0 {
		return nil
	}
	for e := range s.Events() {
		evs = append(evs, e)
		if len(evs) == n {
			break
		}
	}
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	return evs
}

// wireEvent is the part of an event's JSON that tests look at.
type wireEvent struct {
	Type   string `json:"type"`
	Txn    uint64 `json:"txn"`
	Cursor string `json:"cursor"`
	Event  struct {
		Action   string          `json:"action"`
		Code     string          `json:"code"`
		Cursor   string          `json:"cursor"`
		Document json.RawMessage `json:"document"`
	} `json:"event"`
}

// parse decodes an event's JSON, failing the test if it is not JSON.
func parse(t *testing.T, e subscription.Event) wireEvent {
	t.Helper()
	var w wireEvent
	if err := json.Unmarshal(e.JSON, &w); err != nil {
		t.Fatalf("%s: %v", e.JSON, err)
	}
	return w
}

// iterPull turns a subscription's iterator into next and stop functions.
func iterPull(seq iter.Seq[subscription.Event]) (func() (subscription.Event, bool), func()) {
	return iter.Pull(seq)
}

// ---------------------------------------------------------------------------
// The benchmarks' fixtures.

// benchSchema: spells, indexed by element, and others, where the idle
// document subscriptions point.
var benchSchema = index.Schema{
	Collections: []string{"spells", "others"},
	Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
}

// benchBroker is a broker with benchSchema, closed when the benchmark ends.
func benchBroker(b *testing.B, opt Options) *Broker {
	b.Helper()
	opt.Schema = benchSchema
	br, err := New(opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

// benchCommit commits fn, failing the benchmark on an error.
func benchCommit(b *testing.B, br *Broker, fn func(tx *Tx) error) txlog.Txn {
	txn, err := br.Commit(context.Background(), fn)
	if err != nil {
		b.Fatal(err)
	}
	return txn
}

// elementDocs are a spell's data with element fire and water: a commit
// that replaces one with the other moves the spell from one index set to
// the other.
var elementDocs = [2][]byte{[]byte(`{"name":"Fire Beak","element":"water","cost":15}`), []byte(`{"name":"Fire Beak","element":"fire","cost":15}`)}

// liveHeap returns the bytes of live heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
