package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidings/tidings/subscription"
)

// recorder keeps what Deliver hands to a callback: every event's JSON, in
// order, with a way to wait for a count.
type recorder struct {
	mu     sync.Mutex
	got    []string
	types  []subscription.Type
	reach  int
	reachC chan struct{}
	ends   int // calls with a nil batch: the end
}

func (r *recorder) fn(batch []subscription.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if batch == nil {
		r.ends++
		return true
	}
	for _, e := range batch {
		r.got = append(r.got, string(e.JSON))
		r.types = append(r.types, e.Type)
	}
	if r.reachC != nil && len(r.got) >= r.reach {
		close(r.reachC)
		r.reachC = nil
	}
	return true
}

// await returns a channel closed once the recorder holds n events.
func (r *recorder) await(n int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	if len(r.got) >= n {
		close(ch)
	} else {
		r.reach, r.reachC = n, ch
	}
	return ch
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// Deliver hands over exactly what a loop over Events reads, for a
// document, a collection and a set, with a snapshot and without.
func TestDeliverMatchesEvents(t *testing.T) {
	b := spellsBroker(t)
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("1"), []byte(`{"element":"fire"}`)) })
	fire, _ := subscription.Match("spells_by_element", "fire")
	targets := []subscription.Target{subscription.Document(spell("1")), subscription.Collection("spells"), fire}
	type pair struct {
		events *Subscription
		rec    *recorder
		ended  <-chan struct{}
	}
	var pairs []pair
	for _, tg := range targets {
		for _, snap := range []bool{false, true} {
			opt := subscription.Options{Snapshot: snap}
			p := pair{events: mustSubscribe(t, b, tg, opt), rec: &recorder{}}
			p.ended = mustSubscribe(t, b, tg, opt).Deliver(p.rec.fn)
			pairs = append(pairs, p)
		}
	}
	for i := range 40 {
		mustCommit(t, b, func(tx *Tx) error {
			el := []string{"fire", "water"}[i%2]
			if err := tx.Replace(spell("1"), fmt.Appendf(nil, `{"element":%q,"n":%d}`, el, i)); err != nil {
				return err
			}
			return tx.Create(spell(fmt.Sprint(100+i)), []byte(`{"element":"fire"}`))
		})
	}
	mustCommit(t, b, func(tx *Tx) error { return tx.Delete(spell("1")) })
	b.Close()
	for i, p := range pairs {
		var want []string
		for e := range p.events.Events() {
			want = append(want, string(e.JSON))
		}
		<-p.ended
		if got := p.rec.events(); !slices.Equal(got, want) {
			t.Errorf("stream %d: Deliver handed %d events, Events read %d:\n%q\n%q", i, len(got), len(want), got, want)
		}
		if last := p.rec.types[len(p.rec.types)-1]; last != subscription.TypeError {
			t.Errorf("stream %d ends with %s, want the shutting_down error", i, last)
		}
	}
}

// A callback that blocks holds up no other subscriber: the others get
// every commit while it is stuck, and it loses nothing (its queue
// overflows, and it catches up from the log once it returns).
func TestDeliverBlockedCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := spellsBroker(t)
		coll := subscription.Collection("spells")
		release := make(chan struct{})
		stuck := &recorder{}
		first := true
		stuckEnded := mustSubscribe(t, b, coll, subscription.Options{Buffer: 4}).Deliver(func(batch []subscription.Event) bool {
			if first && len(batch) > 0 && batch[0].Type != subscription.TypeStart {
				first = false
				<-release
			}
			return stuck.fn(batch)
		})
		const others, commits = 8, 50
		recs := make([]*recorder, others)
		for i := range recs {
			recs[i] = &recorder{}
			mustSubscribe(t, b, coll, subscription.Options{Buffer: 4}).Deliver(recs[i].fn)
		}
		synctest.Wait()
		for i := range commits {
			mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell(fmt.Sprint(i)), []byte(`{}`)) })
			time.Sleep(time.Millisecond) // the watchdog's time to see the stuck worker
			synctest.Wait()
		}
		for i, r := range recs {
			if n := len(r.events()); n != 1+commits {
				t.Fatalf("subscriber %d has %d events while one callback is stuck, want %d", i, n, 1+commits)
			}
		}
		if n := len(stuck.events()); n != 1 {
			t.Fatalf("the stuck subscriber has %d events, want its start alone", n)
		}
		close(release)
		<-stuck.await(1 + commits)
		got := stuck.events()
		for i, e := range got[1:] {
			if want := fmt.Sprintf(`"id":"%d"`, i); !strings.Contains(e, want) {
				t.Fatalf("event %d of the stuck subscriber: %s, want %s", i+1, e, want)
			}
		}
		if st := b.Stats(); st.CatchingUp != 0 || st.Subscriptions != others+1 {
			t.Fatalf("stats %+v", st)
		}
		b.Close()
		<-stuckEnded
	})
}

