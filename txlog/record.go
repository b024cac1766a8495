package txlog

import (
	"encoding/json"
	"fmt"
)

// Txn is a transaction timestamp: microseconds since the Unix epoch,
// strictly increasing within one log. A document's ts is the txn that wrote it.
type Txn uint64

// Ref names one document: a collection and an id within it.
type Ref struct {
	Collection string `json:"collection"`
	ID         string `json:"id"`
}

// String returns "collection/id".
func (r Ref) String() string { return r.Collection + "/" + r.ID }

// Action is what one write did to its document, as the log records it.
// Replace, update and upsert of an existing document are all recorded as
// ActionUpdate; an upsert of a missing one as ActionCreate.
type Action uint8

// The actions a write can record. The zero Action is invalid, so that a
// forgotten field is caught by Append and by the decoder.
const (
	ActionCreate Action = iota + 1
	ActionUpdate
	ActionDelete
	// ActionRewrite revises the document's past without touching its
	// current state: it inserts the version After at ts BeforeTxn, or, with
	// After nil, removes the version at that ts. Before is nil.
	ActionRewrite
	maxAction = ActionRewrite
)

var actionNames = [...]string{ActionCreate: "create", ActionUpdate: "update", ActionDelete: "delete", ActionRewrite: "rewrite"}

// String returns "create", "update", "delete" or "rewrite".
func (a Action) String() string {
	if a == 0 || a > maxAction {
		return fmt.Sprintf("Action(%d)", uint8(a))
	}
	return actionNames[a]
}

// Write is one document write within a record: the document's image before
// and after it, so that any subscription's events (a version event with prev
// and diff, a set event for each index entry it leaves or enters) can be
// computed again from the record alone.
//
// Before and After are the document's data as a JSON object, or nil where
// the document did not exist (Before of a create, After of a delete).
type Write struct {
	Ref    Ref
	Action Action
	// BeforeTxn is the ts of the Before image: the txn that wrote it.
	// It is zero when Before is nil.
	BeforeTxn Txn
	Before    json.RawMessage
	After     json.RawMessage
}

// Record is one committed transaction: its txn and its writes, in the order
// they were made. The op of a write is its index in Writes.
//
// A Record handed out by a log is shared with other readers and must not be
// modified.
type Record struct {
	Txn    Txn
	Writes []Write
}

// Pos names one write in a log: the Op'th write of the record at Txn.
// Positions order by (Txn, Op). A reader asks for everything after a
// position, so Pos{} reads from the beginning and AfterTxn(t) skips every
// write of txn t.
type Pos struct {
	Txn Txn
	Op  uint32
}

// AfterTxn returns the position just after the last write of txn t.
func AfterTxn(t Txn) Pos { return Pos{Txn: t, Op: ^uint32(0)} }

// Compare returns -1, 0 or +1 as p is before, at or after q.
func (p Pos) Compare(q Pos) int {
	switch {
	case p.Txn < q.Txn:
		return -1
	case p.Txn > q.Txn:
		return 1
	case p.Op < q.Op:
		return -1
	case p.Op > q.Op:
		return 1
	}
	return 0
}

// Last returns the position of the record's last write.
func (r *Record) Last() Pos {
	return Pos{Txn: r.Txn, Op: uint32(len(r.Writes) - 1)}
}

// After returns the writes of r that come after p, and the op of the first
// of them. A reader that resumes in the middle of a transaction uses it to
// skip the writes it has already seen.
func (r *Record) After(p Pos) (writes []Write, firstOp int) {
	switch {
	case r.Txn > p.Txn:
		return r.Writes, 0
	case r.Txn < p.Txn || p.Op >= uint32(len(r.Writes)):
		return nil, len(r.Writes)
	}
	return r.Writes[p.Op+1:], int(p.Op) + 1
}

// CheckWrites reports whether a record of ws is one that Stage may accept
// (ErrInvalidRecord if not): for logs outside this package, which must
// refuse what the file and memory logs refuse.
func CheckWrites(ws []Write) error {
	r := Record{Writes: ws}
	return r.validate()
}

// validate reports whether a record is one that Append may accept.
func (r *Record) validate() error {
	if len(r.Writes) == 0 {
		return fmt.Errorf("%w: a record needs at least one write", ErrInvalidRecord)
	}
	if len(r.Writes) > maxWrites {
		return fmt.Errorf("%w: %d writes, more than %d", ErrInvalidRecord, len(r.Writes), maxWrites)
	}
	for i := range r.Writes {
		w := &r.Writes[i]
		if w.Action == 0 || w.Action > maxAction {
			return fmt.Errorf("%w: write %d: unknown action %d", ErrInvalidRecord, i, w.Action)
		}
		if w.Ref.Collection == "" || w.Ref.ID == "" {
			return fmt.Errorf("%w: write %d: empty collection or id", ErrInvalidRecord, i)
		}
		if w.Action == ActionRewrite {
			if w.Before != nil || w.BeforeTxn == 0 {
				return fmt.Errorf("%w: write %d: a rewrite names its ts in BeforeTxn and has no before image", ErrInvalidRecord, i)
			}
			continue
		}
		if (w.Before == nil) != (w.Action == ActionCreate) {
			return fmt.Errorf("%w: write %d: a %s must have a before image exactly when it is not a create", ErrInvalidRecord, i, w.Action)
		}
		if (w.After == nil) != (w.Action == ActionDelete) {
			return fmt.Errorf("%w: write %d: a %s must have an after image exactly when it is not a delete", ErrInvalidRecord, i, w.Action)
		}
		if (w.Before == nil) != (w.BeforeTxn == 0) {
			return fmt.Errorf("%w: write %d: BeforeTxn must be set exactly when Before is", ErrInvalidRecord, i)
		}
	}
	return nil
}
