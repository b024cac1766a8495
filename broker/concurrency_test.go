package broker

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// The terms of the sets that subscribers of TestStartUnderConcurrency
// follow; each of these sets gets a marker document in the final commit.
var (
	elementTerms = []any{"fire", "water", "earth", nil, 1.0, []any{"fire"}, map[string]any{"k": "fire"}}
	tagTerms     = []any{"a", "b", "c"}
	teamTerms    = []any{"red", "blue", nil}
	roleTerms    = []any{"admin", "user", nil}
)

// markerDocs are created by the final commit, after everything else: at
// least one is a member of every set a subscriber may follow, and none is
// written before.
func markerDocs() map[txlog.Ref]map[string]any {
	docs := map[txlog.Ref]map[string]any{}
	for i, e := range elementTerms {
		if arr, ok := e.([]any); ok {
			e = []any{arr} // an array element is one value: the term is the array
		}
		docs[txlog.Ref{Collection: "spells", ID: fmt.Sprintf("marker-%d", i)}] = map[string]any{
			"name": "marker", "element": e, "cost": 0, "tags": []any{tagTerms[i%len(tagTerms)]}}
	}
	for i, team := range teamTerms {
		for j, role := range roleTerms {
			docs[txlog.Ref{Collection: "users", ID: fmt.Sprintf("marker-%d-%d", i, j)}] = map[string]any{
				"team": team, "profile": map[string]any{"role": role}, "age": 1}
		}
	}
	docs[txlog.Ref{Collection: "notes", ID: "marker-notes"}] = map[string]any{"text": "marker"}
	// As the model sees them: decoded from their JSON.
	for ref, d := range docs {
		docs[ref], _ = decodeObject(encodeData(nil, d))
	}
	return docs
}

func randomSetTarget(r *rand.Rand) mTarget {
	switch r.IntN(7) {
	case 0:
		return mTarget{kind: subscription.KindCollection, coll: pick(r, modelSchema.Collections...)}
	case 1, 2:
		return mTarget{kind: subscription.KindIndex, index: "spells_by_element", terms: []any{pick(r, elementTerms...)}}
	case 3:
		return mTarget{kind: subscription.KindIndex, index: "spells_by_tag", terms: []any{pick(r, tagTerms...)}}
	case 4:
		return mTarget{kind: subscription.KindIndex, index: "spells_by_level"}
	case 5:
		return mTarget{kind: subscription.KindIndex, index: "users_by_team_role",
			terms: []any{pick(r, teamTerms...), pick(r, roleTerms...)}}
	}
	return mTarget{kind: subscription.KindIndex, index: "users_all"}
}

// starter is one subscriber of TestStartUnderConcurrency.
type starter struct {
	x       xSub
	markers int // marker adds that end a set stream
	seen    int // marker adds received
	got     []subscription.Event
	err     error
}

// readUntilMarker collects the stream up to the final commit's last event
// for it: the marker adds of a set, the marker version of a document.
func (s *starter) readUntilMarker(sub *Subscription) {
	for e := range sub.Events() {
		s.got = append(s.got, e)
		if e.Type == subscription.TypeError {
			s.err = fmt.Errorf("error event %s", e.JSON)
			return
		}
		if e.Type != subscription.TypeVersion && e.Type != subscription.TypeSet {
			continue
		}
		var ev struct {
			Type  string
			Event struct {
				Action   string
				Document struct {
					Ref  txlog.Ref
					Data map[string]any
				}
			}
		}
		if err := json.Unmarshal(e.JSON, &ev); err != nil {
			s.err = err
			return
		}
		switch {
		case e.Type == subscription.TypeVersion && ev.Event.Document.Data["marker"] == true:
			return
		case e.Type == subscription.TypeSet && ev.Event.Action == "add" && strings.HasPrefix(ev.Event.Document.Ref.ID, "marker-"):
			if s.seen++; s.seen == s.markers {
				return
			}
		}
	}
	s.err = errors.New("the stream ended before the final commit")
}

var flagStartTimeout = flag.Duration("start.timeout", 2*time.Minute, "how long TestStartUnderConcurrency waits for its streams")

