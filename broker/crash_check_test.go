package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// The checks TestBrokerCrash makes after each kill, in the order
// crashHarness.check makes them: the restart, the log, the state, the
// subscribers (crash_resume_test.go: those that resume in the restarted
// broker). Each check reads the crashRound that the ones before it filled
// in, and may add to it and to the harness's figures.

// crashLoadedMsg is what the broker logs when it loads a checkpoint.
const crashLoadedMsg = "state loaded from a checkpoint"

var crashTornPattern = regexp.MustCompile(`truncating a record torn by a crash\b.*? bytes=(\d+)`)

// checkRestartClean: reopening skipped no checkpoint (a SIGKILL never
// damages one) and logged no error. It counts the checkpoint loads and the
// bytes of torn records the log truncated.
func (h *crashHarness) checkRestartClean(r *crashRound) error {
	if strings.Contains(r.said, "skipping a checkpoint") || strings.Contains(r.said, "level=ERROR") {
		return fmt.Errorf("reopening: a checkpoint that a SIGKILL should never damage was skipped, or an error:\n%s", r.said)
	}
	if strings.Contains(r.said, crashLoadedMsg) {
		h.loaded++
	}
	torn := 0
	for _, m := range crashTornPattern.FindAllStringSubmatch(r.said, -1) {
		n, _ := strconv.Atoi(m[1])
		torn += n
	}
	if torn > 0 {
		h.tornBytes += torn
		h.tornRounds++
	}
	return nil
}

// checkLogReadable: the log reads from its oldest retained record to its
// head, which is the broker's head too, with txns going upward.
func (h *crashHarness) checkLogReadable(r *crashRound) error {
	r.oldest, r.head = r.l.Oldest(), r.l.Head()
	recs, err := crashReadLog(r.l, r.oldest)
	if err != nil {
		return fmt.Errorf("reading the log after %d: %w", r.oldest.Txn, err)
	}
	if len(recs) == 0 || r.head != recs[len(recs)-1].Last() || r.b.Head() != r.head.Txn {
		return fmt.Errorf("%d records after the oldest %d; log head %+v, broker head %d", len(recs), r.oldest.Txn, r.head, r.b.Head())
	}
	for i := range recs {
		if i > 0 && recs[i].Txn <= recs[i-1].Txn {
			return fmt.Errorf("txn %d follows txn %d in the log", recs[i].Txn, recs[i-1].Txn)
		}
	}
	r.recs = recs
	return nil
}

// checkEarlierRoundsKept: the log holds every record of earlier rounds
// that retention has not dropped, unchanged, and then this round's. It
// counts the records dropped.
func (h *crashHarness) checkEarlierRoundsKept(r *crashRound) error {
	kept := slices.IndexFunc(h.hist, func(rec crashHist) bool { return rec.txn > r.oldest.Txn })
	if kept < 0 {
		kept = len(h.hist)
	}
	h.dropped += kept
	old := h.hist[kept:]
	if len(r.recs) < len(old) {
		return fmt.Errorf("the log holds %d records after %d, fewer than the %d that earlier rounds left there", len(r.recs), r.oldest.Txn, len(old))
	}
	for i, want := range old {
		if r.recs[i].Txn != want.txn || crashSum(&r.recs[i]) != want.sum {
			return fmt.Errorf("an earlier round's record at txn %d is now txn %d, or changed", want.txn, r.recs[i].Txn)
		}
	}
	r.fresh = r.recs[len(old):]
	return nil
}

// checkChildStartedAtBase: this round's records are above the last txn
// before the child started, and the child started at that head.
func (h *crashHarness) checkChildStartedAtBase(r *crashRound) error {
	if len(r.fresh) > 0 && r.fresh[0].Txn <= h.base {
		return fmt.Errorf("txn %d in the log, not above the last txn %d before the child started, and unknown", r.fresh[0].Txn, h.base)
	}
	if r.run.ready && r.run.head != h.base {
		return fmt.Errorf("the child started at head %d, the log ended at %d", r.run.head, h.base)
	}
	return nil
}

