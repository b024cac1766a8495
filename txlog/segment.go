package txlog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// A segment file is a header followed by frames, one record per frame.
//
// Header (headerSize bytes, little endian):
//
//	magic "TDLS", version u16, flags u16 (0), log ID [16],
//	base txn u64 (no record in the segment has a smaller txn),
//	prev txn u64, prev op u32 (the last position before this segment),
//	reserved u32 (0), xxhash64 of the preceding 48 bytes.
//
// Frame:
//
//	payload length u32, xxhash64 of the payload u64,
//	check u32 (low 32 bits of the xxhash64 of the 12 bytes before it),
//	payload (the record encoding of codec.go).
//
// The frame header has a check of its own so that a damaged length is
// caught as damage: without it a length flipped to a large value would look
// like a record torn by a crash at the end of the file, and be truncated
// away silently.

const (
	segMagic      = "TDLS"
	segVersion    = 1
	headerSize    = 56
	frameHdrSize  = 16
	segNameDigits = 16
	segSuffix     = ".seg"
)

// segName is the file name of the segment whose records start at base.
// Hex of fixed width, so that names sort in txn order.
func segName(base Txn) string {
	return fmt.Sprintf("%016x%s", uint64(base), segSuffix)
}

// parseSegName returns the base of a segment file name, or false for a
// name that is not a segment's.
func parseSegName(name string) (Txn, bool) {
	hex, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(hex) != segNameDigits {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return 0, false
	}
	return Txn(v), true
}

type segHeader struct {
	id   ID
	base Txn
	prev Pos
}

func (h *segHeader) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint16(b, segVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, h.id[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.base))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.prev.Txn))
	b = binary.LittleEndian.AppendUint32(b, h.prev.Op)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func unmarshalHeader(b []byte) (segHeader, error) {
	if len(b) != headerSize {
		return segHeader{}, fmt.Errorf("header of %d bytes", len(b))
	}
	if xxhash.Sum64(b[:48]) != binary.LittleEndian.Uint64(b[48:]) {
		return segHeader{}, errors.New("header checksum mismatch")
	}
	if string(b[:4]) != segMagic {
		return segHeader{}, errors.New("not a segment file")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != segVersion {
		return segHeader{}, fmt.Errorf("segment version %d, this build reads %d", v, segVersion)
	}
	var h segHeader
	copy(h.id[:], b[8:24])
	h.base = Txn(binary.LittleEndian.Uint64(b[24:]))
	h.prev = Pos{Txn: Txn(binary.LittleEndian.Uint64(b[32:])), Op: binary.LittleEndian.Uint32(b[40:])}
	if h.prev.Txn >= h.base && h.base != 0 {
		return segHeader{}, errors.New("header's previous position is not before its base")
	}
	return h, nil
}

// appendFrame appends the frame of one payload to dst.
func appendFrame(dst, payload []byte) []byte {
	var h [frameHdrSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[4:], xxhash.Sum64(payload))
	binary.LittleEndian.PutUint32(h[12:], uint32(xxhash.Sum64(h[:12])))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// errTorn marks a frame cut short at the end of the data: a write that a
// crash interrupted. Only recovery of the last segment may truncate it;
// anywhere else it is damage.
var errTorn = errors.New("frame cut short at the end of the data")

// frameReader reads the frames of one segment from a byte offset up to a
// limit. It never reads past the limit, so a reader can follow a segment
// that is still being appended to.
type frameReader struct {
	src   *limitedReader
	r     *bufio.Reader
	off   int64 // offset of the next frame
	limit int64 // bytes that may be read
	hdr   [frameHdrSize]byte
	chunk []byte // what small payloads are carved from: len is used
}

// payloadChunk is the size of the buffers that payloads are carved from,
// so that reading costs an allocation per chunk, not per record. Records
// alias their payload: a record kept keeps its chunk alive, at most
// payloadChunk bytes or 4 times the payload.
const payloadChunk = 16 << 10

// alloc returns a buffer of n bytes for a payload, never shared with
// another.
func (fr *frameReader) alloc(n int) []byte { return carve(&fr.chunk, n, payloadChunk) }

// next returns the payload of the next frame in a buffer of its own, io.EOF at
// exactly the limit, errTorn if the data ends within the frame, or a
// description of the damage.
func (fr *frameReader) next() ([]byte, error) {
	left := fr.limit - fr.off
	if left == 0 {
		return nil, io.EOF
	}
	if left < frameHdrSize {
		return nil, errTorn
	}
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, ioErr(err)
	}
	h := fr.hdr[:]
	if uint32(xxhash.Sum64(h[:12])) != binary.LittleEndian.Uint32(h[12:]) {
		if allZero(h) {
			return nil, errZeros
		}
		return nil, errors.New("frame header check mismatch")
	}
	n := int64(binary.LittleEndian.Uint32(h[0:]))
	if n > maxPayload {
		return nil, fmt.Errorf("frame length %d exceeds the maximum", n)
	}
	if n > left-frameHdrSize {
		return nil, errTorn
	}
	payload := fr.alloc(int(n))
	if _, err := io.ReadFull(fr.r, payload); err != nil {
		return nil, ioErr(err)
	}
	if xxhash.Sum64(payload) != binary.LittleEndian.Uint64(h[4:]) {
		return nil, errors.New("payload checksum mismatch")
	}
	fr.off += frameHdrSize + n
	return payload, nil
}

// errZeros marks a frame header of zeros: in the last segment, the tail of
// a file that a crash extended without writing its data.
var errZeros = errors.New("frame header is all zeros")

// ioErr turns an unexpected end of file into a description: the file is
// shorter than its limit said, so something truncated it.
func ioErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file ends before its recorded size")
	}
	return err
}

func allZero(b []byte) bool {
	return len(bytes.Trim(b, "\x00")) == 0
}

// decodePayload decodes a verified frame's payload and checks that its txn
// follows the previous position. The damage it finds is *CorruptError.
func decodePayload(payload []byte, prev Pos, name string, off int64, a *decodeAlloc) (Record, error) {
	rec, err := decodeRecordWith(payload, a)
	if err != nil {
		return Record{}, &CorruptError{Segment: name, Offset: off, Reason: "record does not decode: " + err.Error()}
	}
	if rec.Txn <= prev.Txn {
		return Record{}, &CorruptError{Segment: name, Offset: off,
			Reason: fmt.Sprintf("txn %d does not follow %d", rec.Txn, prev.Txn)}
	}
	return rec, nil
}
