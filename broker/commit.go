package broker

import (
	"fmt"
	"time"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/txlog"
)

// pendingCommit is a commit applied to the state whose record the log has
// not yet made durable: its events wait here, in txn order.
type pendingCommit struct {
	txn   txlog.Txn
	cat   *entrystore.Catalog
	ws    []txlog.Write
	diffs []entrystore.Diff
	start time.Time // when its Commit began, for the latencies
}

// commit appends ws, applies it and delivers it. Called with mu held; it
// returns with mu held, but releases it meanwhile.
//
// A commit is three steps, so that the log's fsync (if it has one) is not
// under the commit lock and concurrent commits share one:
//
//  1. under mu: stage the record (which fixes its txn and its place in the
//     log), apply it to the state (the next transaction must see it), and
//     queue its events as pending;
//  2. without mu: wait until the log has made the record durable (on the
//     file log the first waiter writes and fsyncs every record staged so
//     far; on the memory log there is nothing to wait for);
//  3. under mu: deliver every pending commit up to this one, in txn order
//     (a later commit can find its predecessors durable and deliver them).
//
// Nothing is delivered before it is durable: a subscriber never sees a
// commit that a crash could undo, and its cursors always resume. What
// reads the state before delivery (a new subscription, Get, a checkpoint)
// waits for the state's txn to be delivered before using it.
func (b *Broker) commit(cat *entrystore.Catalog, ws []txlog.Write, start time.Time) (txlog.Txn, error) {
	// Diff every write before anything is appended, so that a write the
	// indexes refuse (too many entries) rolls the whole transaction back.
	diffs := b.takeDiffs(len(ws))
	if err := diffWrites(cat, ws, diffs); err != nil {
		b.putDiffs(diffs)
		return 0, err
	}
	txn, err := b.log.Stage(ws)
	if err != nil {
		b.putDiffs(diffs)
		return 0, fmt.Errorf("broker: appending to the log: %w", err)
	}
	b.apply(txn, ws, diffs)
	b.pending = append(b.pending, pendingCommit{txn: txn, cat: cat, ws: ws, diffs: diffs, start: start})
	b.mu.Unlock()
	waited := time.Now()
	err = b.log.Wait(txn)
	b.stats.fsync.observe(time.Since(waited))
	b.mu.Lock()
	if err != nil {
		b.logFailed(err)
		return 0, b.failed
	}
	b.deliverUpTo(txn)
	return txn, nil
}

// diffWrites diffs each write of a record into diffs (a history rewrite
// has none), refusing what the indexes refuse (an unknown collection, too
// many entries).
func diffWrites(cat *entrystore.Catalog, ws []txlog.Write, diffs []entrystore.Diff) error {
	for i := range ws {
		w := &ws[i]
		if w.Action == txlog.ActionRewrite {
			continue
		}
		if err := cat.Diff(&diffs[i], w.Ref, w.Before, w.After); err != nil {
			return &WriteError{Op: w.Action.String(), Ref: w.Ref, Err: err}
		}
	}
	return nil
}

// apply makes a commit the state. Called with mu held.
func (b *Broker) apply(txn txlog.Txn, ws []txlog.Write, diffs []entrystore.Diff) {
	for i := range ws {
		w := &ws[i]
		if w.Action == txlog.ActionRewrite {
			continue
		}
		if err := b.store.Apply(txn, &diffs[i]); err != nil {
			// The diff was computed against this store under this lock: a
			// failure here is a bug, and the state no longer matches the log.
			panic(fmt.Sprintf("broker: index store refused txn %d: %v", txn, err))
		}
		b.setVersion(w.Ref, txn, w.After)
	}
	b.head = txn
	b.wroteBytes(ws)
}

// deliverUpTo delivers the pending commits up to txn, which is durable,
// and so are they. Called with mu held.
func (b *Broker) deliverUpTo(txn txlog.Txn) {
	n := 0
	for i := range b.pending {
		pc := &b.pending[i]
		if pc.txn > txn {
			break
		}
		b.deliver(pc.txn, pc.cat, pc.ws, pc.diffs, pc.start)
		n++
	}
	if n == 0 {
		return
	}
	// Move the rest to the front: the array is reused, not grown anew by
	// the next commit.
	rest := copy(b.pending, b.pending[n:])
	clear(b.pending[rest:])
	b.pending = b.pending[:rest]
	b.notifyChanged()
}

// deliver publishes one durable commit. Called with mu held.
func (b *Broker) deliver(txn txlog.Txn, cat *entrystore.Catalog, ws []txlog.Write, diffs []entrystore.Diff, start time.Time) {
	b.published = txn
	n := b.stats.commits.Add(1)
	b.recent.add(recentCommit{txn: txn, count: n, at: start.UnixNano()})
	b.publish(cat, txlog.Record{Txn: txn, Writes: ws}, diffs, start)
	b.putDiffs(diffs)
}

// awaitPublished returns once txn is delivered, or with an error when the
// broker stops first or done is closed. Commits are delivered only once
// durable, so what was read from the state at txn is then safe to show.
func (b *Broker) awaitPublished(txn txlog.Txn, done <-chan struct{}) error {
	for {
		b.mu.Lock()
		if b.published >= txn {
			b.mu.Unlock()
			return nil
		}
		if b.failed != nil {
			// Closing is no reason to stop waiting: Close makes the
			// pending commits durable, and they are then delivered.
			b.mu.Unlock()
			return b.failed
		}
		ch := b.nextChange()
		b.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			return ErrClosed
		}
	}
}

// logFailed stops the broker after the log failed to make a commit
// durable. The state holds commits whose fate is unknown (they may or may
// not be found when the log is reopened), so none of them is delivered,
// nothing more is committed, and every stream ends with shutting_down and
// the cursor of its last delivered event: after a restart, which rebuilds
// the state from what the log holds, every subscriber resumes. Called with
// mu held.
func (b *Broker) logFailed(err error) {
	if b.failed != nil {
		return
	}
	b.failed = fmt.Errorf("broker: the log failed, so the broker stopped; reopen it: %w", err)
	b.logger.Error("broker: the log failed; no more commits until it is reopened", "err", err)
	b.pending = nil
	b.stop()
	b.notifyChanged() // stop does not when the broker was closing already
}

// takeDiffs returns a diff slice of n, reused from a finished commit where
// possible: a Diff keeps its buffers from one use to the next. Called with
// mu held.
func (b *Broker) takeDiffs(n int) []entrystore.Diff {
	if k := len(b.diffs); k > 0 {
		d := b.diffs[k-1]
		b.diffs[k-1] = nil
		b.diffs = b.diffs[:k-1]
		if cap(d) >= n {
			return d[:n]
		}
	}
	return make([]entrystore.Diff, n)
}

// putDiffs keeps a diff slice for a later commit. Called with mu held.
func (b *Broker) putDiffs(d []entrystore.Diff) {
	if len(b.diffs) < 64 {
		b.diffs = append(b.diffs, d[:cap(d)])
	}
}