// checkAcksUpward: each committer's acknowledged txns are above every txn
// seen before this round (though the child's clock may be behind), and go
// upward. It counts the acknowledgements.
func (h *crashHarness) checkAcksUpward(r *crashRound) error {
	for c := range crashCommitters {
		acks := r.run.acks[c]
		r.acked[c] = len(acks)
		for seq, txn := range acks {
			if txn <= h.maxSeen {
				return fmt.Errorf("committer %d seq %d acknowledged txn %d, not above %d, the highest txn before this round", c, seq, txn, h.maxSeen)
			}
			if seq > 0 && txn <= acks[seq-1] {
				return fmt.Errorf("committer %d seq %d acknowledged txn %d after txn %d", c, seq, txn, acks[seq-1])
			}
			r.lastAck[c] = txn
		}
		h.acks += r.acked[c]
	}
	return nil
}

// checkLogHoldsAcks: each of this round's records is a transaction its
// committer announced, exactly as announced, in the committer's order
// with no gap and none twice; an acknowledged one is at the txn Commit
// returned; and every acknowledged commit that retention cannot have
// dropped is there.
func (h *crashHarness) checkLogHoldsAcks(r *crashRound) error {
	var next [crashCommitters]int // per committer, the seq its next record must have
	for c := range crashCommitters {
		// The first acknowledged commit retention cannot have dropped.
		next[c] = r.acked[c]
		for seq, txn := range r.run.acks[c] {
			if txn > r.oldest.Txn {
				next[c] = seq
				break
			}
		}
	}
	r.recOf = map[[2]int]*txlog.Record{}
	for i := range r.fresh {
		rec := &r.fresh[i]
		c, err := crashCommitterOf(rec)
		if err != nil {
			return err
		}
		seq := next[c]
		if round, s, ok := crashSeqOf(rec); ok && (round != r.n || s != seq) {
			what := "out of order or after a gap"
			if s < seq {
				what = "twice"
			}
			return fmt.Errorf("txn %d is committer %d's round %d seq %d where its seq %d was due: a commit %s", rec.Txn, c, round, s, seq, what)
		}
		if seq >= len(r.run.intents[c]) {
			return fmt.Errorf("txn %d is committer %d's seq %d, which it never announced", rec.Txn, c, seq)
		}
		if err := crashSameWrites(rec, r.run.intents[c][seq]); err != nil {
			return fmt.Errorf("txn %d, committer %d seq %d: %w", rec.Txn, c, seq, err)
		}
		if seq < r.acked[c] && rec.Txn != r.run.acks[c][seq] {
			return fmt.Errorf("committer %d seq %d is txn %d in the log, acknowledged as txn %d", c, seq, rec.Txn, r.run.acks[c][seq])
		}
		r.recOf[[2]int{c, seq}] = rec
		next[c]++
	}
	for c := range crashCommitters {
		if next[c] < r.acked[c] {
			return fmt.Errorf("committer %d's acknowledged seq %d (txn %d) is missing from the log (oldest %d, head %d)",
				c, next[c], r.run.acks[c][next[c]], r.oldest.Txn, r.head.Txn)
		}
	}
	return nil
}

// checkStateMatchesModel: the state is each committer's announced
// transactions applied in order to the state the earlier rounds left
// (modelAfterRound): every document is as they leave it.
func (h *crashHarness) checkStateMatchesModel(r *crashRound) error {
	model, err := h.modelAfterRound(r)
	if err != nil {
		return err
	}
	var refs []txlog.Ref
	for c := range crashCommitters {
		for k := range crashDocs {
			refs = append(refs, crashRef(c, k))
		}
	}
	refs = append(refs, crashMarker)
	for _, ref := range refs {
		want, wok := model[ref]
		got, ok := r.b.Get(ref)
		if ok != wok || !bytes.Equal(got.Data, want.data) || (ok && got.TS != want.ts) {
			return fmt.Errorf("%s is %d %s (exists %v) after the restart, want %d %s (exists %v)", ref, got.TS, got.Data, ok, want.ts, want.data, wok)
		}
	}
	r.model = model
	return nil
}

