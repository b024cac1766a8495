package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// A broker on a file log restarts with its documents and indexes rebuilt
// from the log, its txns going on upward, and a subscriber resumes across
// the restart with its cursor, missing nothing: Guarantees 3 and 6 (broker
// package doc).
func TestRestartOnFileLog(t *testing.T) {
	dir := t.TempDir()
	schema := index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}
	open := func(now func() time.Time) *Broker {
		l, err := txlog.OpenFile(dir, txlog.FileOptions{SegmentSize: 4 << 10, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Options{Log: l, Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open(nil)
	fire, _ := subscription.Match("spells_by_element", "fire")
	s := mustSubscribe(t, b, fire, subscription.Options{})
	for i := range 30 {
		element := "fire"
		if i%3 == 0 {
			element = "water"
		}
		mustCommit(t, b, func(tx *Tx) error {
			return tx.Create(spell(fmt.Sprint(i)), []byte(`{"element":"`+element+`"}`))
		})
	}
	mustCommit(t, b, func(tx *Tx) error { return tx.Update(spell("1"), []byte(`{"element":"water"}`)) })
	before := take(t, s, 10) // start and 9 adds: stop in the middle
	head := b.Head()
	resumeAt := before[len(before)-1].Cursor
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart with the wall clock an hour behind.
	b = open(func() time.Time { return time.Now().Add(-time.Hour) })
	defer b.Close()
	if b.Head() != head {
		t.Fatalf("head %d after the restart, %d before", b.Head(), head)
	}
	if d, ok := b.Get(spell("1")); !ok || string(d.Data) != `{"element":"water"}` {
		t.Fatalf("spells/1 after the restart: %s %v", d.Data, ok)
	}
	snap := mustSubscribe(t, b, fire, subscription.Options{Snapshot: true, SnapshotPageSize: 100})
	evs := take(t, snap, 2)
	var page struct {
		Event struct {
			Data []struct{ Document struct{ Ref txlog.Ref } } `json:"data"`
		} `json:"event"`
	}
	if err := json.Unmarshal(evs[1].JSON, &page); err != nil || len(page.Event.Data) != 19 {
		t.Fatalf("the fire set after the restart has %d members, want 19: %s", len(page.Event.Data), evs[1].JSON)
	}
	txn := mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("new"), []byte(`{"element":"fire"}`)) })
	if txn <= head {
		t.Fatalf("txn %d after the restart is not above %d", txn, head)
	}

	// The subscriber resumes where it stopped: the rest of the adds, the
	// remove of spells/1, and the new add.
	r := mustSubscribe(t, b, fire, subscription.Options{Cursor: resumeAt.String()})
	rest := take(t, r, 1+11+1+1)
	var adds, removes int
	for _, e := range rest[1:] {
		switch e.Action {
		case "add":
			adds++
		case "remove":
			removes++
		}
	}
	if adds != 12 || removes != 1 || rest[len(rest)-1].Txn != txn {
		t.Fatalf("resumed across the restart: %d adds, %d removes, last txn %d (want 12, 1, %d)", adds, removes, rest[len(rest)-1].Txn, txn)
	}

	// A cursor of another log (an in-memory broker that restarted) is
	// refused, not misread.
	if _, err := b.Subscribe(context.Background(), fire, subscription.Options{Cursor: txlog.Cursor{Log: txlog.NewID(), Pos: resumeAt.Pos}.String()}); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("a foreign cursor: %v", err)
	}
}
