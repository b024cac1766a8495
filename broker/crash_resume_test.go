package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// The last of TestBrokerCrash's checks after a kill (see
// crash_check_test.go for the others): subscribers resuming in the
// restarted broker.

// checkResumes: a subscriber resuming in the restarted broker, from its
// last cursor or from one in the middle of what the child delivered,
// receives exactly the events after it (as the feed reads them from the
// log), then those of the parent's new commits, and, when the broker
// closes, shutting_down with its last cursor. The parent's commits go
// above every txn seen so far, and the log holds them (commitMarkers
// after the restart). It closes the broker, and records the markers in
// the model and the history.
func (h *crashHarness) checkResumes(r *crashRound) error {
	h.model = r.model
	var rs []*crashResumer
	defer func() {
		r.b.Close()
		for _, res := range rs {
			<-res.done
		}
	}()
	rs, err := h.startResumers(r)
	if err != nil {
		return err
	}
	m1, m2, err := h.checkMarkersAboveAll(r)
	if err != nil {
		return err
	}
	if err := addMarkerEvents(r, rs, m1, m2); err != nil {
		return err
	}
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	if err := awaitResumers(rs, deadline.C); err != nil {
		return err
	}
	if err := r.b.Close(); err != nil {
		return err
	}
	n, err := h.checkResumersExact(rs, deadline.C)
	if err != nil {
		return err
	}
	h.resumedEvents += n
	return nil
}

// startResumers subscribes, for each subscriber, from its last cursor and
// from the one picked in the middle, each with a crashResumer reading it.
// Each expects the events the feed reads after its cursor (for the
// collection subscriber, checked against the log records too). A cursor
// retention overtook is refused with ErrHistoryUnavailable, and then the
// subscriber starts the next round from the head.
func (h *crashHarness) startResumers(r *crashRound) ([]*crashResumer, error) {
	ctx := context.Background()
	type from struct {
		i      int
		cursor string
		last   bool
	}
	var froms []from
	for i := range h.subs {
		froms = append(froms, from{i, r.last[i], true})
		if r.mids[i] != "" {
			froms = append(froms, from{i, r.mids[i], false})
		}
	}
	var rs []*crashResumer
	for _, f := range froms {
		sp := h.subs[f.i]
		opt := sp.opt
		opt.Cursor = f.cursor
		p, err := r.b.ReadPage(ctx, sp.target, opt, 1<<20, false)
		if errors.Is(err, ErrHistoryUnavailable) && r.gone(f.cursor) {
			h.overtaken(sp.name, "resume")
			if f.last {
				r.last[f.i] = r.fresher
			}
			continue
		}
		if err != nil || p.More {
			return rs, fmt.Errorf("subscriber %s: reading after %s: %v (more %v)", sp.name, f.cursor, err, p.More)
		}
		if f.i == crashAll {
			if err := crashCheckAll(p.Events, f.cursor, r.recs); err != nil {
				return rs, fmt.Errorf("subscriber %s: the feed after %s: %w", sp.name, f.cursor, err)
			}
		}
		s, err := r.b.Subscribe(ctx, sp.target, opt)
		if err != nil {
			return rs, fmt.Errorf("subscriber %s: resuming from %s: %w", sp.name, f.cursor, err)
		}
		res := &crashResumer{name: sp.name, target: sp.target, opt: opt, cursor: f.cursor, want: p.Events, sub: s, notify: make(chan struct{}, 1), done: make(chan struct{})}
		rs = append(rs, res)
		go res.run()
	}
	return rs, nil
}

// checkMarkersAboveAll commits the round's markers in the restarted
// broker: their txns go above the highest seen so far, and the log holds
// them right after the head. The history moves on to the log as it is now.
func (h *crashHarness) checkMarkersAboveAll(r *crashRound) (m1, m2 txlog.Txn, err error) {
	head := r.b.Head()
	m1, m2, err = h.commitMarkers(r.b, r.n)
	if err != nil {
		return 0, 0, fmt.Errorf("committing after the restart: %w", err)
	}
	if m1 <= h.maxSeen || m2 <= m1 {
		return 0, 0, fmt.Errorf("the parent's commits after the restart got txns %d and %d, not above %d, the highest seen so far", m1, m2, h.maxSeen)
	}
	markers, err := crashReadLog(r.l, txlog.AfterTxn(head))
	if err != nil || len(markers) != 2 || markers[0].Txn != m1 || markers[1].Txn != m2 {
		return 0, 0, fmt.Errorf("the log after %d: %d records (%v), want the markers %d and %d", head, len(markers), err, m1, m2)
	}
	h.hist = h.hist[:0]
	for _, rec := range slices.Concat(r.recs, markers) {
		h.hist = append(h.hist, crashHist{rec.Txn, crashSum(&rec)})
	}
	h.base, h.maxSeen = m2, m2
	return m1, m2, nil
}

