package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// TestSharedCheckpoints: a node writes checkpoints to the object store,
// whose deletions purge the stream below the oldest kept; a new node then
// cannot rebuild its state from the stream alone, but starts from the
// shared checkpoint and the stream after it: the same documents, the
// same events from a cursor after the checkpoint, and commits that the
// first node sees.
func TestSharedCheckpoints(t *testing.T) {
	url := runServer(t).ClientURL()
	name := newStreamName()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	node := func(withStore bool) (*broker.Broker, error) {
		js := connect(t, url)
		l := openLog(t, js, Options{Stream: name})
		opt := broker.Options{Log: l, Schema: spellSchema}
		if withStore {
			cps, err := OpenCheckpoints(ctx, js, name+"-checkpoints", l, 1)
			if err != nil {
				t.Fatal(err)
			}
			opt.Checkpoint = broker.CheckpointOptions{Store: cps, Keep: 2}
		}
		b, err := broker.New(opt)
		if err == nil {
			t.Cleanup(func() { b.Close() })
		} else {
			l.Close()
		}
		return b, err
	}
	a, err := node(true)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	commits := func(n int) {
		t.Helper()
		for range n {
			i++
			_, err := a.Commit(ctx, func(tx *broker.Tx) error {
				ref := txlog.Ref{Collection: "spells", ID: fmt.Sprint(i % 20)}
				if i%7 == 0 {
					if _, ok := tx.Get(ref); ok {
						return tx.Delete(ref)
					}
				}
				return tx.Upsert(ref, fmt.Appendf(nil, `{"element":%q,"n":%d}`, []string{"fire", "water"}[i%2], i))
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	var ckpts []txlog.Txn
	for _, n := range []int{50, 20, 10} {
		commits(n)
		txn, err := a.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ckpts = append(ckpts, txn)
	}
	commits(5)
	l := openLog(t, connect(t, url), Options{Stream: name})
	oldest := l.Oldest()
	l.Close()
	if oldest.Txn == 0 || oldest.Txn >= ckpts[1] {
		t.Fatalf("the stream starts after %v: the checkpoints kept are at %v", oldest, ckpts[1:])
	}
	if _, err := node(false); !errors.Is(err, broker.ErrNoState) {
		t.Fatalf("a node without the checkpoints: %v, want ErrNoState", err)
	}

	b, err := node(true)
	if err != nil {
		t.Fatal(err)
	}
	if b.Head() != a.Head() {
		t.Fatalf("the new node is at %d, the first at %d", b.Head(), a.Head())
	}
	for id := range 20 {
		ref := txlog.Ref{Collection: "spells", ID: fmt.Sprint(id)}
		da, oka := a.Get(ref)
		db, okb := b.Get(ref)
		if oka != okb || !bytes.Equal(da.Data, db.Data) || da.TS != db.TS {
			t.Fatalf("%s: %v %s on the first node, %v %s on the new one", ref, oka, da.Data, okb, db.Data)
		}
	}
	after := txlog.Cursor{Log: a.LogID(), Pos: txlog.AfterTxn(ckpts[2])}.String()
	opt := subscription.Options{Cursor: after, Updates: true, Heartbeat: 100 * time.Millisecond}
	last, err := b.Commit(ctx, func(tx *broker.Tx) error {
		return tx.Upsert(txlog.Ref{Collection: "spells", ID: "new"}, []byte(`{"element":"fire"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	until := func() txlog.Txn { return last }
	onA, err := follow(ctx, a, subscription.Collection("spells"), opt, until)
	if err != nil {
		t.Fatal(err)
	}
	onB, err := follow(ctx, b, subscription.Collection("spells"), opt, until)
	if err != nil {
		t.Fatal(err)
	}
	if len(onA) != 6 || fmt.Sprint(onA) != fmt.Sprint(onB) {
		t.Fatalf("after the last checkpoint: %d events on the first node, %d on the new one, or others", len(onA), len(onB))
	}
}