// The ways a delivered stream ends: its callback returns false, Close,
// its context, the broker's Close. Each ends the subscription, closes the
// channel, and calls the callback no more.
func TestDeliverEnds(t *testing.T) {
	b := spellsBroker(t)
	coll := subscription.Collection("spells")
	commit := func() {
		mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell(fmt.Sprint(time.Now().UnixNano())), []byte(`{}`)) })
	}

	calls, ends := 0, 0
	refused := mustSubscribe(t, b, coll, subscription.Options{}).Deliver(func(batch []subscription.Event) bool {
		if batch == nil {
			ends++
			return true
		}
		calls++
		return false
	})
	<-refused
	commit()

	closed := &recorder{}
	s := mustSubscribe(t, b, coll, subscription.Options{})
	closedEnded := s.Deliver(closed.fn)
	<-closed.await(1)
	s.Close()
	<-closedEnded

	ctx, cancel := context.WithCancel(context.Background())
	cancelled := &recorder{}
	s2, err := b.Subscribe(ctx, coll, subscription.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancelledEnded := s2.Deliver(cancelled.fn)
	<-cancelled.await(1)
	cancel()
	<-cancelledEnded

	again := s2.Deliver(func([]subscription.Event) bool { t.Error("a second Deliver called its callback"); return true })
	<-again

	open := &recorder{}
	openEnded := mustSubscribe(t, b, coll, subscription.Options{}).Deliver(open.fn)
	commit()
	<-open.await(2)
	n := len(closed.events()) + len(cancelled.events())
	commit()
	<-open.await(3)
	if calls != 1 || ends != 1 || len(closed.events())+len(cancelled.events()) != n || closed.ends != 1 || cancelled.ends != 1 {
		t.Fatalf("callbacks called after their stream ended: %d calls and %d ends of the refusing one, %d events then %d, ends %d and %d",
			calls, ends, n, len(closed.events())+len(cancelled.events()), closed.ends, cancelled.ends)
	}
	if st := b.Stats(); st.Subscriptions != 1 {
		t.Fatalf("%d subscriptions open, want 1", st.Subscriptions)
	}
	b.Close()
	<-openEnded
	got := open.events()
	if e := parse(t, subscription.Event{JSON: []byte(got[len(got)-1])}); e.Type != "error" || e.Event.Code != subscription.CodeShuttingDown || e.Event.Cursor == "" {
		t.Fatalf("last event %s, want shutting_down with a cursor", got[len(got)-1])
	}
}

// Heartbeats come on time, from the broker's workers too.
func TestDeliverHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := spellsBroker(t)
		mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("a"), []byte(`{}`)) })
		r := &recorder{}
		s := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Heartbeat: 15 * time.Second})
		ended := s.Deliver(r.fn)
		time.Sleep(20 * time.Second)
		mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("b"), []byte(`{}`)) })
		time.Sleep(20 * time.Second) // a commit at 20s puts the next beat at 35s
		synctest.Wait()
		want := []subscription.Type{subscription.TypeStart, subscription.TypeStatus, subscription.TypeSet, subscription.TypeStatus}
		r.mu.Lock()
		got := slices.Clone(r.types)
		r.mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		s.Close()
		<-ended
	})
}
