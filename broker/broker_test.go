package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Guarantee 9 (broker package doc): a transaction that a refused write
// ends leaves nothing: no document, no event, no change of the head. And,
// of Guarantee 7, a commit after Close fails with ErrClosed.
func TestCommitErrorsRollBack(t *testing.T) {
	b := spellsBroker(t)
	ctx := context.Background()
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("1"), []byte(`{"element":"fire"}`)) })
	head := b.Head()
	fire, _ := subscription.Match("spells_by_element", "fire")
	s := mustSubscribe(t, b, fire, subscription.Options{})

	cases := []struct {
		name string
		fn   func(tx *Tx) error
		want error
	}{
		{"create existing", func(tx *Tx) error { return tx.Create(spell("1"), []byte(`{}`)) }, ErrExists},
		{"update missing", func(tx *Tx) error { return tx.Update(spell("2"), []byte(`{}`)) }, ErrNotFound},
		{"replace missing", func(tx *Tx) error { return tx.Replace(spell("2"), []byte(`{}`)) }, ErrNotFound},
		{"delete missing", func(tx *Tx) error { return tx.Delete(spell("2")) }, ErrNotFound},
		{"not an object", func(tx *Tx) error { return tx.Create(spell("2"), []byte(`[1]`)) }, ErrNotObject},
		{"invalid json", func(tx *Tx) error { return tx.Upsert(spell("2"), []byte(`{"a":`)) }, ErrNotObject},
		{"unknown collection", func(tx *Tx) error { return tx.Create(txlog.Ref{Collection: "potions", ID: "1"}, []byte(`{}`)) }, ErrUnknownCollection},
		{"a later write fails", func(tx *Tx) error {
			if err := tx.Create(spell("3"), []byte(`{"element":"fire"}`)); err != nil {
				return err
			}
			return tx.Delete(spell("4"))
		}, ErrNotFound},
		{"the function fails", func(tx *Tx) error {
			tx.Create(spell("3"), []byte(`{"element":"fire"}`))
			return errors.New("changed my mind")
		}, nil},
	}
	for _, c := range cases {
		_, err := b.Commit(ctx, c.fn)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		var we *WriteError
		if c.want != nil && !errors.As(err, &we) {
			t.Errorf("%s: %T is not a *WriteError", c.name, err)
		}
	}
	if b.Head() != head {
		t.Fatalf("head moved from %d to %d: a failed transaction committed", head, b.Head())
	}
	if _, ok := b.Get(spell("3")); ok {
		t.Fatal("a rolled-back create is visible")
	}
	// Nothing was published: the next event is the next real commit.
	txn := mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("5"), []byte(`{"element":"fire"}`)) })
	evs := take(t, s, 2)
	if w := parse(t, evs[1]); w.Txn != uint64(txn) || w.Event.Action != "add" {
		t.Fatalf("after the failures: %s", evs[1].JSON)
	}
	b.Close()
	if _, err := b.Commit(ctx, func(tx *Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
}

// Subscribe refuses what it cannot serve; of Guarantee 4 (broker package
// doc), a cursor of another log is refused with ErrHistoryUnavailable.
func TestSubscribeErrors(t *testing.T) {
	b := spellsBroker(t)
	ctx := context.Background()
	badIndex, _ := subscription.Match("nope", "x")
	wrongTerms, _ := subscription.Match("spells_by_element")
	for name, c := range map[string]struct {
		target subscription.Target
		opt    subscription.Options
		want   error
	}{
		"missing document":   {subscription.Document(spell("x")), subscription.Options{}, ErrNotFound},
		"unknown collection": {subscription.Collection("potions"), subscription.Options{}, subscription.ErrInvalidTarget},
		"unknown index":      {badIndex, subscription.Options{}, subscription.ErrInvalidTarget},
		"wrong term count":   {wrongTerms, subscription.Options{}, subscription.ErrInvalidTarget},
		"bad cursor":         {subscription.Collection("spells"), subscription.Options{Cursor: "nope"}, ErrInvalidCursor},
		"other log":          {subscription.Collection("spells"), subscription.Options{Cursor: txlog.Cursor{Log: txlog.NewID()}.String()}, ErrHistoryUnavailable},
		"bad page size":      {subscription.Collection("spells"), subscription.Options{SnapshotPageSize: 5000}, subscription.ErrInvalidOptions},
	} {
		if _, err := b.Subscribe(ctx, c.target, c.opt); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// A subscriber whose queue overflows while it does not read gets every
// event all the same, from the log, and then rejoins live delivery.
//
// Guarantees 4 and 5 (broker package doc): nothing is lost to an overflow;
// the commits go on while the subscriber does not read, and its
// overflowed queue holds nothing.
func TestSlowSubscriberLosesNothing(t *testing.T) {
	b := spellsBroker(t)
	s := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Buffer: 4})
	var txns []txlog.Txn
	for i := range 50 {
		txns = append(txns, mustCommit(t, b, func(tx *Tx) error {
			return tx.Create(spell(fmt.Sprint(i)), []byte(`{}`))
		}))
	}
	if st := b.Stats(); st.BytesBuffered != 0 {
		t.Fatalf("an overflowed queue still holds %d bytes", st.BytesBuffered)
	}
	evs := take(t, s, 51)
	for i, e := range evs[1:] {
		if e.Txn != txns[i] || e.Action != "add" {
			t.Fatalf("event %d: txn %d %s, want %d add", i, e.Txn, e.Action, txns[i])
		}
	}
}

// Guarantee 3 (broker package doc): resuming from the cursor of any event
// of a stream, also one in the middle of a transaction, delivers exactly
// the events after it, from a start txn below the next one.
func TestResumeFromEveryCursor(t *testing.T) {
	b := spellsBroker(t)
	all := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Updates: true})
	for i := range 5 {
		mustCommit(t, b, func(tx *Tx) error {
			tx.Create(spell(fmt.Sprint(i)), []byte(`{"element":"fire"}`))
			return tx.Create(spell(fmt.Sprint(i+100)), []byte(`{"element":"air"}`))
		})
	}
	mustCommit(t, b, func(tx *Tx) error { return tx.Update(spell("1"), []byte(`{"element":"water"}`)) })
	evs := take(t, all, 12)
	for i, e := range evs {
		r := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Updates: true, Cursor: e.Cursor.String()})
		got := take(t, r, len(evs)-i)
		if got[0].Type != subscription.TypeStart {
			t.Fatalf("resume after event %d: first is %s", i, got[0].Type)
		}
		for j, g := range got[1:] {
			if string(g.JSON) != string(evs[i+1+j].JSON) {
				t.Fatalf("resume after event %d: event %d is %s, want %s", i, j, g.JSON, evs[i+1+j].JSON)
			}
		}
		if i+1 < len(evs) && got[0].Txn >= evs[i+1].Txn {
			t.Fatalf("resume start txn %d is not below the next event's %d", got[0].Txn, evs[i+1].Txn)
		}
	}
}

