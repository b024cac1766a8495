package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/txlog"
)

// A checkpoint file is the documents of the state at one txn:
//
//	header  magic "TDCKPT01", log ID (16 bytes), txn (8 bytes, big endian)
//	frames  uvarint n > 0, then n bytes: uvarint len + collection,
//	        uvarint len + id, uvarint ts, and the data to the frame's end;
//	        in ref order
//	end     uvarint 0
//	trailer document count (8 bytes), xxhash64 of every byte before it (8)
//
// Index entries are not stored: they are a function of the documents and
// the schema, so a checkpoint stays valid when an index is added, and a
// restart rebuilds them as it reads. The checksum is checked before the
// state is used, so a damaged file is refused as a whole, never half-read.

const (
	ckptMagic  = "TDCKPT01"
	ckptHeader = len(ckptMagic) + 16 + 8
	ckptPrefix = "checkpoint-"
	ckptSuffix = ".ckpt"
	ckptTemp   = ".tmp"
)

// errCheckpointDamaged marks a checkpoint file that cannot be read back.
var errCheckpointDamaged = errors.New("damaged")

// ckptName is the file name of the checkpoint at txn: zero-padded, so that
// names sort in txn order.
func ckptName(txn txlog.Txn) string {
	return fmt.Sprintf("%s%020d%s", ckptPrefix, uint64(txn), ckptSuffix)
}

func parseCkptName(name string) (txlog.Txn, bool) {
	s, ok := strings.CutPrefix(name, ckptPrefix)
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, ckptSuffix); !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return txlog.Txn(n), err == nil
}

// ckptWriter writes one checkpoint file, hashing as it goes.
type ckptWriter struct {
	w     *bufio.Writer
	h     *xxhash.Digest
	count uint64
	buf   []byte
	err   error
}

func newCkptWriter(w io.Writer, log txlog.ID, txn txlog.Txn) *ckptWriter {
	cw := &ckptWriter{w: bufio.NewWriterSize(w, 1<<20), h: xxhash.New()}
	hdr := append([]byte(ckptMagic), log[:]...)
	cw.write(binary.BigEndian.AppendUint64(hdr, uint64(txn)))
	return cw
}

func (cw *ckptWriter) write(p []byte) {
	if cw.err != nil {
		return
	}
	cw.h.Write(p)
	_, cw.err = cw.w.Write(p)
}

// doc writes one document's frame.
func (cw *ckptWriter) doc(v *version) {
	body := cw.buf[:0]
	body = binary.AppendUvarint(body, uint64(len(v.ref.Collection)))
	body = append(body, v.ref.Collection...)
	body = binary.AppendUvarint(body, uint64(len(v.ref.ID)))
	body = append(body, v.ref.ID...)
	body = binary.AppendUvarint(body, uint64(v.ts))
	var n [binary.MaxVarintLen64]byte
	cw.write(binary.AppendUvarint(n[:0], uint64(len(body)+len(v.data))))
	cw.write(body)
	cw.write(v.data)
	cw.buf = body
	cw.count++
}

// finish writes the end mark and the trailer and flushes.
func (cw *ckptWriter) finish() error {
	cw.write([]byte{0})
	cw.write(binary.BigEndian.AppendUint64(nil, cw.count))
	if cw.err == nil {
		_, cw.err = cw.w.Write(binary.BigEndian.AppendUint64(nil, cw.h.Sum64()))
	}
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.err
}

// ckptFile is a checkpoint read back: its documents, in ref order.
type ckptFile struct {
	log  txlog.ID
	txn  txlog.Txn
	docs []*version
}

// readCheckpoint reads and verifies the checkpoint at path. Any defect,
// down to a flipped bit, is an error wrapping errCheckpointDamaged.
func readCheckpoint(path string) (*ckptFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return decodeCheckpoint(bufio.NewReaderSize(f, 1<<20), fi.Size())
}

