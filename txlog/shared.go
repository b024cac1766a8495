package txlog

import (
	"context"
	"errors"
	"iter"
	"time"
)

// ErrConflict: another writer appended to a Shared log where a conditional
// append expected to go. Nothing of the refused record is in the log.
var ErrConflict = errors.New("txlog: another writer appended first")

// Shared is a Log that several writers append to, each in its own process
// (a broker per node, on one replicated stream), and that each follows to
// learn what the others append. A broker on a Shared log applies to its
// state only what it follows, in log order, so that every node holds the
// same state and delivers the same events with the same cursors; it
// commits with StageAfter, conditioned on the record its state is at.
//
// Concurrency: as Log. Follow may run concurrently with everything else.
type Shared interface {
	Log

	// Follow yields every record after the cursor, this writer's and the
	// others', in log order, as the log gets them, without end: it ends
	// when ctx is done (with no error), when the log is closed (ErrClosed),
	// or at a gap (ErrHistoryUnavailable: retention went past the
	// follower, which never skips). A record followed is visible: Head is
	// at or past it.
	Follow(ctx context.Context, after Cursor) iter.Seq2[Record, error]

	// StageAfter is Stage on a condition: the record is appended only if
	// the record before it in the log is the one of txn last (0: the log is
	// empty). Otherwise StageAfter or Wait fails with ErrConflict, and
	// nothing of the record is in the log.
	StageAfter(ws []Write, last Txn) (Txn, error)

	// Contact is the last time the log heard from what holds the shared
	// records (an append acknowledged, a record followed, an answer to a
	// question while idle): a follower that has not heard from it for a
	// while may be cut off from the other writers, and must not pass for
	// up to date. A log that follows asks at least every few seconds.
	Contact() time.Time
}