// TestStartUnderConcurrency starts subscriptions with snapshot, to sets and
// documents, at random moments while eight goroutines commit random
// transactions, some of them with queues so small that they overflow and
// catch up from the log while commits go on. Each stream must be exactly
// the snapshot at its start txn followed by every event after it, with no
// gap and no duplicate: it is compared with what the log (read back, and
// checked to hold every committed transaction) says, event by event, and
// folding its snapshot and events must give the membership or the document
// at the end. The final commit writes marker documents (and marks every
// followed document) so that each stream knows where it ends. This is
// Guarantee 2 (broker package doc) under load, with 1 and 4.
//
// Replay a run's random choices (not its interleaving) with the seed it
// logs: go test ./broker -run '^TestStartUnderConcurrency$' -args -model.seed=N
//
// It runs on the memory log, and on the file log, where commits stage
// under the lock, share fsyncs outside it, and are delivered in txn order
// once durable: subscriptions then start at a txn that may still be
// pending.
func TestStartUnderConcurrency(t *testing.T) {
	t.Run("memory", func(t *testing.T) { startUnderConcurrency(t, nil) })
	t.Run("file", func(t *testing.T) {
		l, err := txlog.OpenFile(t.TempDir(), txlog.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		startUnderConcurrency(t, l)
	})
}

func startUnderConcurrency(t *testing.T, lg txlog.Log) {
	seed := modelSeed(t)
	const committers, perCommitter, subscribers, step = 8, 250, 50, 16
	total := committers * perCommitter
	b, err := New(Options{Schema: modelSchema, Log: lg, Checkpoint: CheckpointOptions{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	// Documents that are never deleted, for document streams to fall back on.
	var anchors []txlog.Ref
	if _, err := b.Commit(ctx, func(tx *Tx) error {
		r := rand.New(rand.NewPCG(seed, 0))
		for _, coll := range modelSchema.Collections {
			ref := txlog.Ref{Collection: coll, ID: "anchor"}
			anchors = append(anchors, ref)
			if err := tx.Create(ref, encodeData(r, genData(r, coll))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pool := slices.Clone(anchors)
	for _, coll := range modelSchema.Collections {
		for _, id := range modelIDs {
			pool = append(pool, txlog.Ref{Collection: coll, ID: id})
		}
	}

	// milestone[k] is closed once k*step transactions have been attempted.
	milestone := make([]chan struct{}, total/step+1)
	for k := range milestone {
		milestone[k] = make(chan struct{})
	}
	close(milestone[0])
	var attempts atomic.Int64
	committed := make([][]txlog.Txn, committers)
	var wg sync.WaitGroup
	for k := range committers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(1+k)))
			for range perCommitter {
				abort := r.IntN(20) == 0
				var existed, exists map[txlog.Ref]bool
				txn, err := b.Commit(ctx, func(tx *Tx) error {
					existed, exists = map[txlog.Ref]bool{}, map[txlog.Ref]bool{}
					for range 1 + r.IntN(3) {
						ref := pool[r.IntN(len(pool))]
						_, ok := tx.Get(ref)
						if _, seen := exists[ref]; !seen {
							existed[ref] = ok
						}
						var err error
						switch {
						case !ok:
							err = tx.Create(ref, encodeData(r, genData(r, ref.Collection)))
						case r.IntN(4) == 0 && ref.ID != "anchor":
							err = tx.Delete(ref)
						case r.IntN(3) == 0:
							err = tx.Upsert(ref, encodeData(r, genData(r, ref.Collection)))
						default:
							err = tx.Update(ref, encodeData(r, genPatch(r, ref.Collection)))
						}
						if err != nil {
							return err
						}
						_, exists[ref] = tx.Get(ref)
					}
					if abort {
						return errAbort
					}
					return nil
				})
				switch {
				case abort && !errors.Is(err, errAbort):
					t.Errorf("an aborted transaction: %v", err)
				case !abort && err != nil:
					t.Errorf("commit: %v", err)
				case !abort && !maps.Equal(existed, map[txlog.Ref]bool{}):
					// A transaction whose writes cancel out (created and
					// deleted) commits nothing and returns the head.
					for ref := range exists {
						if existed[ref] || exists[ref] {
							committed[k] = append(committed[k], txn)
							break
						}
					}
				}
				if n := attempts.Add(1); n%step == 0 {
					close(milestone[n/step])
				}
			}
		})
	}

	markers := markerDocs()
	starters := make([]*starter, subscribers)
	var subscribed, reading sync.WaitGroup
	var mu sync.Mutex
	marked := map[txlog.Ref]bool{} // documents that document streams follow
	for j := range subscribers {
		r := rand.New(rand.NewPCG(seed, uint64(1000+j)))
		s := &starter{}
		starters[j] = s
		s.x.opt = subscription.Options{Snapshot: true, SnapshotPageSize: pick(r, 0, 1, 3, 10),
			Data: r.IntN(2) == 0, Updates: r.IntN(3) == 0}
		if r.IntN(3) == 0 {
			s.x.opt.Buffer = 2 + r.IntN(6) // overflows, and catches up while commits go on
		}
		extra := subscription.Fields(r.IntN(32))
		if r.IntN(3) == 0 {
			s.x.target = mTarget{kind: subscription.KindDocument, ref: pool[r.IntN(len(pool))]}
			s.x.opt.Fields = subscription.FieldAction | subscription.FieldDocument | extra
		} else {
			s.x.target = randomSetTarget(r)
			s.x.opt.Fields = subscription.FieldAction | subscription.FieldDocument | subscription.FieldIndex | extra
			for ref, d := range markers {
				if s.x.target.collection() != ref.Collection {
					continue
				}
				if s.x.target.kind == subscription.KindCollection {
					s.markers++
				} else {
					s.markers += len(s.x.target.inSet(modelEntries(modelDefs[s.x.target.index], d)))
				}
			}
			if s.markers == 0 {
				t.Fatalf("no marker document in %s", s.x.target)
			}
		}
		at := milestone[r.IntN(len(milestone))]
		subscribed.Add(1)
		reading.Go(func() {
			<-at
			sub, err := b.Subscribe(ctx, must(s.x.target.target()), s.x.opt)
			if errors.Is(err, ErrNotFound) {
				// The document is deleted just now: follow an anchor.
				s.x.target.ref = anchors[slices.Index(modelSchema.Collections, s.x.target.ref.Collection)]
				sub, err = b.Subscribe(ctx, must(s.x.target.target()), s.x.opt)
			}
			if err != nil {
				s.err = err
				subscribed.Done()
				return
			}
			if s.x.target.kind == subscription.KindDocument {
				mu.Lock()
				marked[s.x.target.ref] = true
				mu.Unlock()
			}
			s.x.start = sub.Start()
			subscribed.Done()
			s.readUntilMarker(sub)
		})
	}
	wg.Wait()
	subscribed.Wait()

	// The final commit: mark every followed document, then create the
	// markers, whose events end every stream.
	final, err := b.Commit(ctx, func(tx *Tx) error {
		for _, ref := range slices.SortedFunc(maps.Keys(marked), func(a, b txlog.Ref) int { return strings.Compare(a.String(), b.String()) }) {
			var err error
			if _, ok := tx.Get(ref); ok {
				err = tx.Update(ref, []byte(`{"marker":true}`))
			} else {
				err = tx.Create(ref, []byte(`{"marker":true}`))
			}
			if err != nil {
				return err
			}
		}
		for _, ref := range slices.SortedFunc(maps.Keys(markers), func(a, b txlog.Ref) int { return strings.Compare(a.String(), b.String()) }) {
			if err := tx.Create(ref, encodeData(nil, markers[ref])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read the log back: every committed txn, in order, and nothing else.
	var recs []mRecord
	for rec, err := range b.log.Read(txlog.Cursor{Log: b.LogID()}) {
		if err != nil {
			t.Fatal(err)
		}
		mr := mRecord{txn: rec.Txn}
		for _, w := range rec.Writes {
			mw := mWrite{ref: w.Ref, action: w.Action.String(), beforeTS: w.BeforeTxn}
			if w.Before != nil {
				mw.before, _ = decodeObject(w.Before)
			}
			if w.After != nil {
				mw.after, _ = decodeObject(w.After)
			}
			mr.writes = append(mr.writes, mw)
		}
		recs = append(recs, mr)
	}
	var want []txlog.Txn
	for _, c := range committed {
		if !slices.IsSorted(c) {
			t.Errorf("one committer's txns are not increasing: %v", c)
		}
		want = append(want, c...)
	}
	slices.Sort(want)
	var logged []txlog.Txn
	for _, r := range recs[1 : len(recs)-1] {
		logged = append(logged, r.txn)
	}
	if !slices.Equal(logged, want) || recs[len(recs)-1].txn != final {
		i := 0
		for i < len(logged) && i < len(want) && logged[i] == want[i] {
			i++
		}
		t.Fatalf("the log holds %d txns then %d; the committers committed %d then %d; they differ from the %dth: log %v, committers %v",
			len(logged), recs[len(recs)-1].txn, len(want), final, i, logged[i:min(i+3, len(logged))], want[i:min(i+3, len(want))])
	}

	ended := make(chan struct{})
	go func() { reading.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(*flagStartTimeout):
		t.Errorf("some streams have not seen the final commit in %v", *flagStartTimeout)
		b.Close() // ends every stream with shutting_down, so that they can be compared
		<-ended
	}

	// The state after each record, by replaying the log.
	states := make([]map[txlog.Ref]mDoc, len(recs))
	state := map[txlog.Ref]mDoc{}
	for i, rec := range recs {
		state = maps.Clone(state)
		for _, w := range rec.writes {
			if w.after == nil {
				delete(state, w.ref)
			} else {
				state[w.ref] = mDoc{ts: rec.txn, data: w.after}
			}
		}
		states[i] = state
	}
	for _, ref := range pool {
		doc, ok := b.Get(ref)
		d, wok := state[ref]
		data, _ := decodeObject(doc.Data)
		if ok != wok || ok && (doc.TS != d.ts || !reflect.DeepEqual(data, d.data)) {
			t.Errorf("Get(%s) = %d %s, %t; the log says %d %v, %t", ref, doc.TS, doc.Data, ok, d.ts, d.data, wok)
		}
	}

	var events, during, overflowing int
	for j, s := range starters {
		if s.err != nil {
			t.Errorf("subscriber %d (%s): %v (%d of %d marker adds)", j, s.x.target, s.err, s.seen, s.markers)
			if s.x.start == 0 {
				continue // Subscribe failed
			}
		}
		i, found := slices.BinarySearchFunc(recs, s.x.start, func(r mRecord, t txlog.Txn) int { return cmpTxn(r.txn, t) })
		if !found {
			t.Errorf("subscriber %d (%s): start txn %d is not a committed txn", j, s.x.target, s.x.start)
			continue
		}
		if s.x.start > recs[0].txn && s.x.start < recs[len(recs)-2].txn {
			during++
		}
		if s.x.opt.Buffer > 0 {
			overflowing++
		}
		s.x.cursor = txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(s.x.start)}
		s.x.snap = states[i]
		exp := s.x.expect(b.LogID(), recs)
		var errs []string
		for _, e := range checkStream(s.got) {
			errs = append(errs, "invariant: "+e)
		}
		for k := 0; k < len(s.got) || k < len(exp); k++ {
			switch {
			case k >= len(s.got):
				errs = append(errs, fmt.Sprintf("event %d missing: %s", k, exp[k]))
			case k >= len(exp):
				errs = append(errs, fmt.Sprintf("event %d unexpected: %s", k, s.got[k].JSON))
			default:
				if d := matchEvent(s.got[k], exp[k]); d != "" {
					errs = append(errs, fmt.Sprintf("event %d: %s", k, d))
				}
			}
			if len(errs) >= 6 {
				break
			}
		}
		if err := s.fold(state); err != nil {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			t.Errorf("subscriber %d: %s from txn %d: %d events, %d expected:\n\t%s", j, &s.x, s.x.start, len(s.got), len(exp), strings.Join(errs, "\n\t"))
		}
		events += len(s.got)
	}
	t.Logf("%d transactions by %d committers and a final one; %d subscribers started with snapshot, %d of them while commits ran, %d with a queue of 2 to 7 events; %d events checked; %+v",
		len(recs)-1, committers, subscribers, during, overflowing, events, b.Stats())
}

func cmpTxn(a, b txlog.Txn) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fold applies the stream to its snapshot and compares the result with
// the final state: the set's members (ref, terms, values) or the document.
func (s *starter) fold(final map[txlog.Ref]mDoc) error {
	type jsonEvent struct {
		Event struct {
			Action   string
			Data     []json.RawMessage
			Document struct {
				Ref  txlog.Ref
				Data map[string]any
			}
			Index json.RawMessage
		}
	}
	key := func(ref txlog.Ref, idx json.RawMessage) string {
		var v any
		_ = json.Unmarshal(idx, &v)
		b, _ := json.Marshal(v)
		return ref.ID + " " + string(b)
	}
	if s.x.target.kind == subscription.KindDocument {
		var doc map[string]any
		for _, e := range s.got {
			var ev jsonEvent
			_ = json.Unmarshal(e.JSON, &ev)
			switch e.Type {
			case subscription.TypeSnapshot:
				var m struct{ Document struct{ Data map[string]any } }
				_ = json.Unmarshal(ev.Event.Data[0], &m)
				doc = m.Document.Data
			case subscription.TypeVersion:
				if (ev.Event.Action == "create") != (doc == nil) {
					return fmt.Errorf("fold: %s of a document that exists: %t", ev.Event.Action, doc != nil)
				}
				doc = ev.Event.Document.Data
			}
		}
		if want := final[s.x.target.ref].data; !reflect.DeepEqual(doc, want) {
			return fmt.Errorf("fold: the stream ends with %v, the document is %v", doc, want)
		}
		return nil
	}
	members := map[string]bool{}
	for _, e := range s.got {
		var ev jsonEvent
		_ = json.Unmarshal(e.JSON, &ev)
		switch e.Type {
		case subscription.TypeSnapshot:
			for _, raw := range ev.Event.Data {
				var m struct {
					Document struct{ Ref txlog.Ref }
					Index    json.RawMessage
				}
				_ = json.Unmarshal(raw, &m)
				members[key(m.Document.Ref, m.Index)] = true
			}
		case subscription.TypeSet:
			k := key(ev.Event.Document.Ref, ev.Event.Index)
			switch ev.Event.Action {
			case "add", "remove":
				if members[k] != (ev.Event.Action == "remove") {
					return fmt.Errorf("fold: %s of %s, a member already: %t", ev.Event.Action, k, members[k])
				}
				members[k] = ev.Event.Action == "add"
			case "update":
				if !members[k] {
					return fmt.Errorf("fold: update of %s, not a member", k)
				}
			}
		}
	}
	want := map[string]bool{}
	for _, m := range s.x.target.members(final) {
		b, _ := json.Marshal(indexJSON(m.e))
		want[key(m.ref, b)] = true
	}
	maps.DeleteFunc(members, func(_ string, in bool) bool { return !in })
	if !maps.Equal(members, want) {
		return fmt.Errorf("fold: snapshot and events give %d members %v, the set has %d: %v",
			len(members), slices.Sorted(maps.Keys(members)), len(want), slices.Sorted(maps.Keys(want)))
	}
	return nil
}

// TestSubscribeCancelledContext subscribes with a context that is already
// cancelled, or cancelled while Subscribe runs: the subscription closes
// itself, its Events end, and (under -race) nothing races.
func TestSubscribeCancelledContext(t *testing.T) {
	b := spellsBroker(t)
	for i := range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		if i%2 == 0 {
			cancel()
		} else {
			go cancel()
		}
		s, err := b.Subscribe(ctx, subscription.Collection("spells"), subscription.Options{})
		if err != nil {
			t.Fatal(err)
		}
		<-ctx.Done()
		for e := range s.Events() {
			if e.Type != subscription.TypeStart {
				t.Fatalf("a cancelled subscription delivers %s", e.JSON)
			}
		}
		s.Close()
	}
	if n := b.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions open after their contexts were cancelled", n)
	}
}