// modelAfterRound applies each committer's announced transactions in
// order to the model the earlier rounds left: all acknowledged ones, and
// the one in flight if it survived (in the log, or in the state if
// retention dropped it: inFlightInState). On the way it checks that each
// write in the log replaced the version the model has, and that a create
// is of a missing document and any other write of an existing one. It
// counts the commits in flight that survived and those lost.
func (h *crashHarness) modelAfterRound(r *crashRound) (map[txlog.Ref]crashDoc, error) {
	model := maps.Clone(h.model)
	for c := range crashCommitters {
		for seq, ws := range r.run.intents[c] {
			rec := r.recOf[[2]int{c, seq}]
			var txn txlog.Txn
			switch {
			case seq < r.acked[c]:
				txn = r.run.acks[c][seq]
			case rec != nil:
				txn = rec.Txn
				h.inFlight++
			case r.oldest.Txn > max(h.base, r.lastAck[c]):
				// In flight and possibly in the log, then dropped with a
				// checkpoint covering it: the state tells.
				var applied int
				var err error
				if txn, applied, err = h.inFlightInState(r, c, seq, ws); err != nil {
					return nil, err
				}
				if applied == 0 {
					h.inFlightLost++
					continue
				}
				h.inFlight++
			default:
				h.inFlightLost++
				continue
			}
			for i, w := range ws {
				prev, had := model[w.ref]
				if rec != nil {
					lw := &rec.Writes[i]
					if !bytes.Equal(lw.Before, prev.data) || lw.BeforeTxn != prev.ts {
						return nil, fmt.Errorf("txn %d writes %s over version %d %s; the one before was %d %s", txn, w.ref, lw.BeforeTxn, lw.Before, prev.ts, prev.data)
					}
				}
				if had == (w.action == txlog.ActionCreate) {
					return nil, fmt.Errorf("committer %d seq %d %ss %s, which exists: %v", c, seq, w.action, w.ref, had)
				}
				if w.after == nil {
					delete(model, w.ref)
				} else {
					model[w.ref] = crashDoc{data: w.after, ts: txn}
				}
			}
		}
	}
	return model, nil
}

// inFlightInState tells from the state whether committer c's transaction
// seq, in flight at the kill and not in the log (retention may have
// dropped it with a checkpoint covering it), was applied: all of its
// writes or none, and if all, at a txn that the log no longer holds. It
// returns that txn and how many writes were applied.
func (h *crashHarness) inFlightInState(r *crashRound, c, seq int, ws []crashIntentWrite) (txn txlog.Txn, applied int, err error) {
	for _, w := range ws {
		if d, ok := r.b.Get(w.ref); ok == (w.after != nil) && bytes.Equal(d.Data, w.after) {
			applied++
			if ok && (d.TS <= max(h.base, r.lastAck[c]) || d.TS > r.oldest.Txn) {
				return 0, 0, fmt.Errorf("committer %d's seq %d in flight is in the state at txn %d but not in the log after %d", c, seq, d.TS, r.oldest.Txn)
			}
			txn = d.TS
		}
	}
	if applied != 0 && applied != len(ws) {
		return 0, 0, fmt.Errorf("committer %d's seq %d in flight: %d of its %d writes are in the state", c, seq, applied, len(ws))
	}
	return txn, applied, nil
}

