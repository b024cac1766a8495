package txlog

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
)

// Cursor is a position in a named log: what an event's opaque cursor string
// stands for. Resuming from a cursor delivers exactly what follows it.
type Cursor struct {
	Log ID
	Pos Pos
	// Seq orders the events that one write yields for one subscription (a
	// document that leaves and re-enters a set yields a remove and an add):
	// a cursor at Seq k resumes with event k+1 of the write at Pos. Reading
	// the log ignores it.
	Seq uint32
}

const (
	cursorVersion = 1
	cursorLen     = 1 + 16 + 8 + 4 + 4
)

// String encodes the cursor as 44 URL-safe characters, fit for a query
// parameter, an SSE id and a JSON string alike.
func (c Cursor) String() string {
	var b [cursorTextLen]byte
	return string(c.AppendTo(b[:0]))
}

// cursorTextLen is the length of a cursor as text.
const cursorTextLen = (cursorLen*8 + 5) / 6

// AppendTo appends the cursor as String encodes it, without allocating
// when dst has room: for encoders that write a cursor per event.
func (c Cursor) AppendTo(dst []byte) []byte {
	var b [cursorLen]byte
	b[0] = cursorVersion
	copy(b[1:17], c.Log[:])
	binary.BigEndian.PutUint64(b[17:25], uint64(c.Pos.Txn))
	binary.BigEndian.PutUint32(b[25:29], c.Pos.Op)
	binary.BigEndian.PutUint32(b[29:33], c.Seq)
	n := len(dst)
	dst = slices.Grow(dst, cursorTextLen)[:n+cursorTextLen]
	base64.RawURLEncoding.Encode(dst[n:], b[:])
	return dst
}

// CursorEncoder appends the texts of cursors of one log, as AppendTo does,
// for a reader that writes a cursor per event: the first 15 bytes of a
// cursor (its version and most of the log ID) are the same for every
// cursor of the log, so their 20 characters are encoded once.
type CursorEncoder struct {
	log    ID
	prefix [cursorPrefixLen * 4 / 3]byte
}

// cursorPrefixLen is how many leading bytes of an encoded cursor name the
// log alone: a multiple of 3, so that they are whole base64 characters.
const cursorPrefixLen = 15

// NewCursorEncoder returns an encoder for the cursors of the log id.
func NewCursorEncoder(id ID) *CursorEncoder {
	e := &CursorEncoder{log: id}
	var b [cursorPrefixLen]byte
	b[0] = cursorVersion
	copy(b[1:], id[:])
	base64.RawURLEncoding.Encode(e.prefix[:], b[:])
	return e
}

// AppendTo appends c as c.AppendTo(dst) would.
func (e *CursorEncoder) AppendTo(dst []byte, c Cursor) []byte {
	if c.Log != e.log {
		return c.AppendTo(dst)
	}
	var b [cursorLen - cursorPrefixLen]byte
	copy(b[:2], c.Log[cursorPrefixLen-1:])
	binary.BigEndian.PutUint64(b[2:10], uint64(c.Pos.Txn))
	binary.BigEndian.PutUint32(b[10:14], c.Pos.Op)
	binary.BigEndian.PutUint32(b[14:18], c.Seq)
	n := len(dst)
	dst = slices.Grow(dst, cursorTextLen)[:n+cursorTextLen]
	copy(dst[n:], e.prefix[:])
	base64.RawURLEncoding.Encode(dst[n+len(e.prefix):], b[:])
	return dst
}

// ParseCursor decodes a string made by Cursor.String. Anything else,
// including another version of the encoding, is ErrInvalidCursor.
func ParseCursor(s string) (Cursor, error) {
	if base64.RawURLEncoding.DecodedLen(len(s)) != cursorLen {
		return Cursor{}, fmt.Errorf("%w: length %d", ErrInvalidCursor, len(s))
	}
	var b [cursorLen]byte
	n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(s))
	if err != nil || n != cursorLen {
		return Cursor{}, fmt.Errorf("%w: not base64url", ErrInvalidCursor)
	}
	if b[0] != cursorVersion {
		return Cursor{}, fmt.Errorf("%w: version %d", ErrInvalidCursor, b[0])
	}
	var c Cursor
	copy(c.Log[:], b[1:17])
	c.Pos.Txn = Txn(binary.BigEndian.Uint64(b[17:25]))
	c.Pos.Op = binary.BigEndian.Uint32(b[25:29])
	c.Seq = binary.BigEndian.Uint32(b[29:33])
	return c, nil
}

// checkStart is the rule every log applies before reading: the cursor must
// name this log and lie within [oldest, head].
func checkStart(c Cursor, id ID, oldest, head Pos) error {
	switch {
	case c.Log != id:
		return fmt.Errorf("%w: cursor of log %s, this is log %s", ErrHistoryUnavailable, c.Log, id)
	case c.Pos.Compare(oldest) < 0:
		return fmt.Errorf("%w: position %d.%d is older than the oldest retained, %d.%d",
			ErrHistoryUnavailable, c.Pos.Txn, c.Pos.Op, oldest.Txn, oldest.Op)
	case c.Pos.Txn > head.Txn:
		return fmt.Errorf("%w: position %d.%d is beyond the head, %d",
			ErrHistoryUnavailable, c.Pos.Txn, c.Pos.Op, head.Txn)
	}
	return nil
}

// CheckCursor reports whether l can be read after c: ErrHistoryUnavailable
// when c names another log, or a position before l.Oldest() or beyond
// l.Head(). Read applies the same rule; this is for callers that want the
// answer before they start.
func CheckCursor(l Log, c Cursor) error {
	return checkStart(c, l.ID(), l.Oldest(), l.Head())
}
