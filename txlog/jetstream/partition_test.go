package jetstream

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/tcprelay"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// relay puts a cuttable TCP relay (a network partition) in front of the
// NATS server at url.
func relay(t *testing.T, url string) *tcprelay.Relay {
	r := tcprelay.Start(t, strings.TrimPrefix(url, "nats://"))
	t.Cleanup(r.Close)
	return r
}

// TestPartition: a node whose connection to the servers is cut keeps its
// streams open (heartbeats) until CutOffAfter, then ends them with
// shutting_down and a cursor, and refuses new ones; the cursor resumes on
// another node with exactly the events after it, the other node's commits
// during the partition included. Once the connection is back, the node
// catches up and serves again.
func TestPartition(t *testing.T) {
	url := runServer(t).ClientURL()
	name := newStreamName()
	px := relay(t, url)
	const cutOffAfter = time.Second
	cut, err := broker.New(broker.Options{
		Log:         openLog(t, connect(t, "nats://"+px.Addr()), Options{Stream: name, Timeout: time.Second}),
		Schema:      spellSchema,
		CutOffAfter: cutOffAfter,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	other := startNode(t, url, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	commit := func(b *broker.Broker, id string) txlog.Txn {
		t.Helper()
		txn, err := b.Commit(ctx, func(tx *broker.Tx) error {
			return tx.Upsert(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"fire"}`))
		})
		if err != nil {
			t.Fatal(err)
		}
		return txn
	}
	target := subscription.Collection("spells")
	opt := subscription.Options{Cursor: txlog.Cursor{Log: cut.LogID()}.String(), Updates: true, Heartbeat: 100 * time.Millisecond}
	sub, err := cut.Subscribe(ctx, target, opt)
	if err != nil {
		t.Fatal(err)
	}
	commit(other, "a")
	commit(cut, "b")

	var got []seen
	var ended subscription.Event
	var cutAt time.Time
	beats := 0
	for e := range sub.Events() {
		switch e.Type {
		case subscription.TypeStart:
			continue
		case subscription.TypeStatus:
			if !cutAt.IsZero() {
				beats++
			}
			continue
		case subscription.TypeError:
			ended = e
		default:
			got = append(got, seen{e.Txn, e.CursorString(), string(e.JSON)})
			if len(got) == 2 {
				px.Pause()
				cutAt = time.Now()
				// Written while the node is cut off: it must not show them.
				commit(other, "c")
				commit(other, "d")
			}
			continue
		}
		break
	}
	silent := time.Since(cutAt)
	resumeAt := got[len(got)-1].cursor
	if ended.Action != subscription.CodeShuttingDown || !strings.Contains(string(ended.JSON), `"cursor":"`+resumeAt+`"`) {
		t.Fatalf("the stream ended with %s, after %d events", ended.JSON, len(got))
	}
	if silent < cutOffAfter || beats == 0 {
		t.Fatalf("ended %v after the cut, with %d heartbeats: it should stay open, beating, for %v", silent, beats, cutOffAfter)
	}
	if _, err := cut.Subscribe(ctx, target, opt); !errors.Is(err, broker.ErrCutOff) {
		t.Fatalf("a subscription on the node cut off: %v", err)
	}
	if _, err := cut.Commit(ctx, func(tx *broker.Tx) error {
		return tx.Upsert(txlog.Ref{Collection: "spells", ID: "e"}, []byte(`{}`))
	}); !errors.Is(err, broker.ErrCutOff) {
		t.Fatalf("a commit on the node cut off: %v", err)
	}

	// On the other node, from the start and from the cursor.
	last := commit(other, "f")
	until := func() txlog.Txn { return last }
	all, err := follow(ctx, other, target, opt, until)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || !slices.Equal(all[:2], got) {
		t.Fatalf("the other node saw %d events, the first two not as the node cut off did", len(all))
	}
	resumed, err := follow(ctx, other, target, subscription.Options{Cursor: resumeAt, Updates: true, Heartbeat: 100 * time.Millisecond}, until)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resumed, all[2:]) {
		t.Fatalf("resumed on the other node: %d events, want %d", len(resumed), len(all)-2)
	}

	// The connection back: the node catches up and serves again.
	px.Resume()
	deadline := time.Now().Add(30 * time.Second)
	for cut.Head() < last {
		if time.Now().After(deadline) {
			t.Fatalf("the node is at txn %d an its connection is back, the log at %d", cut.Head(), last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var again []seen
	for {
		again, err = follow(ctx, cut, target, opt, until)
		if !errors.Is(err, broker.ErrCutOff) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // it has not heard from the log yet
	}
	if err != nil || !slices.Equal(again, all) {
		t.Fatalf("after the partition: %d events, %v", len(again), err)
	}
}

// TestCursorAhead: a cursor taken on a node further ahead, given to a node
// that has not caught up yet (its connection was cut while the other
// committed), waits for that node to catch up, then streams exactly what
// follows it, instead of being refused as beyond the head.
func TestCursorAhead(t *testing.T) {
	url := runServer(t).ClientURL()
	name := newStreamName()
	px := relay(t, url)
	behind, err := broker.New(broker.Options{
		Log:    openLog(t, connect(t, "nats://"+px.Addr()), Options{Stream: name, Timeout: time.Second}),
		Schema: spellSchema,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer behind.Close()
	ahead := startNode(t, url, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	commit := func(id string) txlog.Txn {
		t.Helper()
		txn, err := ahead.Commit(ctx, func(tx *broker.Tx) error {
			return tx.Upsert(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"fire"}`))
		})
		if err != nil {
			t.Fatal(err)
		}
		return txn
	}
	px.Pause()
	commit("a")
	commit("b")
	last := commit("c")
	target := subscription.Collection("spells")
	opt := subscription.Options{Cursor: txlog.Cursor{Log: ahead.LogID()}.String(), Updates: true, Heartbeat: 100 * time.Millisecond}
	until := func() txlog.Txn { return last }
	all, err := follow(ctx, ahead, target, opt, until)
	if err != nil || len(all) != 3 {
		t.Fatalf("on the node ahead: %d events, %v", len(all), err)
	}
	px.Resume()
	if h := behind.Head(); h >= last {
		t.Fatalf("the node is at %d already: the test needs it behind %d", h, last)
	}
	opt.Cursor = all[0].cursor
	got, err := follow(ctx, behind, target, opt, until)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all[1:]) {
		t.Fatalf("on the node behind, from the other's cursor: %d events, want %d", len(got), len(all)-1)
	}
}
