// Package checkpoint is the format of the broker's checkpoint files: the
// documents of the state at one txn, checksummed, written atomically
// (a temporary file, fsynced, renamed into place) and read back whole or
// not at all. When to write one, how many to keep and which to load is the
// broker's policy; this package names, lists, writes and reads the files.
package checkpoint

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
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
	magic  = "TDCKPT01"
	header = len(magic) + 16 + 8
)

// The names of checkpoint files in their directory: Prefix, the txn in 20
// zero-padded digits, Suffix. A file being written has TempSuffix after
// that until it is whole.
const (
	Prefix     = "checkpoint-"
	Suffix     = ".ckpt"
	TempSuffix = ".tmp"
)

var (
	// ErrDamaged marks a checkpoint file that cannot be read back.
	ErrDamaged = errors.New("damaged")
	// ErrStopped: WriteFile's stop reported true, and it wrote nothing.
	ErrStopped = errors.New("checkpoint abandoned")
)

// Doc is one document of a checkpoint: its current version.
type Doc struct {
	Ref  txlog.Ref
	TS   txlog.Txn
	Data []byte
}

// Name is the file name of the checkpoint at txn: zero-padded, so that
// names sort in txn order.
func Name(txn txlog.Txn) string {
	return fmt.Sprintf("%s%020d%s", Prefix, uint64(txn), Suffix)
}

// ParseName returns the txn of the checkpoint file name, if it is one.
func ParseName(name string) (txlog.Txn, bool) {
	s, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, Suffix); !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return txlog.Txn(n), err == nil
}

// Writer writes one checkpoint file, hashing as it goes: NewWriter, Add
// every document in ref order, then Finish.
type Writer struct {
	w     *bufio.Writer
	h     *xxhash.Digest
	count uint64
	buf   []byte
	err   error
}

// NewWriter starts the checkpoint of the log's state at txn on w.
func NewWriter(w io.Writer, log txlog.ID, txn txlog.Txn) *Writer {
	cw := &Writer{w: bufio.NewWriterSize(w, 1<<20), h: xxhash.New()}
	hdr := append([]byte(magic), log[:]...)
	cw.write(binary.BigEndian.AppendUint64(hdr, uint64(txn)))
	return cw
}

func (cw *Writer) write(p []byte) {
	if cw.err != nil {
		return
	}
	cw.h.Write(p)
	_, cw.err = cw.w.Write(p)
}

// Add writes one document's frame. Documents come in ref order
// (collection, then ID).
func (cw *Writer) Add(ref txlog.Ref, ts txlog.Txn, data []byte) {
	body := cw.buf[:0]
	body = binary.AppendUvarint(body, uint64(len(ref.Collection)))
	body = append(body, ref.Collection...)
	body = binary.AppendUvarint(body, uint64(len(ref.ID)))
	body = append(body, ref.ID...)
	body = binary.AppendUvarint(body, uint64(ts))
	var n [binary.MaxVarintLen64]byte
	cw.write(binary.AppendUvarint(n[:0], uint64(len(body)+len(data))))
	cw.write(body)
	cw.write(data)
	cw.buf = body
	cw.count++
}

// Count returns the number of documents added.
func (cw *Writer) Count() uint64 { return cw.count }

// Finish writes the end mark and the trailer and flushes.
func (cw *Writer) Finish() error {
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

// Header is what a checkpoint file says it is: of which log, at which txn.
type Header struct {
	Log txlog.ID
	Txn txlog.Txn
}

// Read reads and verifies the checkpoint at path, handing add its
// documents in ref order. Any defect, down to a flipped bit, is an error
// wrapping ErrDamaged; the checkpoint is whole only when Read returns nil,
// so the caller keeps what add received only then.
func Read(path string, add func(Doc)) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Header{}, err
	}
	return Decode(bufio.NewReaderSize(f, 1<<20), fi.Size(), add)
}