// Guarantee 4 (broker package doc): a cursor that retention has dropped is
// refused with ErrHistoryUnavailable, and a subscriber that falls behind
// retention is told so with history_unavailable naming its last cursor.
func TestHistoryUnavailableAfterRetention(t *testing.T) {
	b, err := New(Options{Log: txlog.NewMemory(txlog.MemoryOptions{MaxRecords: 10}), Schema: index.Schema{Collections: []string{"spells"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Buffer: 2})
	first := mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("a"), []byte(`{}`)) })
	old := txlog.Cursor{Log: b.LogID(), Pos: txlog.Pos{Txn: first}}
	for i := range 30 {
		mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell(fmt.Sprint(i)), []byte(`{}`)) })
	}
	if _, err := b.Subscribe(context.Background(), subscription.Collection("spells"), subscription.Options{Cursor: old.String()}); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("resume from a dropped cursor: %v", err)
	}
	// The slow subscriber overflowed and fell behind retention: it is told
	// so, with the cursor of the last event it received (its start).
	var got []subscription.Event
	for e := range s.Events() {
		got = append(got, e)
	}
	last := got[len(got)-1]
	w := parse(t, last)
	if last.Type != subscription.TypeError || w.Event.Code != subscription.CodeHistoryUnavailable || w.Event.Cursor != got[len(got)-2].Cursor.String() {
		t.Fatalf("last event %s", last.JSON)
	}
}

