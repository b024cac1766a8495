package broker

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/internal/jsondoc"
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
	cat    *entrystore.Catalog
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
	start := time.Now()
	if b.shared != nil {
		return b.commitShared(ctx, start, func(cat *entrystore.Catalog) ([]txlog.Write, error) {
			tx := &Tx{b: b, cat: cat, writes: map[txlog.Ref]*txWrite{}}
			if err := fn(tx); err != nil {
				return nil, err
			}
			return tx.record(), nil
		})
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
	txn, err := b.commit(tx.cat, ws, start)
	if err == nil {
		b.stats.commit.observe(time.Since(start))
	}
	return txn, err
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

// check validates a write's ref and data and returns the data compacted,
// with its line separators escaped (see jsondoc.CompactObject).
func (tx *Tx) check(op string, ref txlog.Ref, data []byte, needData bool) ([]byte, error) {
	if err := checkRef(ref); err != nil {
		return nil, &WriteError{Op: op, Ref: ref, Err: err}
	}
	if _, err := tx.cat.CollectionSet(ref.Collection); err != nil {
		return nil, &WriteError{Op: op, Ref: ref, Err: ErrUnknownCollection}
	}
	if !needData {
		return nil, nil
	}
	c, err := jsondoc.CompactObject(data)
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

// The writes below refuse a ref with an empty id, or a collection or id
// that is not valid UTF-8 (ErrInvalidRef), and data that is not a JSON
// object (ErrNotObject) or not valid UTF-8 (ErrInvalidJSON), each as a
// *WriteError. They store the data compacted onto one line, with every
// raw U+2028, U+2029 and U+0085 in its strings escaped: the same JSON
// value, which clients splitting lines by Unicode's rules do not cut.

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
	merged, err := jsondoc.MergePatch(cur, c)
	if err == nil {
		// The merge keeps the fields the patch leaves alone as they are
		// stored: from a log written before data was read strictly, they
		// may hold what is refused (or left raw) today.
		merged, err = jsondoc.CompactObject(merged)
	}
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
	start := time.Now()
	if b.shared != nil {
		return b.commitShared(ctx, start, func(cat *entrystore.Catalog) ([]txlog.Write, error) {
			return b.rewrite(cat, ref, ts, data)
		})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(); err != nil {
		return 0, err
	}
	ws, err := b.rewrite(b.cat.Load(), ref, ts, data)
	if err != nil {
		return 0, err
	}
	txn, err := b.commit(b.cat.Load(), ws, start)
	if err == nil {
		b.stats.commit.observe(time.Since(start))
	}
	return txn, err
}

// rewrite checks a history rewrite against the state and returns its
// record's write. Called with mu held.
func (b *Broker) rewrite(cat *entrystore.Catalog, ref txlog.Ref, ts txlog.Txn, data []byte) ([]txlog.Write, error) {
	tx := &Tx{b: b, cat: cat}
	c, err := tx.check("rewrite", ref, data, data != nil)
	if err != nil {
		return nil, err
	}
	if ts == 0 {
		return nil, &WriteError{Op: "rewrite", Ref: ref, Err: fmt.Errorf("%w: ts 0", ErrInvalidRewrite)}
	}
	if v := getVersion(b.docs, ref); v != nil && ts >= v.ts {
		return nil, &WriteError{Op: "rewrite", Ref: ref,
			Err: fmt.Errorf("%w: ts %d is not before the current version's %d", ErrInvalidRewrite, ts, v.ts)}
	}
	if ts > b.head {
		return nil, &WriteError{Op: "rewrite", Ref: ref, Err: fmt.Errorf("%w: ts %d is in the future", ErrInvalidRewrite, ts)}
	}
	return []txlog.Write{{Ref: ref, Action: txlog.ActionRewrite, BeforeTxn: ts, After: c}}, nil
}

// checkRef refuses a ref that would not come back as it went in: an empty
// id, or a collection or id that is not valid UTF-8, which every encoder
// writes with U+FFFD in place of the invalid bytes.
func checkRef(ref txlog.Ref) error {
	switch {
	case ref.ID == "":
		return fmt.Errorf("%w: empty document id", ErrInvalidRef)
	case !utf8.ValidString(ref.Collection):
		return fmt.Errorf("%w: the collection is not valid UTF-8", ErrInvalidRef)
	case !utf8.ValidString(ref.ID):
		return fmt.Errorf("%w: the id is not valid UTF-8", ErrInvalidRef)
	}
	return nil
}
