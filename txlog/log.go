package txlog

import (
	"crypto/rand"
	"encoding/hex"
	"iter"
)

// Log is an ordered log of committed transactions: what a broker needs of
// any log. An implementation proves that it keeps this contract by running
// the conformance suite in package txlog/logtest from its tests.
//
// Concurrency: every method is safe for concurrent use. Stage calls are
// serialised: txns are assigned in the order Stage calls are admitted, and
// a record becomes visible to readers in txn order, never with a gap.
// Wait may be called by any goroutine, concurrently with Stage and with
// other Waits. Reads do not block Stage, and Stage does not wait for
// readers; a reader that falls behind retention is told so with
// ErrHistoryUnavailable. Each sequence that Read returns is used by one
// goroutine at a time, like any iterator.
type Log interface {
	// ID is the log's identity, never the zero ID (which the zero Cursor
	// names). A cursor names it, so that a cursor from another log (a
	// restarted in-memory log, another directory) is refused instead of
	// being read against the wrong history. A durable log keeps its ID
	// when reopened.
	ID() ID

	// Stage is the first half of an append: it assigns the record of ws
	// the next txn, strictly greater than every txn before it, queues the
	// record in that order, and returns the txn without waiting for it to
	// be durable. Wait is the second half. The two halves let a caller
	// that orders its own state by txn (the broker, under its commit lock)
	// stage under its lock and wait outside it, so that the records of
	// many callers can share one write and one fsync.
	//
	// A staged record becomes visible to readers (and Head moves) no
	// earlier than every record staged before it, and no later than when
	// Wait for it returns. It is written even if nobody waits for it: by
	// a later Wait, or by Close at the latest. On error nothing was
	// staged. The log keeps ws: the caller must not modify it afterwards.
	Stage(ws []Write) (Txn, error)

	// Wait returns once the record staged at txn, and so every record
	// staged before it, is as durable as the log promises and visible to
	// readers. txn must be one that Stage returned. A Wait after Close
	// returns nil for a record that Close wrote. If Wait fails, the
	// record's fate is unknown until the log is reopened: a durable log
	// may or may not hold it then.
	Wait(txn Txn) error

	// Read yields, in order, every record that holds a write after the
	// cursor's position, up to the head as it is when the reader gets there
	// (records that become visible while reading are yielded too). The
	// first record may hold writes at or before the position: Record.After
	// skips them.
	//
	// A cursor of another log, before Oldest or beyond Head yields only
	// ErrHistoryUnavailable; so does a reader overtaken by retention, at the
	// point where it was, never past a gap. A reader that the log's Close
	// interrupts ends with ErrClosed, never as if it had reached the head.
	// Any error ends the sequence. The records yielded are shared and must
	// not be modified.
	Read(after Cursor) iter.Seq2[Record, error]

	// Head is the position of the last write of the newest visible record,
	// or the zero Pos for an empty log.
	Head() Pos

	// Oldest is the oldest position a reader may start after: everything
	// after it is retained. It is the last position retention dropped, or
	// the zero Pos if nothing was dropped.
	Oldest() Pos

	// Close writes what is staged and releases the log. Stage and Read
	// after Close fail with ErrClosed.
	Close() error
}

// Durable is a Log that keeps its records across a restart and has
// retention that the broker's checkpoints must be able to hold back. A
// broker uses these methods when its log has them: without Sync a
// checkpoint could be ahead of the log after a crash of the machine, and
// without KeepAfter retention could drop records that no checkpoint
// covers, so that the state could not be rebuilt.
//
// Concurrency: every method is safe for concurrent use, with each other
// and with the methods of Log.
type Durable interface {
	Log

	// Sync makes every record staged so far visible and durable against
	// a crash of the machine, whatever the log promises for Wait, and
	// returns once it is. A checkpoint of the state at a txn calls it
	// first, so that the checkpoint is never ahead of the log it is
	// replayed against. After Close it fails with ErrClosed.
	Sync() error

	// KeepAfter sets a floor under retention: from now on retention never
	// drops a record with a txn after txn (Oldest does not move past it).
	// Each call replaces the floor; the broker raises it to its oldest
	// checkpoint. Until the first call, retention is the log's own.
	KeepAfter(txn Txn)

	// Dir is a local directory that the log owns, in whose subdirectory
	// "checkpoints" the broker keeps its checkpoints by default; "" if
	// the log has none (checkpoints are then where the broker's options
	// say, or off). It is the same when the log is reopened, so that a
	// restarted broker finds its checkpoints.
	Dir() string
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