// checkSetsMatchModel: the restarted broker's sets hold what the model
// says: the collection, and each color with its values, by snapshots.
func (h *crashHarness) checkSetsMatchModel(r *crashRound) error {
	b, model := r.b, r.model
	type member struct {
		Document struct {
			Ref  txlog.Ref       `json:"ref"`
			TS   txlog.Txn       `json:"ts"`
			Data json.RawMessage `json:"data"`
		} `json:"document"`
		Index *struct {
			Values []int `json:"values"`
		} `json:"index"`
	}
	targets := []subscription.Target{subscription.Collection(crashColl)}
	for _, col := range crashColors {
		targets = append(targets, must(subscription.Match("crash_by_color", col)))
	}
	for ti, target := range targets {
		opt := subscription.Options{Snapshot: true, Data: true, SnapshotPageSize: subscription.MaxSnapshotPageSize}
		if ti > 0 {
			opt.Fields = subscription.DefaultFields | subscription.FieldIndex
		}
		s, err := b.Subscribe(context.Background(), target, opt)
		if err != nil {
			return err
		}
		var got []member
		for e := range s.Events() {
			if e.Type == subscription.TypeStart {
				continue
			}
			var page struct {
				Type  string `json:"type"`
				Event struct {
					Data []member `json:"data"`
				} `json:"event"`
			}
			if err := json.Unmarshal(e.JSON, &page); err != nil || page.Type != "snapshot" {
				s.Close()
				return fmt.Errorf("%v: %s instead of a snapshot page (%v)", target, e.JSON, err)
			}
			got = append(got, page.Event.Data...)
			if e.Action == subscription.ActionLastPage {
				break
			}
		}
		s.Close()
		want := map[txlog.Ref]crashFields{}
		for ref, d := range model {
			var f crashFields
			if err := json.Unmarshal(d.data, &f); err != nil {
				return err
			}
			if ti == 0 || f.Color == crashColors[ti-1] {
				want[ref] = f
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("%v has %d members after the restart, want %d", target, len(got), len(want))
		}
		for _, m := range got {
			ref := m.Document.Ref
			f, ok := want[ref]
			d := model[ref]
			if !ok || m.Document.TS != d.ts || !bytes.Equal(m.Document.Data, d.data) ||
				(ti > 0 && (m.Index == nil || !slices.Equal(m.Index.Values, []int{f.S}))) {
				return fmt.Errorf("%v after the restart has member %s ts %d %s (index %+v); want it %v, ts %d %s", target, ref, m.Document.TS, m.Document.Data, m.Index, ok, d.ts, d.data)
			}
		}
	}
	return nil
}

// checkHeadCoversAcks: the head is at least every acknowledged txn (the
// log checks found each one). The highest txn seen moves up to the head,
// and the parent's commits must go above it (checkResumes).
func (h *crashHarness) checkHeadCoversAcks(r *crashRound) error {
	for c := range crashCommitters {
		if r.lastAck[c] > r.b.Head() {
			return fmt.Errorf("head %d below committer %d's acknowledged txn %d", r.b.Head(), c, r.lastAck[c])
		}
	}
	h.maxSeen = max(h.maxSeen, r.b.Head())
	return nil
}

// checkSubscribersPrefix: what each of the child's subscribers received
// from its cursor is the beginning of what the restarted broker reads
// after that cursor (checkSubscriberPrefix). It picks, per subscriber,
// the cursors to resume from: its last, and one from the middle.
func (h *crashHarness) checkSubscribersPrefix(r *crashRound) error {
	r.last = make([]string, len(h.subs))
	r.mids = make([]string, len(h.subs))
	r.fresher = txlog.Cursor{Log: r.b.LogID(), Pos: txlog.AfterTxn(r.b.Head())}.String()
	for i := range h.subs {
		if err := h.checkSubscriberPrefix(r, i); err != nil {
			return err
		}
	}
	return nil
}

// checkSubscriberPrefix: what the child's subscriber i received from its
// cursor is the beginning of what the restarted broker reads after that
// cursor, event for event: nothing that did not survive, no gap, no
// duplicate; for the collection subscriber, one event per write of the
// log (crashCheckAll). If retention overtook its cursor, it was told so
// with history_unavailable (at Subscribe, or as its stream's last event),
// and only then; it then starts the next round from the head.
func (h *crashHarness) checkSubscriberPrefix(r *crashRound, i int) error {
	ctx := context.Background()
	run, sp := r.run, h.subs[i]
	cur := h.cursors[i]
	evs := run.events[i]
	r.last[i] = cur
	if run.subFail[i] != "" {
		if strings.HasPrefix(run.subFail[i], "unavailable ") && r.gone(cur) {
			h.overtaken(sp.name, "child-subscribe")
			r.last[i] = r.fresher
			return nil
		}
		return fmt.Errorf("subscriber %s: Subscribe from %s failed in the child: %s", sp.name, cur, run.subFail[i])
	}
	if len(evs) == 0 {
		if run.ended[i] {
			return fmt.Errorf("subscriber %s: its stream ended without an event", sp.name)
		}
		return nil
	}
	if evs[0].cursor != cur || !strings.HasPrefix(evs[0].json, `{"type":"start"`) {
		return fmt.Errorf("subscriber %s started from %s with %s %s", sp.name, cur, evs[0].cursor, evs[0].json)
	}
	evs = evs[1:]
	if n := len(evs); n > 0 && strings.HasPrefix(evs[n-1].json, `{"type":"error"`) {
		var e wireEvent
		if err := json.Unmarshal([]byte(evs[n-1].json), &e); err != nil || e.Event.Code != subscription.CodeHistoryUnavailable || !r.gone(e.Event.Cursor) {
			return fmt.Errorf("subscriber %s ended with %s (oldest %d)", sp.name, evs[n-1].json, r.oldest.Txn)
		}
		h.overtaken(sp.name, "child-stream")
		r.last[i] = r.fresher
		return nil
	} else if run.ended[i] {
		return fmt.Errorf("subscriber %s: its stream ended without an error event", sp.name)
	}
	opt := sp.opt
	opt.Cursor = cur
	p, err := r.b.ReadPage(ctx, sp.target, opt, 1<<20, false)
	if errors.Is(err, ErrHistoryUnavailable) && r.gone(cur) {
		h.overtaken(sp.name, "child-feed")
		r.last[i] = r.fresher
		return nil
	}
	if err != nil || p.More {
		return fmt.Errorf("subscriber %s: reading after %s: %v (more %v)", sp.name, cur, err, p.More)
	}
	if i == crashAll {
		if err := crashCheckAll(p.Events, cur, r.recs); err != nil {
			return fmt.Errorf("subscriber %s: the feed after %s: %w", sp.name, cur, err)
		}
	}
	if len(evs) > len(p.Events) {
		return fmt.Errorf("subscriber %s received %d events after %s, the restarted broker has %d: an event of a commit that did not survive (first extra: %s)",
			sp.name, len(evs), cur, len(p.Events), evs[len(p.Events)].json)
	}
	for j, e := range evs {
		w := &p.Events[j]
		if e.cursor != w.CursorString() || e.json != string(w.JSON) {
			return fmt.Errorf("subscriber %s's event %d after %s:\n%s\nthe restarted broker has\n%s", sp.name, j, cur, e.json, w.JSON)
		}
	}
	h.childEvents += len(evs)
	if len(evs) > 0 {
		r.last[i] = evs[len(evs)-1].cursor
	}
	if len(evs) > 1 {
		r.mids[i] = h.pickCursor(evs[:len(evs)-1])
	}
	return nil
}

// crashCommitterOf returns the committer whose documents rec writes.
func crashCommitterOf(rec *txlog.Record) (int, error) {
	c := -1
	for _, w := range rec.Writes {
		wc, _, ok := parseCrashRef(w.Ref)
		if !ok || (c >= 0 && wc != c) {
			return 0, fmt.Errorf("txn %d writes %s: not one committer's transaction", rec.Txn, w.Ref)
		}
		c = wc
	}
	if c < 0 {
		return 0, fmt.Errorf("txn %d has no writes", rec.Txn)
	}
	return c, nil
}

// crashSeqOf returns the round and seq that rec's data names, if any of
// its writes has data.
func crashSeqOf(rec *txlog.Record) (round, seq int, ok bool) {
	for _, w := range rec.Writes {
		if w.After != nil {
			var f crashFields
			if json.Unmarshal(w.After, &f) == nil {
				return f.R, f.S, true
			}
		}
	}
	return 0, 0, false
}

func crashSameWrites(rec *txlog.Record, want []crashIntentWrite) error {
	if len(rec.Writes) != len(want) {
		return fmt.Errorf("%d writes, the child announced %d", len(rec.Writes), len(want))
	}
	for i, w := range rec.Writes {
		v := want[i]
		if w.Ref != v.ref || w.Action != v.action || !bytes.Equal(w.After, v.after) {
			return fmt.Errorf("write %d is %s %s %s, the child announced %s %s %s", i, w.Action, w.Ref, w.After, v.action, v.ref, v.after)
		}
	}
	return nil
}

// crashCheckAll checks the collection subscriber's events after cursor
// against the log records alone: one event per write, in order, add for a
// create, update for an update, remove for a delete.
func crashCheckAll(evs []subscription.Event, cursor string, recs []txlog.Record) error {
	c, err := txlog.ParseCursor(cursor)
	if err != nil {
		return err
	}
	actions := map[txlog.Action]string{txlog.ActionCreate: "add", txlog.ActionUpdate: "update", txlog.ActionDelete: "remove"}
	j := 0
	for i := range recs {
		for op, w := range recs[i].Writes {
			pos := txlog.Pos{Txn: recs[i].Txn, Op: uint32(op)}
			if pos.Compare(c.Pos) <= 0 {
				continue
			}
			if j >= len(evs) {
				return fmt.Errorf("no event for the write at %d.%d, %s %s", pos.Txn, pos.Op, w.Action, w.Ref)
			}
			e := &evs[j]
			var got wireEvent
			json.Unmarshal(e.JSON, &got)
			var doc struct {
				Ref txlog.Ref `json:"ref"`
			}
			json.Unmarshal(got.Event.Document, &doc)
			if e.Cursor.Pos != pos || e.Cursor.Seq != 0 || e.Action != actions[w.Action] || got.Event.Action != e.Action || doc.Ref != w.Ref {
				return fmt.Errorf("event %d is %s; the write at %d.%d is %s %s", j, e.JSON, pos.Txn, pos.Op, w.Action, w.Ref)
			}
			j++
		}
	}
	if j != len(evs) {
		return fmt.Errorf("%d events for %d writes: %s", len(evs), j, evs[j].JSON)
	}
	return nil
}
