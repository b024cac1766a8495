package subscription

import (
	"fmt"

	"github.com/tidings/tidings/txlog"
)

// Type is the type of an event, its "type" on the wire.
type Type uint8

// The event types.
const (
	TypeStart          Type = iota + 1 // the stream's start txn
	TypeSnapshot                       // a page of the target's state at the start txn
	TypeVersion                        // a document stream's create, update or delete
	TypeSet                            // a set stream's add, remove or update
	TypeHistoryRewrite                 // a revision of a document's past
	TypeStatus                         // a heartbeat with the latest txn
	TypeError                          // the end of the stream, and why
)

var typeNames = [...]string{TypeStart: "start", TypeSnapshot: "snapshot", TypeVersion: "version",
	TypeSet: "set", TypeHistoryRewrite: "history_rewrite", TypeStatus: "status", TypeError: "error"}

// String returns the type's wire name.
func (t Type) String() string {
	if t == 0 || int(t) >= len(typeNames) {
		return fmt.Sprintf("Type(%d)", uint8(t))
	}
	return typeNames[t]
}

// ActionLastPage marks the last page of a snapshot.
const ActionLastPage = "last"

// Error codes carried by error events.
const (
	// CodeHistoryUnavailable: the subscriber fell behind the retained
	// history; it must start again (with a snapshot).
	CodeHistoryUnavailable = "history_unavailable"
	// CodeShuttingDown: the broker is closing; resume from the cursor.
	CodeShuttingDown = "shutting_down"
)

// Event is one event of a stream.
//
// JSON is the whole event as one line of JSON, without a line ending: the
// envelope every transport sends. It is encoded once per write and field
// set and shared by every subscriber that receives it, so it must not be
// modified.
type Event struct {
	Type Type
	Txn  txlog.Txn
	// Cursor resumes after this event. Status events and snapshot pages
	// have none (its Log is zero).
	Cursor txlog.Cursor
	// CursorText is Cursor as text, as the JSON carries it, kept so that a
	// transport that needs it apart (SSE's id) does not encode it again
	// for every subscriber. Empty where there is no cursor.
	CursorText string
	// Action is create, update or delete (version events), add, remove or
	// update (set events), insert or remove (history_rewrite), the error
	// code (error events), or ActionLastPage on a snapshot's last page.
	Action string
	JSON   []byte
}

// CursorString returns the cursor as text: CursorText, or, for an event
// made without it, the encoding of Cursor.
func (e *Event) CursorString() string {
	if e.CursorText != "" || !e.HasCursor() {
		return e.CursorText
	}
	return e.Cursor.String()
}

// HasCursor reports whether the event carries a cursor.
func (e *Event) HasCursor() bool { return e.Cursor.Log != (txlog.ID{}) }

// After reports whether e comes after the position c in its stream.
func (e *Event) After(c txlog.Cursor) bool {
	if d := e.Cursor.Pos.Compare(c.Pos); d != 0 {
		return d > 0
	}
	return e.Cursor.Seq > c.Seq
}