// Guarantee 7 (broker package doc): Close ends a stream with shutting_down
// and the cursor of its last event, and refuses later subscriptions.
func TestCloseEndsStreamsWithCursor(t *testing.T) {
	b := spellsBroker(t)
	s := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{})
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("a"), []byte(`{}`)) })
	b.Close()
	var got []subscription.Event
	for e := range s.Events() {
		got = append(got, e)
	}
	if len(got) != 3 {
		t.Fatalf("%d events, want start, add, error", len(got))
	}
	w := parse(t, got[2])
	if w.Type != "error" || w.Event.Code != subscription.CodeShuttingDown || w.Event.Cursor != got[1].Cursor.String() {
		t.Fatalf("last event %s", got[2].JSON)
	}
	if _, err := b.Subscribe(context.Background(), subscription.Collection("spells"), subscription.Options{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

func TestHistoryRewrite(t *testing.T) {
	b := spellsBroker(t)
	ctx := context.Background()
	t1 := mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("a"), []byte(`{"v":1}`)) })
	t2 := mustCommit(t, b, func(tx *Tx) error { return tx.Update(spell("a"), []byte(`{"v":2}`)) })
	doc := mustSubscribe(t, b, subscription.Document(spell("a")), subscription.Options{})
	set := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{})
	if _, err := b.RewriteHistory(ctx, spell("a"), t2, []byte(`{}`)); !errors.Is(err, ErrInvalidRewrite) {
		t.Fatalf("rewrite of the current version: %v", err)
	}
	rw := func(ts txlog.Txn, data []byte) txlog.Txn {
		txn, err := b.RewriteHistory(ctx, spell("a"), ts, data)
		if err != nil {
			t.Fatal(err)
		}
		return txn
	}
	r1 := rw(t1+1, []byte(`{"v":1.5}`))
	r2 := rw(t1, nil)
	if d, _ := b.Get(spell("a")); string(d.Data) != `{"v":2}` || d.TS != t2 {
		t.Fatalf("a rewrite changed the current version: %s at %d", d.Data, d.TS)
	}
	mark := mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("b"), []byte(`{}`)) })
	evs := take(t, doc, 3)
	for i, want := range []struct {
		txn    txlog.Txn
		action string
		ts     txlog.Txn
	}{{r1, "insert", t1 + 1}, {r2, "remove", t1}} {
		e := evs[i+1]
		var w struct {
			Event struct {
				Document struct{ TS uint64 } `json:"document"`
			} `json:"event"`
		}
		json.Unmarshal(e.JSON, &w)
		if e.Type != subscription.TypeHistoryRewrite || e.Txn != want.txn || e.Action != want.action || w.Event.Document.TS != uint64(want.ts) {
			t.Fatalf("event %d: %s", i, e.JSON)
		}
	}
	// The set stream saw nothing of the rewrites: its next event is b's add.
	if evs := take(t, set, 2); evs[1].Txn != mark {
		t.Fatalf("set stream: %s", evs[1].JSON)
	}
}

func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := spellsBroker(t)
		txn := mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("a"), []byte(`{}`)) })
		s := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Heartbeat: 15 * time.Second})
		start := time.Now()
		var got []subscription.Event
		for e := range s.Events() {
			got = append(got, e)
			if len(got) == 3 {
				break
			}
		}
		if time.Since(start) != 30*time.Second {
			t.Fatalf("two heartbeats took %v, want 30s", time.Since(start))
		}
		for _, e := range got[1:] {
			if e.Type != subscription.TypeStatus || e.Txn != txn || string(e.JSON) != fmt.Sprintf(`{"type":"status","txn":%d}`, txn) {
				t.Fatalf("heartbeat %s", e.JSON)
			}
		}
	})
}

func TestDefineIndexWhileRunning(t *testing.T) {
	b := spellsBroker(t)
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("a"), []byte(`{"school":"evocation"}`)) })
	if err := b.DefineIndex(index.Definition{Name: "spells_by_school", Collection: "spells", Terms: []string{"school"}}); err != nil {
		t.Fatal(err)
	}
	target, _ := subscription.Match("spells_by_school", "evocation")
	s := mustSubscribe(t, b, target, subscription.Options{Snapshot: true})
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("b"), []byte(`{"school":"evocation"}`)) })
	evs := take(t, s, 3)
	if evs[1].Type != subscription.TypeSnapshot || !json.Valid(evs[1].JSON) || evs[2].Action != "add" {
		t.Fatalf("events %s / %s", evs[1].JSON, evs[2].JSON)
	}
	var snap struct {
		Event struct {
			Data []struct{ Document struct{ Ref txlog.Ref } } `json:"data"`
			Last bool                                         `json:"last"`
		} `json:"event"`
	}
	json.Unmarshal(evs[1].JSON, &snap)
	if len(snap.Event.Data) != 1 || snap.Event.Data[0].Document.Ref != spell("a") || !snap.Event.Last {
		t.Fatalf("snapshot %s", evs[1].JSON)
	}
	if err := b.DefineCollection("potions"); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, func(tx *Tx) error { return tx.Create(txlog.Ref{Collection: "potions", ID: "1"}, []byte(`{}`)) })

	// Schema reports both, and is a copy.
	got := b.Schema()
	if !slices.Contains(got.Collections, "potions") || !slices.ContainsFunc(got.Indexes, func(d index.Definition) bool {
		return d.Name == "spells_by_school" && d.Collection == "spells" && slices.Equal(d.Terms, []string{"school"})
	}) {
		t.Fatalf("schema %+v", got)
	}
	got.Collections[0] = "changed"
	got.Indexes[len(got.Indexes)-1].Terms[0] = "changed"
	if again := b.Schema(); slices.Contains(again.Collections, "changed") || again.Indexes[len(again.Indexes)-1].Terms[0] != "school" {
		t.Fatalf("Schema is not a copy: %+v", again)
	}
}

