package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/txlog"
)

// A broker on a txlog.Shared log (one stream that several nodes append
// to, such as txlog/jetstream's) is one node of a replicated broker:
//
//   - Its state and its events come only from the records it follows, in
//     log order, its own and the other nodes': every node applies the same
//     records in the same order, so every node delivers the same events
//     with the same cursors, and a subscriber can move from one node to
//     another with its cursor.
//   - A commit runs its function on the state at txn S and appends the
//     record only if the log's last record is still S (StageAfter); it
//     returns once this node has applied the record, so a node reads its
//     own writes. If another node appended first, the commit waits until
//     this node has applied what the other appended, and runs the function
//     again, up to MaxCommitAttempts times in all; then it fails with
//     ErrConflict.
//   - A cursor beyond this node's head (taken on a node further ahead)
//     waits up to CursorWait for this node to catch up.
//
// Commits of one node are serialised across the whole round trip to the
// log, so one node commits about one transaction per round trip.

// ErrConflict is txlog.ErrConflict: on a replicated broker, other nodes
// kept appending first, and the transaction was run MaxCommitAttempts
// times without its record getting in. Nothing was committed.
var ErrConflict = txlog.ErrConflict

const (
	// MaxCommitAttempts bounds how many times a commit on a replicated
	// broker runs its function when other nodes append first. Each
	// attempt after a conflict starts as the node applies the record that
	// won, together with the other nodes' retries: with k nodes committing
	// without pause, an attempt loses with a chance of about (k-1)/k, so
	// the bound is high enough that three such nodes give up about once in
	// a hundred thousand commits ((2/3)^32), not once in sixty ((2/3)^10).
	MaxCommitAttempts = 32
	// CursorWait is how long a replicated broker waits for its state to
	// reach a cursor beyond its head before it refuses the cursor.
	CursorWait = 10 * time.Second
)

// follow applies and delivers the shared log's records after the state's
// head, until the broker closes. A gap or a failure of the log stops the
// broker, as a failed log does.
func (b *Broker) follow(ctx context.Context, from txlog.Txn) {
	defer close(b.followed)
	after := txlog.Cursor{Log: b.log.ID()}
	if from > 0 {
		after.Pos = txlog.AfterTxn(from)
	}
	for rec, err := range b.shared.Follow(ctx, after) {
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, txlog.ErrClosed) {
				b.mu.Lock()
				b.logFailed(fmt.Errorf("following the shared log: %w", err))
				b.mu.Unlock()
			}
			return
		}
		b.mu.Lock()
		if rec.Txn > b.head {
			if err := b.applyFollowed(rec); err != nil {
				b.logFailed(err)
				b.mu.Unlock()
				return
			}
		}
		b.mu.Unlock()
	}
}

// applyFollowed applies a record that the shared log holds, and delivers
// it. Called with mu held.
func (b *Broker) applyFollowed(rec txlog.Record) error {
	cat := b.cat.Load()
	ws := make([]txlog.Write, len(rec.Writes))
	diffs := b.takeDiffs(len(ws))
	for i, w := range rec.Writes {
		if w.After != nil {
			// The state keeps the image: not the follower's buffer, which
			// holds the before images too.
			w.After = bytes.Clone(w.After)
		}
		ws[i] = w
	}
	if err := diffWrites(cat, ws, diffs); err != nil {
		b.putDiffs(diffs)
		return fmt.Errorf("txn %d of the shared log: %w (every node needs the same schema)", rec.Txn, err)
	}
	b.apply(rec.Txn, ws, diffs)
	// Committed by another node: its txn is when (a microsecond clock).
	b.deliver(rec.Txn, cat, ws, diffs, time.UnixMicro(int64(rec.Txn)))
	b.notifyChanged()
	return nil
}

