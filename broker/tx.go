package broker

import (
	"context"
	"fmt"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Tx is a transaction in progress: the writes it makes are seen by its own
// Get and by nothing else until Commit publishes them all under one txn.
//
// A document written several times in one transaction gets one version at
// the txn, the last one written, and one event (as in Fauna, where a
// transaction makes at most one version of a document): the record holds
// one write per document, in the order each was first written.
//
// A Tx is valid only inside the function given to Commit, on its goroutine.
type Tx struct {
	b      *Broker
	cat    *index.Catalog
	writes map[txlog.Ref]*txWrite
	order  []txlog.Ref
}

type txWrite struct {
	before *version // at the start of the transaction; nil if missing
	after  []byte   // nil: deleted
}

// Commit runs fn in a transaction and commits what it wrote: appended to
// the log under the next txn, applied to the documents and indexes, and
// delivered to subscribers, all or nothing. If fn returns an error, or a
// write is refused, nothing is committed and the error is returned. A
// transaction that writes nothing returns the current head txn.
//
// Commit returns once the record is as durable as the log promises (see
// txlog.SyncPolicy: under the file log's default, written and fsynced), and
// only then are its events delivered. Once the record is handed to the log
// the commit can no longer be called off: ctx is checked before.
//
// Commits are serialised; fn runs under the commit lock, so it should be
// quick and must not call the broker. The fsync is not under the lock:
// commits that wait for it at the same time share it.
func (b *Broker) Commit(ctx context.Context, fn func(tx *Tx) error) (txlog.Txn, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(); err != nil {
		return 0, err
	}
	tx := &Tx{b: b, cat: b.cat.Load(), writes: map[txlog.Ref]*txWrite{}}
	if err := fn(tx); err != nil {
		return 0, err
	}
	ws := tx.record()
	if len(ws) == 0 {
		return b.published, nil
	}
	return b.commit(tx.cat, ws)
}

// usable returns why the broker takes no commits, if it does not. Called
// with mu held.
func (b *Broker) usable() error {
	if b.failed != nil {
		return b.failed
	}
	if b.closed {
		return ErrClosed
	}
	return nil
}

// stagingLog is a log that can append in two halves (txlog.FileLog): the
// record is ordered under the commit lock and made durable outside it.
type stagingLog interface {
	Stage(ws []txlog.Write) (txlog.Staged, error)
	Wait(txlog.Staged) error
}

// pendingCommit is a commit applied to the state whose record the log has
// not yet made durable: its events wait here, in txn order.
type pendingCommit struct {
	txn   txlog.Txn
	cat   *index.Catalog
	ws    []txlog.Write
	diffs []index.Diff
}

// commit appends ws, applies it and delivers it. Called with mu held; it
// returns with mu held, but may release it meanwhile.
//
// On a staging log (the file log) a commit is three steps, so that the
// fsync is not under the commit lock and concurrent commits share one:
//
//  1. under mu: stage the record (which fixes its txn and its place in the
//     log), apply it to the state (the next transaction must see it), and
//     queue its events as pending;
//  2. without mu: wait until the log has made the record durable; the
//     first waiter writes and fsyncs every record staged so far;
//  3. under mu: deliver every pending commit up to this one, in txn order
//     (a later commit can find its predecessors durable and deliver them).
//
// Nothing is delivered before it is durable: a subscriber never sees a
// commit that a crash could undo, and its cursors always resume. What
// reads the state before delivery (a new subscription, Get, a checkpoint)
// waits for the state's txn to be delivered before using it.
func (b *Broker) commit(cat *index.Catalog, ws []txlog.Write) (txlog.Txn, error) {
	// Diff every write before anything is appended, so that a write the
	// indexes refuse (too many entries) rolls the whole transaction back.
	diffs := b.takeDiffs(len(ws))
	for i := range ws {
		w := &ws[i]
		if w.Action == txlog.ActionRewrite {
			continue
		}
		if err := cat.Diff(&diffs[i], w.Ref, w.Before, w.After); err != nil {
			b.putDiffs(diffs)
			return 0, &WriteError{Op: w.Action.String(), Ref: w.Ref, Err: err}
		}
	}
	sl, staging := b.log.(stagingLog)
	if !staging {
		txn, err := b.log.Append(ws)
		if err != nil {
			b.putDiffs(diffs)
			return 0, fmt.Errorf("broker: appending to the log: %w", err)
		}
		b.apply(txn, ws, diffs)
		b.deliver(txn, cat, ws, diffs)
		b.notifyChanged()
		return txn, nil
	}
	st, err := sl.Stage(ws)
	if err != nil {
		b.putDiffs(diffs)
		return 0, fmt.Errorf("broker: appending to the log: %w", err)
	}
	b.apply(st.Txn, ws, diffs)
	b.pending = append(b.pending, &pendingCommit{txn: st.Txn, cat: cat, ws: ws, diffs: diffs})
	b.mu.Unlock()
	err = sl.Wait(st)
	b.mu.Lock()
	if err != nil {
		b.logFailed(err)
		return 0, b.failed
	}
	b.deliverUpTo(st.Txn)
	return st.Txn, nil
}

// apply makes a commit the state. Called with mu held.
func (b *Broker) apply(txn txlog.Txn, ws []txlog.Write, diffs []index.Diff) {
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
	for _, pc := range b.pending {
		if pc.txn > txn {
			break
		}
		b.deliver(pc.txn, pc.cat, pc.ws, pc.diffs)
		n++
	}
	if n == 0 {
		return
	}
	clear(b.pending[:n])
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = b.pending[:0:0] // let the backing array go
	}
	b.notifyChanged()
}

