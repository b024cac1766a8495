package subscription

import (
	"fmt"
	"time"
)

// Options configure a subscription. The zero value is Fauna's default: the
// action and document fields, no snapshot, starting now.
type Options struct {
	// Fields selects what events carry; zero means DefaultFields.
	Fields Fields
	// Snapshot starts the stream with the target's state at the start txn:
	// snapshot events, a page of documents each, the last marked.
	Snapshot bool
	// SnapshotPageSize is the number of documents per snapshot event;
	// default 64, at most MaxSnapshotPageSize.
	SnapshotPageSize int
	// Cursor resumes after the event that carried it: exactly the events
	// after it follow, replayed from the log and then live.
	Cursor string
	// Updates adds, to a set stream, an update event for a member whose
	// document changes while it stays in the set.
	Updates bool
	// Data adds the document's data to set events and snapshot members.
	Data bool
	// Buffer bounds the events queued for a subscriber that is slower than
	// the commits; default 1024. A subscriber whose queue overflows is
	// moved to reading the log at its own pace and rejoins live delivery
	// when it has caught up: it loses nothing and delays no one.
	Buffer int
	// BufferBytes bounds the bytes of the queued events the same way;
	// default 1 MiB.
	BufferBytes int
	// Heartbeat, when positive, sends a status event carrying the latest
	// txn after this long without any other event.
	Heartbeat time.Duration
}

// Limits and defaults of Options.
const (
	DefaultSnapshotPageSize = 64
	MaxSnapshotPageSize     = 1024
	DefaultBuffer           = 1024
	DefaultBufferBytes      = 1 << 20
)

// Normalize fills in the defaults and checks the ranges.
func (o Options) Normalize() (Options, error) {
	if o.Fields == 0 {
		o.Fields = DefaultFields
	}
	if o.Fields&^allFields != 0 {
		return o, fmt.Errorf("%w: unknown fields %#x", ErrInvalidOptions, uint8(o.Fields&^allFields))
	}
	switch {
	case o.SnapshotPageSize == 0:
		o.SnapshotPageSize = DefaultSnapshotPageSize
	case o.SnapshotPageSize < 0 || o.SnapshotPageSize > MaxSnapshotPageSize:
		return o, fmt.Errorf("%w: snapshot page size %d outside 1..%d", ErrInvalidOptions, o.SnapshotPageSize, MaxSnapshotPageSize)
	}
	if o.Buffer < 0 || o.BufferBytes < 0 || o.Heartbeat < 0 {
		return o, fmt.Errorf("%w: negative buffer or heartbeat", ErrInvalidOptions)
	}
	if o.Buffer == 0 {
		o.Buffer = DefaultBuffer
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	return o, nil
}