// commitShared commits on a shared log: build makes the record's writes
// from the state, under mu; the record is appended after the state's
// head, or built again once the state has caught up with what another
// node appended. See the comment at the top of this file.
func (b *Broker) commitShared(ctx context.Context, start time.Time, build func(cat *entrystore.Catalog) ([]txlog.Write, error)) (txlog.Txn, error) {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	var err error
	for attempt := 1; attempt <= MaxCommitAttempts; attempt++ {
		b.mu.Lock()
		if err := b.usableShared(); err != nil {
			b.mu.Unlock()
			return 0, err
		}
		cat := b.cat.Load()
		ws, berr := build(cat)
		if berr == nil && len(ws) > 0 {
			// Refuse here what the indexes would refuse: every node
			// applies every record the log holds. (The follower diffs the
			// record again when it applies it.)
			diffs := b.takeDiffs(len(ws))
			berr = diffWrites(cat, ws, diffs)
			b.putDiffs(diffs)
		}
		if berr != nil || len(ws) == 0 {
			p := b.published
			b.mu.Unlock()
			return p, berr
		}
		head := b.head
		var txn txlog.Txn
		txn, err = b.shared.StageAfter(ws, head)
		b.mu.Unlock()
		if err == nil {
			waited := time.Now()
			err = b.log.Wait(txn)
			b.stats.fsync.observe(time.Since(waited))
		}
		if err == nil {
			// Applied by the follower, like every record.
			if err := b.awaitApplied(ctx, txn); err != nil {
				return txn, fmt.Errorf("broker: txn %d is in the log, not yet applied here: %w", txn, err)
			}
			b.stats.commit.observe(time.Since(start))
			return txn, nil
		}
		if !errors.Is(err, txlog.ErrConflict) {
			return 0, fmt.Errorf("broker: appending to the log: %w", err)
		}
		b.stats.conflicts.Add(1)
		// Run again on the state at least as new as what the log has
		// seen by now: a retry on anything older conflicts again.
		if err := b.awaitApplied(ctx, max(head+1, b.log.Head().Txn)); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("broker: %d attempts, other nodes appended first each time: %w", MaxCommitAttempts, err)
}

// awaitApplied returns once the state is at txn or past it, or the broker
// stops, or ctx is done.
func (b *Broker) awaitApplied(ctx context.Context, txn txlog.Txn) error {
	for {
		b.mu.Lock()
		if b.head >= txn {
			b.mu.Unlock()
			return nil
		}
		if err := b.usable(); err != nil {
			b.mu.Unlock()
			return err
		}
		ch := b.nextChange()
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// awaitCursor waits, on a shared log, for the state to reach a cursor of
// this log that is beyond it (taken on a node further ahead), for up to
// CursorWait. Anything else returns at once: checkResume judges it.
func (b *Broker) awaitCursor(ctx context.Context, c txlog.Cursor) {
	if b.shared == nil || c.Log != b.log.ID() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, CursorWait)
	defer cancel()
	b.awaitApplied(ctx, c.Pos.Txn)
}

// usableShared is usable, and not cut off. Called with mu held.
func (b *Broker) usableShared() error {
	if err := b.usable(); err != nil {
		return err
	}
	if b.cutOff.Load() {
		return ErrCutOff
	}
	return nil
}

// watchContact marks the node cut off when the shared log has not heard
// from its servers for after, and ends every stream then, so that clients
// resume on a node that is not; and marks it back when the log hears from
// them again. A node cut off never delivers what the log does not hold:
// it only delivers what it followed. The stream ends only let clients
// move on instead of waiting on a node that cannot say whether the
// others wrote.
func (b *Broker) watchContact(ctx context.Context, after time.Duration) {
	defer close(b.watched)
	tick := time.NewTicker(max(after/8, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		silent := time.Since(b.shared.Contact())
		cut := silent > after
		if cut == b.cutOff.Load() {
			continue
		}
		b.mu.Lock()
		b.cutOff.Store(cut)
		if cut {
			b.logger.Warn("broker: cut off from the shared log; ending streams so that clients resume elsewhere", "silent", silent)
			b.subs.each(func(s *subscriber) { s.q.Notify() })
			b.notifyChanged()
		} else {
			b.logger.Info("broker: in contact with the shared log again")
		}
		b.mu.Unlock()
	}
}