// deliver publishes one durable commit. Called with mu held.
func (b *Broker) deliver(txn txlog.Txn, cat *index.Catalog, ws []txlog.Write, diffs []index.Diff) {
	b.published = txn
	b.stats.commits.Add(1)
	b.publish(cat, txlog.Record{Txn: txn, Writes: ws}, diffs)
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
		if b.changeCh == nil {
			b.changeCh = make(chan struct{})
		}
		ch := b.changeCh
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
func (b *Broker) takeDiffs(n int) []index.Diff {
	if k := len(b.diffs); k > 0 {
		d := b.diffs[k-1]
		b.diffs[k-1] = nil
		b.diffs = b.diffs[:k-1]
		if cap(d) >= n {
			return d[:n]
		}
	}
	return make([]index.Diff, n)
}

// putDiffs keeps a diff slice for a later commit. Called with mu held.
func (b *Broker) putDiffs(d []index.Diff) {
	if len(b.diffs) < 64 {
		b.diffs = append(b.diffs, d[:cap(d)])
	}
}

// record returns the transaction's net writes.
func (tx *Tx) record() []txlog.Write {
	ws := make([]txlog.Write, 0, len(tx.order))
	for _, ref := range tx.order {
		w := tx.writes[ref]
		tw := txlog.Write{Ref: ref, After: w.after}
		switch {
		case w.before == nil && w.after == nil:
			continue // created and deleted within the transaction
		case w.before == nil:
			tw.Action = txlog.ActionCreate
		case w.after == nil:
			tw.Action = txlog.ActionDelete
		default:
			tw.Action = txlog.ActionUpdate
		}
		if w.before != nil {
			tw.Before, tw.BeforeTxn = w.before.data, w.before.ts
		}
		ws = append(ws, tw)
	}
	return ws
}

// current returns the document's data as the transaction sees it.
func (tx *Tx) current(ref txlog.Ref) ([]byte, bool) {
	if w, ok := tx.writes[ref]; ok {
		return w.after, w.after != nil
	}
	if v := getVersion(tx.b.docs, ref); v != nil {
		return v.data, true
	}
	return nil, false
}

func (tx *Tx) set(ref txlog.Ref, data []byte) {
	if w, ok := tx.writes[ref]; ok {
		w.after = data
		return
	}
	tx.writes[ref] = &txWrite{before: getVersion(tx.b.docs, ref), after: data}
	tx.order = append(tx.order, ref)
}

// check validates a write's ref and data and returns the data compacted.
func (tx *Tx) check(op string, ref txlog.Ref, data []byte, needData bool) ([]byte, error) {
	if _, err := tx.cat.CollectionSet(ref.Collection); err != nil {
		return nil, &WriteError{Op: op, Ref: ref, Err: ErrUnknownCollection}
	}
	if ref.ID == "" {
		return nil, &WriteError{Op: op, Ref: ref, Err: fmt.Errorf("empty document id")}
	}
	if !needData {
		return nil, nil
	}
	c, err := subscription.CompactObject(data)
	if err != nil {
		return nil, &WriteError{Op: op, Ref: ref, Err: err}
	}
	return c, nil
}

// Get returns the document as the transaction sees it.
func (tx *Tx) Get(ref txlog.Ref) (Document, bool) {
	if w, ok := tx.writes[ref]; ok {
		if w.after == nil {
			return Document{}, false
		}
		return Document{Ref: ref, Data: w.after}, true // ts: the txn, not yet known
	}
	if v := getVersion(tx.b.docs, ref); v != nil {
		return v.document(), true
	}
	return Document{}, false
}

// Create writes a new document; ErrExists if it exists.
func (tx *Tx) Create(ref txlog.Ref, data []byte) error {
	c, err := tx.check("create", ref, data, true)
	if err != nil {
		return err
	}
	if _, ok := tx.current(ref); ok {
		return &WriteError{Op: "create", Ref: ref, Err: ErrExists}
	}
	tx.set(ref, c)
	return nil
}

// Replace replaces a document's data; ErrNotFound if it is missing.
func (tx *Tx) Replace(ref txlog.Ref, data []byte) error {
	c, err := tx.check("replace", ref, data, true)
	if err != nil {
		return err
	}
	if _, ok := tx.current(ref); !ok {
		return &WriteError{Op: "replace", Ref: ref, Err: ErrNotFound}
	}
	tx.set(ref, c)
	return nil
}

// Update merges patch into a document's data (JSON Merge Patch: a null
// removes a field, nested objects merge field by field, anything else
// replaces); ErrNotFound if it is missing.
func (tx *Tx) Update(ref txlog.Ref, patch []byte) error {
	c, err := tx.check("update", ref, patch, true)
	if err != nil {
		return err
	}
	cur, ok := tx.current(ref)
	if !ok {
		return &WriteError{Op: "update", Ref: ref, Err: ErrNotFound}
	}
	merged, err := subscription.MergePatch(cur, c)
	if err != nil {
		return &WriteError{Op: "update", Ref: ref, Err: err}
	}
	tx.set(ref, merged)
	return nil
}

// Delete removes a document; ErrNotFound if it is missing.
func (tx *Tx) Delete(ref txlog.Ref) error {
	if _, err := tx.check("delete", ref, nil, false); err != nil {
		return err
	}
	if _, ok := tx.current(ref); !ok {
		return &WriteError{Op: "delete", Ref: ref, Err: ErrNotFound}
	}
	tx.set(ref, nil)
	return nil
}

// Upsert creates the document or replaces its data: for mirroring an
// outside database, where the write must succeed whatever is here.
func (tx *Tx) Upsert(ref txlog.Ref, data []byte) error {
	c, err := tx.check("upsert", ref, data, true)
	if err != nil {
		return err
	}
	tx.set(ref, c)
	return nil
}

// RewriteHistory revises a document's past without changing its current
// state: with data, it inserts a version at ts; with nil data, it removes
// the version at ts. ts must be before the document's current version (a
// write at or after it is an ordinary write). The revision is committed
// under a txn of its own, and document streams on the document receive a
// history_rewrite event (action insert or remove, the document at ts); set
// streams receive nothing, since membership follows current versions only.
// The broker keeps no past versions, so it cannot check that a removed
// version existed: the event tells subscribers what was revised.
func (b *Broker) RewriteHistory(ctx context.Context, ref txlog.Ref, ts txlog.Txn, data []byte) (txlog.Txn, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(); err != nil {
		return 0, err
	}
	tx := &Tx{b: b, cat: b.cat.Load()}
	c, err := tx.check("rewrite", ref, data, data != nil)
	if err != nil {
		return 0, err
	}
	if ts == 0 {
		return 0, &WriteError{Op: "rewrite", Ref: ref, Err: fmt.Errorf("%w: ts 0", ErrInvalidRewrite)}
	}
	if v := getVersion(b.docs, ref); v != nil && ts >= v.ts {
		return 0, &WriteError{Op: "rewrite", Ref: ref,
			Err: fmt.Errorf("%w: ts %d is not before the current version's %d", ErrInvalidRewrite, ts, v.ts)}
	}
	if ts > b.head {
		return 0, &WriteError{Op: "rewrite", Ref: ref, Err: fmt.Errorf("%w: ts %d is in the future", ErrInvalidRewrite, ts)}
	}
	return b.commit(tx.cat, []txlog.Write{{Ref: ref, Action: txlog.ActionRewrite, BeforeTxn: ts, After: c}})
}