// Decode reads a checkpoint of size bytes from r, as Read does. Each
// Doc's Data is a slice of its own, which add may keep.
func Decode(r *bufio.Reader, size int64, add func(Doc)) (Header, error) {
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, args...))
	}
	if size < int64(header)+1+16 {
		return Header{}, damaged("%d bytes, shorter than an empty checkpoint", size)
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
	var hdr [header]byte
	if err := read(hdr[:]); err != nil {
		return Header{}, err
	}
	if string(hdr[:len(magic)]) != magic {
		return Header{}, damaged("not a checkpoint (magic %q)", hdr[:len(magic)])
	}
	c := Header{Txn: txlog.Txn(binary.BigEndian.Uint64(hdr[len(magic)+16:]))}
	copy(c.Log[:], hdr[len(magic):])
	colls := map[string]string{} // interned: a handful of names, a million documents
	var lenBuf [binary.MaxVarintLen64]byte
	var prev txlog.Ref
	var docs uint64
	for {
		n, err := readUvarint(read, lenBuf[:])
		if err != nil {
			return Header{}, err
		}
		if n == 0 {
			break
		}
		if n > uint64(left) {
			return Header{}, damaged("a frame of %d bytes with %d left", n, left)
		}
		body := make([]byte, n)
		if err := read(body); err != nil {
			return Header{}, err
		}
		d, err := decodeDoc(body, colls)
		if err != nil {
			return Header{}, damaged("document %d: %v", docs, err)
		}
		if docs > 0 && !refLess(prev, d.Ref) {
			return Header{}, damaged("document %s out of order", d.Ref)
		}
		add(d)
		prev = d.Ref
		docs++
	}
	var count [8]byte
	if err := read(count[:]); err != nil {
		return Header{}, err
	}
	if left != 0 {
		return Header{}, damaged("%d bytes after the end mark", left)
	}
	var sum [8]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return Header{}, damaged("no checksum: %v", err)
	}
	if got, want := h.Sum64(), binary.BigEndian.Uint64(sum[:]); got != want {
		return Header{}, damaged("checksum %016x, want %016x", got, want)
	}
	if n := binary.BigEndian.Uint64(count[:]); n != docs {
		return Header{}, damaged("%d documents, the trailer says %d", docs, n)
	}
	return c, nil
}

// refLess orders refs as checkpoints store them: by collection, then ID.
func refLess(a, b txlog.Ref) bool {
	if a.Collection != b.Collection {
		return a.Collection < b.Collection
	}
	return a.ID < b.ID
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
	return 0, fmt.Errorf("%w: a length that is not a varint", ErrDamaged)
}

// decodeDoc decodes a frame's body. The document's data is a sub-slice of
// body, which it then owns.
func decodeDoc(body []byte, colls map[string]string) (Doc, error) {
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
		return Doc{}, err
	}
	id, err := field()
	if err != nil {
		return Doc{}, err
	}
	ts, k := binary.Uvarint(body)
	if k <= 0 || ts == 0 {
		return Doc{}, errors.New("bad ts")
	}
	data := body[k:]
	if len(cb) == 0 || len(id) == 0 || len(data) == 0 {
		return Doc{}, errors.New("empty collection, id or data")
	}
	coll, ok := colls[string(cb)]
	if !ok {
		coll = string(cb)
		colls[coll] = coll
	}
	return Doc{Ref: txlog.Ref{Collection: coll, ID: string(id)}, TS: txlog.Txn(ts), Data: data}, nil
}

// List returns the txns of the checkpoints in dir, newest first; none if
// dir does not exist.
func List(dir string) ([]txlog.Txn, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var txns []txlog.Txn
	for i := len(entries) - 1; i >= 0; i-- { // ReadDir sorts by name
		if txn, ok := ParseName(entries[i].Name()); ok && entries[i].Type().IsRegular() {
			txns = append(txns, txn)
		}
	}
	return txns, nil
}

// Encode writes docs, in ref order, as the checkpoint of the log's state
// at txn on w. stop is polled every few thousand documents; when it
// reports true the write is abandoned with ErrStopped.
func Encode(w io.Writer, log txlog.ID, txn txlog.Txn, docs iter.Seq[Doc], stop func() bool) error {
	cw := NewWriter(w, log, txn)
	for d := range docs {
		cw.Add(d.Ref, d.TS, d.Data)
		if cw.err != nil {
			break
		}
		if cw.count%4096 == 0 && stop() {
			return ErrStopped
		}
	}
	return cw.Finish()
}

// WriteFile writes the checkpoint at txn in dir with write, atomically: a
// temporary file, fsynced, renamed into place, and the directory fsynced,
// so that a crash leaves either the whole checkpoint or none. It returns
// the file's size.
func WriteFile(dir string, txn txlog.Txn, write func(io.Writer) error) (n int64, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	final := filepath.Join(dir, Name(txn))
	tmp := final + TempSuffix
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
	if err := write(f); err != nil {
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
	return fi.Size(), SyncDir(dir)
}

// SyncDir fsyncs a directory, so that a rename or removal in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
