package txlog

import (
	"encoding/binary"
	"fmt"
)

// The record encoding, the payload of one frame:
//
//	txn         8 bytes, little endian (fixed, so that it can be set last, under the append lock)
//	writes      uvarint count, then for each write:
//	  action      1 byte
//	  collection  uvarint length, bytes
//	  id          uvarint length, bytes
//	  before txn  uvarint
//	  before      uvarint (length+1, or 0 for none), bytes
//	  after       uvarint (length+1, or 0 for none), bytes
//
// Lengths are checked against what remains, so a damaged payload is an
// error, never a panic or a huge allocation.

const (
	// maxWrites bounds the writes of one record.
	maxWrites = 1 << 20
	// maxPayload bounds one encoded record, so that a damaged frame length
	// cannot ask for a huge buffer.
	maxPayload = 256 << 20
)

// appendWrites appends the encoding of a record with the given writes and
// txn 0 to dst; putTxn sets the txn afterwards.
func appendWrites(dst []byte, ws []Write) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(len(ws)))
	for i := range ws {
		w := &ws[i]
		dst = append(dst, byte(w.Action))
		dst = appendString(dst, w.Ref.Collection)
		dst = appendString(dst, w.Ref.ID)
		dst = binary.AppendUvarint(dst, uint64(w.BeforeTxn))
		dst = appendImage(dst, w.Before)
		dst = appendImage(dst, w.After)
	}
	return dst
}

// putTxn sets the txn of a payload made by appendWrites.
func putTxn(payload []byte, t Txn) { binary.LittleEndian.PutUint64(payload, uint64(t)) }

// payloadTxn reads the txn of a payload without decoding the rest.
func payloadTxn(payload []byte) (Txn, bool) {
	if len(payload) < 8 {
		return 0, false
	}
	return Txn(binary.LittleEndian.Uint64(payload)), true
}

// encodedSize is the length of the encoding of ws, for retention by bytes.
func encodedSize(ws []Write) int {
	n := 8 + binary.MaxVarintLen64
	for i := range ws {
		w := &ws[i]
		n += 1 + 4*binary.MaxVarintLen64 + len(w.Ref.Collection) + len(w.Ref.ID) + len(w.Before) + len(w.After)
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendImage(dst, img []byte) []byte {
	if img == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(img))+1)
	return append(dst, img...)
}

// decodeRecord decodes a payload. The images of the result alias payload,
// which the caller must therefore not reuse. It checks the structure and
// the rules of validate, so that a record read back is one that Append
// could have accepted.
func decodeRecord(payload []byte) (Record, error) { return decodeRecordWith(payload, nil) }

// decodeAlloc is a reader's, for decoding records one after the other
// with fewer allocations: their writes are carved from arrays of
// writesChunk, and a ref string that repeats the last record's (its
// collection, often its document) is shared. The zero value is ready; a
// nil *decodeAlloc allocates each record's own.
type decodeAlloc struct {
	writes   []Write // len is used
	coll, id string
}

// writesChunk is the size of the arrays that writes are carved from. A
// record kept keeps its array alive, and the payloads of the records
// around it that the array points to.
const writesChunk = 32

func (a *decodeAlloc) newWrites(n int) []Write {
	if a == nil {
		return make([]Write, n)
	}
	return carve(&a.writes, n, writesChunk)
}

// carve returns n elements cut from *chunk (its len is what is used),
// which is a new array of size elements when it has no room; more than a
// quarter of size gets an array of its own. A piece is capped, so that an
// append to it copies rather than writing over the next.
func carve[T any](chunk *[]T, n, size int) []T {
	if n > size/4 {
		return make([]T, n)
	}
	if cap(*chunk)-len(*chunk) < n {
		*chunk = make([]T, 0, size)
	}
	m := len(*chunk)
	*chunk = (*chunk)[:m+n]
	return (*chunk)[m : m+n : m+n]
}

// str returns b as a string: last if it is the same bytes (then b is not
// copied), else a copy that becomes last.
func (a *decodeAlloc) str(b []byte, last *string) string {
	if string(b) != *last {
		*last = string(b)
	}
	return *last
}

func decodeRecordWith(payload []byte, al *decodeAlloc) (Record, error) {
	d := decoder{b: payload}
	t, ok := payloadTxn(payload)
	if !ok {
		return Record{}, errShort
	}
	d.b = d.b[8:]
	n, err := d.uvarint()
	if err != nil {
		return Record{}, err
	}
	if n == 0 || n > maxWrites || n > uint64(len(d.b))/6 {
		// Every write takes at least 6 bytes, so n cannot exceed what remains.
		return Record{}, fmt.Errorf("write count %d does not fit the payload", n)
	}
	r := Record{Txn: t, Writes: al.newWrites(int(n))}
	for i := range r.Writes {
		w := &r.Writes[i]
		a, err := d.byte()
		if err != nil {
			return Record{}, err
		}
		w.Action = Action(a)
		if al == nil {
			if w.Ref.Collection, err = d.string(); err != nil {
				return Record{}, err
			}
			if w.Ref.ID, err = d.string(); err != nil {
				return Record{}, err
			}
		} else {
			coll, err := d.stringBytes()
			if err != nil {
				return Record{}, err
			}
			id, err := d.stringBytes()
			if err != nil {
				return Record{}, err
			}
			w.Ref = Ref{Collection: al.str(coll, &al.coll), ID: al.str(id, &al.id)}
		}
		bt, err := d.uvarint()
		if err != nil {
			return Record{}, err
		}
		w.BeforeTxn = Txn(bt)
		if w.Before, err = d.image(); err != nil {
			return Record{}, err
		}
		if w.After, err = d.image(); err != nil {
			return Record{}, err
		}
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%d bytes after the last write", len(d.b))
	}
	if t == 0 {
		return Record{}, fmt.Errorf("txn 0")
	}
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

var errShort = fmt.Errorf("payload ends early")

type decoder struct{ b []byte }

func (d *decoder) byte() (byte, error) {
	if len(d.b) == 0 {
		return 0, errShort
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		return 0, errShort
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)) {
		return nil, errShort
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b, nil
}

func (d *decoder) string() (string, error) {
	b, err := d.stringBytes()
	return string(b), err
}

func (d *decoder) stringBytes() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	return d.bytes(n)
}

func (d *decoder) image() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil || n == 0 {
		return nil, err
	}
	return d.bytes(n - 1)
}

// AppendRecord appends r in the record encoding (the payload of one frame
// of the file log) to dst: for a log that keeps its records elsewhere,
// such as txlog/jetstream, so that every log stores the same bytes. The
// record must be one Append would accept; its Txn is written as it is.
func AppendRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = appendWrites(dst, r.Writes)
	putTxn(dst[start:], r.Txn)
	return dst
}

// DecodeRecord decodes what AppendRecord made. A damaged or truncated
// encoding is an error wrapping ErrCorrupt, never a panic or a huge
// allocation; the record's images share b's memory.
func DecodeRecord(b []byte) (Record, error) {
	r, err := decodeRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r, nil
}