func TestStats(t *testing.T) {
	b := spellsBroker(t)
	s := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{})
	mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{Buffer: 1})
	for i := range 3 {
		mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell(fmt.Sprint(i)), []byte(`{"n":1}`)) })
	}
	st := b.Stats()
	// The first subscriber holds three queued events; the second overflowed
	// on its second and holds nothing.
	if st.Subscriptions != 2 || st.Commits != 3 || st.BytesBuffered <= 0 || st.EventsDelivered != 0 {
		t.Fatalf("before reading: %+v", st)
	}
	take(t, s, 4)
	st = b.Stats()
	if st.Subscriptions != 1 || st.EventsDelivered != 4 || st.CatchingUp != 0 {
		t.Fatalf("after reading and closing one: %+v", st)
	}
}

// Batches gives the same events as Events, grouped as they were ready: a
// subscriber that was not reading gets a queue's worth in one batch.
func TestBatches(t *testing.T) {
	b := spellsBroker(t)
	one := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{})
	many := mustSubscribe(t, b, subscription.Collection("spells"), subscription.Options{})
	for i := range 10 {
		mustCommit(t, b, func(tx *Tx) error {
			tx.Create(spell(fmt.Sprint(i)), []byte(`{}`))
			return tx.Create(spell(fmt.Sprint(i+100)), []byte(`{}`))
		})
	}
	want := take(t, one, 21)
	var got []subscription.Event
	var sizes []int
	for batch := range many.Batches() {
		sizes = append(sizes, len(batch))
		got = append(got, batch...)
		if len(got) >= 21 {
			break
		}
	}
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 20 {
		t.Fatalf("batch sizes %v, want [1 20]: the start, then everything queued", sizes)
	}
	for i := range want {
		if string(got[i].JSON) != string(want[i].JSON) {
			t.Fatalf("event %d: %s, want %s", i, got[i].JSON, want[i].JSON)
		}
	}
}

// A set update with fields including diff carries what changed, removed
// fields null, alike live and read from the log; adds and removes carry
// none.
func TestSetUpdateDiff(t *testing.T) {
	b := spellsBroker(t)
	opt := subscription.Options{Updates: true, Data: true, Fields: subscription.DefaultFields | subscription.FieldDiff}
	s := mustSubscribe(t, b, subscription.Collection("spells"), opt)
	start := mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("a"), []byte(`{"element":"fire","cost":3}`)) })
	mustCommit(t, b, func(tx *Tx) error { return tx.Replace(spell("a"), []byte(`{"element":"water"}`)) })
	live := take(t, s, 3)[1:]
	var ev struct {
		Event struct {
			Action string
			Diff   *struct{ Data map[string]any }
		}
	}
	json.Unmarshal(live[0].JSON, &ev)
	if ev.Event.Action != "add" || ev.Event.Diff != nil {
		t.Fatalf("add: %s", live[0].JSON)
	}
	json.Unmarshal(live[1].JSON, &ev)
	if d := ev.Event.Diff; ev.Event.Action != "update" || d == nil || len(d.Data) != 2 || d.Data["element"] != "water" ||
		d.Data["cost"] != nil || !hasKey(d.Data, "cost") {
		t.Fatalf("update: %s", live[1].JSON)
	}
	opt.Cursor = txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(start - 1)}.String()
	page, err := b.ReadPage(t.Context(), subscription.Collection("spells"), opt, 10, false)
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("page: %+v, %v", page, err)
	}
	for i := range live {
		if string(page.Events[i].JSON) != string(live[i].JSON) {
			t.Fatalf("read from the log: %s, live: %s", page.Events[i].JSON, live[i].JSON)
		}
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }
