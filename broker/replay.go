package broker

import (
	"strings"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/internal/wire"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// replay is what a subscriber catching up from the log builds its events
// with, so that replaying costs next to no allocation per event. Live
// delivery encodes an event once for every subscriber that receives it;
// a replaying subscriber encodes each event for itself alone, so the
// per-event allocations (the Event, its JSON, its cursor text, the diff)
// would be paid for every event it reads.
//
// What it hands out keeps the lifetimes of live events: a consumer may
// keep an Event, its JSON and CursorText as long as it likes. The JSON
// and cursor texts are carved from chunks that are written once and never
// changed, each JSON capped so that appending to it copies; a kept event
// keeps its chunk alive (at most replayChunk bytes, or a few times the
// event's size). Only the Event structs are reused, and those the sink
// copies before the next write is read.
type replay struct {
	json  []byte                // the current JSON chunk: len is what was handed out
	last  int                   // the size of the last event's JSON
	texts strings.Builder       // the current chunk of cursor texts
	evs   []subscription.Event  // the events of the write being read
	ptrs  []*subscription.Event // and the slice of them returned
	memo  wire.Memo             // the txns and ref last encoded
	curs  *txlog.CursorEncoder  // the log's cursors, their prefix encoded once

	// A set stream's: its set diffed alone, and its collection.
	set  *entrystore.SetDiff
	coll string
}

// replayChunk is the size of a JSON chunk: a few dozen typical events.
const replayChunk = 16 << 10

// newReplay returns a replay for the subscriber's spec.
func newReplay(cat *entrystore.Catalog, log txlog.ID, s *spec) (*replay, error) {
	r := &replay{last: 256, curs: txlog.NewCursorEncoder(log)}
	if s.target.IsSet() {
		var err error
		if r.set, err = cat.NewSetDiff(s.key); err != nil {
			return nil, err
		}
		r.coll = r.set.Collection()
	}
	return r, nil
}

// reset starts a write's events: the Events of the last write have been
// copied out by then. They are overwritten, not cleared: each write into
// evs costs write barriers while the GC runs, and the JSON they hold
// alive is what the consumer was handed anyway.
func (r *replay) reset() { r.evs = r.evs[:0] }

// event returns e as an Event of the write being read. If evs grows, the
// pointers handed out before still point at the old array, which holds
// their events as they were built.
func (r *replay) event(e *subscription.Event) *subscription.Event {
	r.evs = append(r.evs, *e)
	return &r.evs[len(r.evs)-1]
}

// dst returns where to append the next event's JSON: the free end of the
// chunk, or of a new one when it may not have room.
func (r *replay) dst() []byte {
	if cap(r.json)-len(r.json) < r.last+r.last/2 {
		r.json = make([]byte, 0, max(replayChunk, 4*r.last))
	}
	return r.json[len(r.json):]
}

// keep takes b, appended to dst(), as an event's JSON. If it fitted, the
// append wrote it in place and the chunk's free end moves past it; if not,
// append moved it to an array of its own.
func (r *replay) keep(b []byte) []byte {
	n := len(b)
	r.last = n
	if n <= cap(r.json)-len(r.json) {
		r.json = r.json[:len(r.json)+n]
	}
	return b[:n:n]
}

// cursorText returns c as text, carved from a chunk (a strings.Builder
// never changes what it has written, so the strings it gave stay valid).
func (r *replay) cursorText(c txlog.Cursor) string {
	const n = 44 // a cursor's text
	if r.texts.Cap()-r.texts.Len() < n {
		r.texts.Reset()
		r.texts.Grow(64 * n)
	}
	var buf [n]byte
	start := r.texts.Len()
	r.texts.Write(r.curs.AppendTo(buf[:0], c))
	return r.texts.String()[start:]
}
