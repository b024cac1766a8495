package txlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is: the errors a log returns
// wrap them with the details (which segment, which offset, which cursor).
var (
	// ErrHistoryUnavailable: the position asked for is not in this log's
	// retained history: it is older than the oldest retained record, beyond
	// the head, or from a log of another identity. The reader must start
	// again from a snapshot; the log never skips the missing records.
	ErrHistoryUnavailable = errors.New("txlog: history unavailable")

	// ErrCorrupt: stored data failed verification (a checksum, a frame
	// header, a segment header, or the order of txns). The log refuses to
	// go past it rather than skip what it cannot read.
	ErrCorrupt = errors.New("txlog: corrupt log")

	// ErrClosed: the log has been closed.
	ErrClosed = errors.New("txlog: log closed")

	// ErrInvalidRecord: Append was given a record that cannot be stored
	// (no writes, an unknown action, images that do not fit the action).
	ErrInvalidRecord = errors.New("txlog: invalid record")

	// ErrInvalidCursor: a cursor string that ParseCursor cannot read.
	ErrInvalidCursor = errors.New("txlog: invalid cursor")
)

// CorruptError says where a file log failed verification. It wraps ErrCorrupt.
type CorruptError struct {
	Segment string // file name of the segment
	Offset  int64  // byte offset of the damaged frame or header
	Reason  string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("txlog: corrupt log: segment %s at offset %d: %s", e.Segment, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// overtakenError is the ErrHistoryUnavailable of a reader that retention
// overtook while it was reading.
type overtakenError struct{ oldest Pos }

func (e *overtakenError) Error() string {
	return fmt.Sprintf("txlog: history unavailable: retention dropped the records this reader needed; the oldest position is now %d.%d", e.oldest.Txn, e.oldest.Op)
}

func (e *overtakenError) Unwrap() error { return ErrHistoryUnavailable }
