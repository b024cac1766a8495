package transport

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/txlog"
)

// multiCursor is the position of every subscription of a multiplexed
// stream: one cursor that resumes them all, as SSE's Last-Event-ID needs.
// Positions are stored in the order of the sorted subscription names, and
// a hash of the names guards against resuming a different set of them.
//
// Encoding (base64url): version 2, log ID (16 bytes), names hash (4
// bytes), count, the largest txn, then per subscription the distance of
// its txn below the largest, op+1 (0 for the end of a transaction) and
// seq, all uvarints. Subscriptions usually sit at or near the same txn,
// so each costs a few bytes. A subscription with no position yet (cut
// within its snapshot, which withholds its cursor) has op noPosition and
// the other two 0: it starts again.
type multiCursor struct {
	log   txlog.ID
	names uint32
	pos   []txlog.Cursor
}

const multiCursorVersion = 2

// noPosition is the op of a subscription without a position: above any
// op+1, so that no real position encodes to it.
const noPosition = 1<<32 + 1

func namesHash(names []string) uint32 {
	d := xxhash.New()
	for _, n := range names {
		d.WriteString(n)
		d.Write([]byte{0})
	}
	return uint32(d.Sum64())
}

func (m *multiCursor) String() string {
	b := make([]byte, 0, 32+6*len(m.pos))
	b = append(b, multiCursorVersion)
	b = append(b, m.log[:]...)
	b = binary.BigEndian.AppendUint32(b, m.names)
	b = binary.AppendUvarint(b, uint64(len(m.pos)))
	var top txlog.Txn
	for _, c := range m.pos {
		top = max(top, c.Pos.Txn)
	}
	b = binary.AppendUvarint(b, uint64(top))
	for _, c := range m.pos {
		if c.Log == (txlog.ID{}) {
			b = binary.AppendUvarint(b, 0)
			b = binary.AppendUvarint(b, noPosition)
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(top-c.Pos.Txn))
		op := uint64(c.Pos.Op) + 1
		if c.Pos.Op == ^uint32(0) {
			op = 0
		}
		b = binary.AppendUvarint(b, op)
		b = binary.AppendUvarint(b, uint64(c.Seq))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var errMultiCursor = errors.New("not a cursor of this stream's subscriptions")

// parseMultiCursor decodes a compound cursor for n subscriptions whose
// sorted names hash to names. Any mismatch is txlog.ErrInvalidCursor,
// answered 410 like any cursor that cannot be resumed.
func parseMultiCursor(s string, n int, names uint32) (multiCursor, error) {
	bad := func(why string) (multiCursor, error) {
		return multiCursor{}, fmt.Errorf("%w: %w: %s", txlog.ErrInvalidCursor, errMultiCursor, why)
	}
	if len(s) > base64.RawURLEncoding.EncodedLen(32+31*MaxSubscriptionsPerStream) {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 21 || b[0] != multiCursorVersion {
		return bad("malformed")
	}
	var m multiCursor
	copy(m.log[:], b[1:17])
	m.names = binary.BigEndian.Uint32(b[17:21])
	if m.names != names {
		return bad("it belongs to other subscriptions")
	}
	b = b[21:]
	next := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	count, ok1 := next()
	top, ok2 := next()
	if !ok1 || !ok2 || count != uint64(n) {
		return bad("wrong count")
	}
	m.pos = make([]txlog.Cursor, n)
	for i := range m.pos {
		dist, ok1 := next()
		op, ok2 := next()
		seq, ok3 := next()
		if ok1 && ok2 && ok3 && op == noPosition && dist == 0 && seq == 0 {
			continue // no position: the zero Cursor
		}
		if !ok1 || !ok2 || !ok3 || dist > top || op > 1<<32 || seq > 1<<32-1 {
			return bad("malformed position")
		}
		c := txlog.Cursor{Log: m.log, Pos: txlog.Pos{Txn: txlog.Txn(top - dist), Op: ^uint32(0)}, Seq: uint32(seq)}
		if op > 0 {
			c.Pos.Op = uint32(op - 1)
		}
		m.pos[i] = c
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return m, nil
}
