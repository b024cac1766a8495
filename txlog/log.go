package txlog

import (
	"crypto/rand"
	"encoding/hex"
	"iter"
)

// Log is an ordered log of committed transactions.
//
// Concurrency: every method is safe for concurrent use. Appends are
// serialised: txns are assigned in the order appends are admitted and a
// record becomes visible to readers in txn order, never with a gap. Reads
// do not block appends, and appends do not wait for readers; a reader that
// falls behind retention is told so with ErrHistoryUnavailable.
type Log interface {
	// ID is the log's identity. A cursor names it, so that a cursor from
	// another log (a restarted in-memory log, another directory) is refused
	// instead of being read against the wrong history.
	ID() ID

	// Append commits one record of writes under the next txn and returns
	// that txn once the record is as durable as the log promises (see
	// SyncPolicy for the file log). On error nothing was appended. The log
	// keeps ws: the caller must not modify it afterwards.
	Append(ws []Write) (Txn, error)

	// Read yields, in order, every record that holds a write after the
	// cursor's position, up to the head as it is when the reader gets there
	// (records appended while reading are yielded too). The first record
	// may hold writes at or before the position: Record.After skips them.
	//
	// A cursor of another log, before Oldest or beyond Head yields only
	// ErrHistoryUnavailable; so does a reader overtaken by retention, at the
	// point where it was. Any error ends the sequence. The records yielded
	// are shared and must not be modified.
	Read(after Cursor) iter.Seq2[Record, error]

	// Head is the position of the last write of the newest record, or the
	// zero Pos for an empty log.
	Head() Pos

	// Oldest is the oldest position a reader may start after: everything
	// after it is retained. It is the last position retention dropped, or
	// the zero Pos if nothing was dropped.
	Oldest() Pos

	// Close releases the log. Appends and reads after Close fail with
	// ErrClosed.
	Close() error
}

// ID is a log's identity: 16 random bytes chosen when the log is created.
type ID [16]byte

// NewID returns a random ID.
func NewID() ID {
	var id ID
	rand.Read(id[:]) // never fails (crypto/rand panics rather than return short)
	return id
}

// String returns the ID in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }
