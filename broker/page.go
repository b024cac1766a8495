package broker

import (
	"context"
	"fmt"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Page is a page of a target's events read from the log: what a pull feed
// serves.
type Page struct {
	Events []subscription.Event
	// Cursor reads on after this page: the last event's cursor, or, on a
	// page with no events, the position the reading got to.
	Cursor txlog.Cursor
	// More reports that the page stopped at its size: more events may
	// follow right away. A page with More is wholly in the past and never
	// changes.
	More bool
}

// ReadPage reads up to n events of target after the cursor (a cursor
// string from an event or an earlier page; empty means after the current
// head), from the log, without subscribing. With wait, a page that would
// be empty waits for the next commit, until ctx is done. The options that
// shape events (Fields, Updates, Data) apply; Snapshot does not.
func (b *Broker) ReadPage(ctx context.Context, target subscription.Target, opt subscription.Options, n int, wait bool) (Page, error) {
	opt, err := opt.Normalize()
	if err != nil {
		return Page{}, err
	}
	if n <= 0 {
		return Page{}, fmt.Errorf("%w: page size %d", subscription.ErrInvalidOptions, n)
	}
	sp := spec{target: target, fields: opt.Fields, data: opt.Data, updates: opt.Updates}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return Page{}, ErrClosed
	}
	if b.cutOff.Load() {
		b.mu.Unlock()
		return Page{}, ErrCutOff
	}
	cat := b.cat.Load()
	if target.IsSet() {
		if sp.key, err = setOf(cat, target); err != nil {
			b.mu.Unlock()
			return Page{}, err
		}
	} else if err := docTarget(cat, target.Ref); err != nil {
		b.mu.Unlock()
		return Page{}, err
	}
	after := txlog.Cursor{Log: b.log.ID(), Pos: txlog.AfterTxn(b.published)}
	b.mu.Unlock()
	if opt.Cursor != "" {
		if after, err = txlog.ParseCursor(opt.Cursor); err != nil {
			return Page{}, err
		}
		b.awaitCursor(ctx, after)
	}
	for {
		changed, open := b.changed()
		if !open {
			return Page{}, ErrClosed
		}
		p, err := b.readPage(cat, &sp, after, n)
		if err != nil || len(p.Events) > 0 || !wait {
			return p, err
		}
		after = p.Cursor
		select {
		case <-changed:
		case <-ctx.Done():
			return p, nil
		}
	}
}

// readPage reads one page from the log.
func (b *Broker) readPage(cat *entrystore.Catalog, sp *spec, after txlog.Cursor, n int) (Page, error) {
	if err := b.checkResume(after); err != nil {
		return Page{}, err
	}
	p := Page{Cursor: after}
	from := before(after.Pos)
	var d entrystore.Diff
	for rec, err := range b.log.Read(txlog.Cursor{Log: after.Log, Pos: from}) {
		if err != nil {
			return Page{}, err
		}
		writes, first := rec.After(from)
		for i := range writes {
			we := writeEvents{cat: cat, log: after.Log, txn: rec.Txn, op: first + i, w: &writes[i]}
			if sp.target.IsSet() && writes[i].Action != txlog.ActionRewrite {
				if err := cat.Diff(&d, writes[i].Ref, writes[i].Before, writes[i].After); err != nil {
					return Page{}, err
				}
				we.changes = d.Changes()
			}
			for _, e := range we.eventsFor(sp) {
				if !e.After(after) {
					continue
				}
				if len(p.Events) == n {
					p.More = true
					return p, nil
				}
				p.Events = append(p.Events, *e)
				p.Cursor = e.Cursor
			}
		}
		if len(p.Events) == 0 {
			// Nothing for this target: the next page can start later.
			p.Cursor = txlog.Cursor{Log: after.Log, Pos: txlog.AfterTxn(rec.Txn)}
		}
	}
	return p, nil
}

// changed returns a channel closed by the next commit (or Close), and
// false if the broker is closed already. One channel serves every waiter,
// and only while someone waits does a commit pay for closing it.
func (b *Broker) changed() (<-chan struct{}, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	return b.nextChange(), true
}

// nextChange returns the channel the next commit closes, making it if
// nobody waits yet. Called with mu held.
func (b *Broker) nextChange() chan struct{} {
	if b.changeCh == nil {
		b.changeCh = make(chan struct{})
	}
	return b.changeCh
}

// notifyChanged wakes the waiting pages. Called with mu held.
func (b *Broker) notifyChanged() {
	if b.changeCh != nil {
		close(b.changeCh)
		b.changeCh = nil
	}
}
