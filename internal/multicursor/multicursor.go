// Package multicursor encodes the compound cursor of a multiplexed stream:
// one position per subscription in a single string, so that one
// Last-Event-ID (or cursor parameter) resumes every subscription of the
// stream. It decodes input from outside and refuses, as an invalid cursor,
// anything that is not a cursor of the same subscriptions.
package multicursor

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/txlog"
)

// Cursor is the position of every subscription of a multiplexed
// stream: one cursor that resumes them all, as SSE's Last-Event-ID needs.
// Positions are stored in the order of the sorted subscription names, and
// a hash of the names (NamesHash) guards against resuming a different set of them.
//
// Encoding (base64url): version 2, log ID (16 bytes), names hash (4
// bytes), count, the largest txn, then per subscription the distance of
// its txn below the largest, op+1 (0 for the end of a transaction) and
// seq, all uvarints. Subscriptions usually sit at or near the same txn,
// so each costs a few bytes. A subscription with no position yet (cut
// within its snapshot, which withholds its cursor) has op noPosition and
// the other two 0: it starts again.
type Cursor struct {
	Log   txlog.ID
	Names uint32         // NamesHash of the sorted subscription names
	Pos   []txlog.Cursor // one per subscription, in the names' order
}

const version = 2

// noPosition is the op of a subscription without a position: above any
// op+1, so that no real position encodes to it.
const noPosition = 1<<32 + 1

// NamesHash returns the hash of the sorted subscription names that a
// Cursor carries.
func NamesHash(names []string) uint32 {
	d := xxhash.New()
	for _, n := range names {
		d.WriteString(n)
		d.Write([]byte{0})
	}
	return uint32(d.Sum64())
}

// String returns the cursor's text form, URL-safe base64.
func (m *Cursor) String() string {
	b := make([]byte, 0, 32+6*len(m.Pos))
	b = append(b, version)
	b = append(b, m.Log[:]...)
	b = binary.BigEndian.AppendUint32(b, m.Names)
	b = binary.AppendUvarint(b, uint64(len(m.Pos)))
	var top txlog.Txn
	for _, c := range m.Pos {
		top = max(top, c.Pos.Txn)
	}
	b = binary.AppendUvarint(b, uint64(top))
	for _, c := range m.Pos {
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

var errNotOurs = errors.New("not a cursor of this stream's subscriptions")

// Parse decodes a compound cursor for n subscriptions whose sorted names
// hash to names. Any mismatch is an error wrapping txlog.ErrInvalidCursor,
// which a transport answers like any cursor that cannot be resumed.
func Parse(s string, n int, names uint32) (Cursor, error) {
	bad := func(why string) (Cursor, error) {
		return Cursor{}, fmt.Errorf("%w: %w: %s", txlog.ErrInvalidCursor, errNotOurs, why)
	}
	// At most 31 bytes a position (three uvarints), after 32 of header.
	if len(s) > base64.RawURLEncoding.EncodedLen(32+31*max(n, 0)) {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 21 || b[0] != version {
		return bad("malformed")
	}
	var m Cursor
	copy(m.Log[:], b[1:17])
	m.Names = binary.BigEndian.Uint32(b[17:21])
	if m.Names != names {
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
	m.Pos = make([]txlog.Cursor, n)
	for i := range m.Pos {
		dist, ok1 := next()
		op, ok2 := next()
		seq, ok3 := next()
		if ok1 && ok2 && ok3 && op == noPosition && dist == 0 && seq == 0 {
			continue // no position: the zero Cursor
		}
		if !ok1 || !ok2 || !ok3 || dist > top || op > 1<<32 || seq > 1<<32-1 {
			return bad("malformed position")
		}
		c := txlog.Cursor{Log: m.Log, Pos: txlog.Pos{Txn: txlog.Txn(top - dist), Op: ^uint32(0)}, Seq: uint32(seq)}
		if op > 0 {
			c.Pos.Op = uint32(op - 1)
		}
		m.Pos[i] = c
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return m, nil
}