// addMarkerEvents adds to what each resumer expects the markers' events,
// for those that have some: what the feed reads after its last expected
// event, all of it in the markers' txns.
func addMarkerEvents(r *crashRound, rs []*crashResumer, m1, m2 txlog.Txn) error {
	ctx := context.Background()
	for i, res := range rs {
		after := res.cursor
		if n := len(res.want); n > 0 {
			after = res.want[n-1].CursorString()
		}
		opt := res.opt
		opt.Cursor = after
		p, err := r.b.ReadPage(ctx, res.target, opt, 1<<20, false)
		if err != nil {
			return fmt.Errorf("resumer %d (%s): reading after %s: %w", i, res.name, after, err)
		}
		for _, e := range p.Events {
			if e.Txn != m1 && e.Txn != m2 {
				return fmt.Errorf("resumer %s: after the markers the feed has %s", res.name, e.JSON)
			}
		}
		res.want = append(res.want, p.Events...)
	}
	return nil
}

// awaitResumers waits until each resumer has its start event and every
// event it expects (or its stream ended).
func awaitResumers(rs []*crashResumer, deadline <-chan time.Time) error {
	for _, res := range rs {
	wait:
		for res.count() < 1+len(res.want) {
			select {
			case <-res.notify:
			case <-res.done:
				break wait
			case <-deadline:
				return fmt.Errorf("resumer %s from %s: %d events after 15s, want %d%s", res.name, res.cursor, res.count(), 1+len(res.want), res.firstDiff())
			}
		}
	}
	return nil
}

// checkResumersExact, once the broker is closed: each resumer's stream
// ended, and it received a start event with its cursor, exactly the events
// it expects, and then shutting_down with the cursor of the last one. It
// returns how many events they received besides start and the end.
func (h *crashHarness) checkResumersExact(rs []*crashResumer, deadline <-chan time.Time) (int, error) {
	n := 0
	for _, res := range rs {
		select {
		case <-res.done:
		case <-deadline:
			return 0, fmt.Errorf("resumer %s: its stream did not end after Close", res.name)
		}
		got := res.got
		if len(got) == 0 || got[0].Type != subscription.TypeStart || got[0].CursorString() != res.cursor {
			return 0, fmt.Errorf("resumer %s from %s: no start event with its cursor (%d events)", res.name, res.cursor, len(got))
		}
		got = got[1:]
		for j := range min(len(got), len(res.want)) {
			if got[j].CursorString() != res.want[j].CursorString() || !bytes.Equal(got[j].JSON, res.want[j].JSON) {
				return 0, fmt.Errorf("resumer %s from %s, event %d:\n%s\nthe feed has\n%s", res.name, res.cursor, j, got[j].JSON, res.want[j].JSON)
			}
		}
		if len(got) != len(res.want)+1 {
			return 0, fmt.Errorf("resumer %s from %s: %d events and the end, want %d and the end", res.name, res.cursor, len(got), len(res.want))
		}
		end := parse(h.t, got[len(got)-1])
		lastCursor := res.cursor
		if n := len(res.want); n > 0 {
			lastCursor = res.want[n-1].CursorString()
		}
		if end.Type != "error" || end.Event.Code != subscription.CodeShuttingDown || end.Event.Cursor != lastCursor {
			return 0, fmt.Errorf("resumer %s from %s ended with %s, want shutting_down at %s", res.name, res.cursor, got[len(got)-1].JSON, lastCursor)
		}
		n += len(res.want)
	}
	return n, nil
}

// crashResumer is a subscription the parent resumes from a subscriber's
// last cursor, read by its own goroutine.
type crashResumer struct {
	name   string
	target subscription.Target
	opt    subscription.Options
	cursor string
	want   []subscription.Event
	sub    *Subscription
	mu     sync.Mutex
	got    []subscription.Event
	notify chan struct{}
	done   chan struct{}
}

func (r *crashResumer) run() {
	defer close(r.done)
	for e := range r.sub.Events() {
		r.mu.Lock()
		r.got = append(r.got, e)
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
}

// firstDiff describes the first event received that is not the one due.
func (r *crashResumer) firstDiff() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for j := 1; j < len(r.got) && j <= len(r.want); j++ {
		if w := &r.want[j-1]; !bytes.Equal(r.got[j].JSON, w.JSON) {
			return fmt.Sprintf("; event %d is\n%s\nwhere the feed has\n%s", j-1, r.got[j].JSON, w.JSON)
		}
	}
	return ""
}

func (r *crashResumer) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// pickCursor picks a cursor among evs to resume from: often the first
// event of a write that has two (a document moving within a set), where
// resuming must deliver the second.
func (h *crashHarness) pickCursor(evs []crashEvent) string {
	var pairs []string
	for j := 0; j+1 < len(evs); j++ {
		a, err1 := txlog.ParseCursor(evs[j].cursor)
		b, err2 := txlog.ParseCursor(evs[j+1].cursor)
		if err1 == nil && err2 == nil && a.Pos == b.Pos && a.Seq == 0 && b.Seq == 1 {
			pairs = append(pairs, evs[j].cursor)
		}
	}
	if len(pairs) > 0 && h.rng.IntN(2) == 0 {
		return pairs[h.rng.IntN(len(pairs))]
	}
	return evs[h.rng.IntN(len(evs))].cursor
}