// decodeCheckpoint reads a checkpoint of size bytes from r.
func decodeCheckpoint(r *bufio.Reader, size int64) (*ckptFile, error) {
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errCheckpointDamaged, fmt.Sprintf(format, args...))
	}
	if size < int64(ckptHeader)+1+16 {
		return nil, damaged("%d bytes, shorter than an empty checkpoint", size)
	}
	h := xxhash.New()
	left := size - 8 // the bytes before the checksum
	read := func(p []byte) error {
		if int64(len(p)) > left {
			return damaged("a frame runs past the end")
		}
		if _, err := io.ReadFull(r, p); err != nil {
			return damaged("cut short: %v", err)
		}
		left -= int64(len(p))
		h.Write(p)
		return nil
	}
	var hdr [ckptHeader]byte
	if err := read(hdr[:]); err != nil {
		return nil, err
	}
	if string(hdr[:len(ckptMagic)]) != ckptMagic {
		return nil, damaged("not a checkpoint (magic %q)", hdr[:len(ckptMagic)])
	}
	c := &ckptFile{txn: txlog.Txn(binary.BigEndian.Uint64(hdr[len(ckptMagic)+16:]))}
	copy(c.log[:], hdr[len(ckptMagic):])
	colls := map[string]string{} // interned: a handful of names, a million documents
	var lenBuf [binary.MaxVarintLen64]byte
	for {
		n, err := readUvarint(read, lenBuf[:])
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		if n > uint64(left) {
			return nil, damaged("a frame of %d bytes with %d left", n, left)
		}
		body := make([]byte, n)
		if err := read(body); err != nil {
			return nil, err
		}
		v, err := decodeDoc(body, colls)
		if err != nil {
			return nil, damaged("document %d: %v", len(c.docs), err)
		}
		if k := len(c.docs); k > 0 && !versionLess(c.docs[k-1], v) {
			return nil, damaged("document %s out of order", v.ref)
		}
		c.docs = append(c.docs, v)
	}
	var count [8]byte
	if err := read(count[:]); err != nil {
		return nil, err
	}
	if left != 0 {
		return nil, damaged("%d bytes after the end mark", left)
	}
	var sum [8]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, damaged("no checksum: %v", err)
	}
	if got, want := h.Sum64(), binary.BigEndian.Uint64(sum[:]); got != want {
		return nil, damaged("checksum %016x, want %016x", got, want)
	}
	if n := binary.BigEndian.Uint64(count[:]); n != uint64(len(c.docs)) {
		return nil, damaged("%d documents, the trailer says %d", len(c.docs), n)
	}
	return c, nil
}

// readUvarint reads a uvarint a byte at a time through read, which hashes
// and bounds it.
func readUvarint(read func([]byte) error, buf []byte) (uint64, error) {
	for i := range buf {
		if err := read(buf[i : i+1]); err != nil {
			return 0, err
		}
		if buf[i] < 0x80 {
			n, k := binary.Uvarint(buf[:i+1])
			if k <= 0 {
				break
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: a length that is not a varint", errCheckpointDamaged)
}

// decodeDoc decodes a frame's body. The version's data is a sub-slice of
// body, which it then owns.
func decodeDoc(body []byte, colls map[string]string) (*version, error) {
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(body)
		if k <= 0 || n > uint64(len(body)-k) {
			return nil, errors.New("bad field length")
		}
		f := body[k : k+int(n)]
		body = body[k+int(n):]
		return f, nil
	}
	cb, err := field()
	if err != nil {
		return nil, err
	}
	id, err := field()
	if err != nil {
		return nil, err
	}
	ts, k := binary.Uvarint(body)
	if k <= 0 || ts == 0 {
		return nil, errors.New("bad ts")
	}
	data := body[k:]
	if len(cb) == 0 || len(id) == 0 || len(data) == 0 {
		return nil, errors.New("empty collection, id or data")
	}
	coll, ok := colls[string(cb)]
	if !ok {
		coll = string(cb)
		colls[coll] = coll
	}
	return &version{ref: txlog.Ref{Collection: coll, ID: string(id)}, ts: txlog.Txn(ts), data: data}, nil
}

// listCheckpoints returns the txns of the checkpoints in dir, newest first.
func listCheckpoints(dir string) ([]txlog.Txn, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var txns []txlog.Txn
	for i := len(entries) - 1; i >= 0; i-- { // ReadDir sorts by name
		if txn, ok := parseCkptName(entries[i].Name()); ok && entries[i].Type().IsRegular() {
			txns = append(txns, txn)
		}
	}
	return txns, nil
}

// writeCheckpointFile writes docs as the checkpoint at txn, atomically: a
// temporary file, fsynced, renamed into place, and the directory fsynced,
// so that a crash leaves either the whole checkpoint or none. stop is
// polled between documents; when it reports true the write is abandoned.
func writeCheckpointFile(dir string, log txlog.ID, txn txlog.Txn, docs *docTree, stop func() bool) (n int64, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	final := filepath.Join(dir, ckptName(txn))
	tmp := final + ckptTemp
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	cw := newCkptWriter(f, log, txn)
	var stopped bool
	docs.Ascend(func(v *version) bool {
		cw.doc(v)
		if cw.count%4096 == 0 && stop() {
			stopped = true
		}
		return cw.err == nil && !stopped
	})
	if stopped {
		return 0, errCheckpointStopped
	}
	if err := cw.finish(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, err
	}
	return fi.Size(), syncDir(dir)
}

var errCheckpointStopped = errors.New("broker: checkpoint abandoned: the broker is closing")

// syncDir fsyncs a directory, so that a rename or removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
