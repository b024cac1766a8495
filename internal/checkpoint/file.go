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
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/txlog"
)

// A checkpoint file is the state at one txn: its documents and, from
// version 2 on, its index entries. Version 2:
//
//	header  magic "TDCKPT02", log ID (16 bytes), txn (8 bytes, big endian)
//	frames  uvarint n > 0, then n bytes: uvarint len + collection,
//	        uvarint len + id, uvarint ts, and the data to the frame's end;
//	        in ref order
//	end     uvarint 0
//	index   schema fingerprint (8 bytes, big endian), uvarint set count,
//	        then each set: uvarint entry count, then each entry: uvarint
//	        bytes shared with the previous key, uvarint len + the rest of
//	        the key, uvarint terms end, uvarint values end; in key order
//	trailer document count (8 bytes), xxhash64 of every byte before it (8)
//
// Version 1 ("TDCKPT01") is the same without the index section; it is
// still read, as a checkpoint without entries.
//
// The index entries are a function of the documents and the schema, so
// they are only worth reading under the schema that wrote them: the
// fingerprint says which (its meaning is the caller's), and a reader
// under another schema skips them and rebuilds them from the documents.
// Keys are stored with the prefix they share with the previous one, which
// in a sorted set is most of it. The checksum is checked before the state
// is used, so a damaged file is refused as a whole, never half-read.

const (
	magicV1 = "TDCKPT01"
	magic   = "TDCKPT02"
	header  = len(magic) + 16 + 8
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

// Entry is one index entry of a checkpoint: its key (terms, values and
// ref ID encoded end to end, as the index store orders them) and where
// the values and the ref ID start in it.
type Entry struct {
	Key           string
	Terms, Values int
}

// Index is the index entries of a checkpoint's state: a fingerprint of the
// schema that made them, and each set's entries.
type Index struct {
	Schema uint64
	Sets   []Set
}

// Set is one set's entries: Len of them, in ascending key order.
type Set struct {
	Len     int
	Entries iter.Seq[Entry]
}

// Writer writes one checkpoint file, hashing as it goes: NewWriter, Add
// every document in ref order, then optionally Index and, for each set,
// StartSet and its entries (AddEntry), then Finish.
type Writer struct {
	w     *bufio.Writer
	h     *xxhash.Digest
	count uint64
	buf   []byte
	err   error

	indexed bool
	sets    int    // sets still to start
	left    int    // entries still to add to the current set
	prev    []byte // the previous key of the current set
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

func (cw *Writer) fail(format string, args ...any) {
	if cw.err == nil {
		cw.err = fmt.Errorf("checkpoint: "+format, args...)
	}
}

// Add writes one document's frame. Documents come in ref order
// (collection, then ID).
func (cw *Writer) Add(ref txlog.Ref, ts txlog.Txn, data []byte) {
	if cw.indexed {
		cw.fail("a document after the index entries")
		return
	}
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

// Index ends the documents and starts the index section: sets sets of
// entries made under the schema of the fingerprint schema.
func (cw *Writer) Index(schema uint64, sets int) {
	if cw.indexed {
		cw.fail("a second index section")
		return
	}
	cw.indexed, cw.sets = true, sets
	b := append(cw.buf[:0], 0) // the end of the documents
	b = binary.BigEndian.AppendUint64(b, schema)
	b = binary.AppendUvarint(b, uint64(sets))
	cw.write(b)
	cw.buf = b
}

// StartSet starts the next set, of n entries.
func (cw *Writer) StartSet(n int) {
	switch {
	case !cw.indexed || cw.sets == 0:
		cw.fail("more sets than the index section has")
	case cw.left != 0:
		cw.fail("a set started with %d entries of the last one missing", cw.left)
	}
	cw.sets--
	cw.left = n
	cw.prev = cw.prev[:0]
	cw.write(binary.AppendUvarint(cw.buf[:0], uint64(n)))
}

// AddEntry writes the current set's next entry; entries come in ascending
// key order, each with terms <= values < len(key).
func (cw *Writer) AddEntry(key string, terms, values int) {
	if cw.left <= 0 {
		cw.fail("more entries than the set has")
		return
	}
	shared := 0
	for shared < len(cw.prev) && shared < len(key) && cw.prev[shared] == key[shared] {
		shared++
	}
	if shared == len(key) || (shared < len(cw.prev) && key[shared] < cw.prev[shared]) {
		cw.fail("an entry out of order")
		return
	}
	if terms < 0 || terms > values || values >= len(key) {
		cw.fail("an entry of %d bytes with terms and values ending at %d and %d", len(key), terms, values)
		return
	}
	b := binary.AppendUvarint(cw.buf[:0], uint64(shared))
	b = binary.AppendUvarint(b, uint64(len(key)-shared))
	b = append(b, key[shared:]...)
	b = binary.AppendUvarint(b, uint64(terms))
	b = binary.AppendUvarint(b, uint64(values))
	cw.write(b)
	cw.buf = b
	cw.prev = append(cw.prev[:shared], key[shared:]...)
	cw.left--
}

// Finish writes what is left (an empty index section if Index was not
// called) and the trailer, and flushes.
func (cw *Writer) Finish() error {
	if !cw.indexed {
		cw.Index(0, 0)
	}
	if cw.sets != 0 || cw.left != 0 {
		cw.fail("the index section is missing %d sets and %d entries", cw.sets, cw.left)
	}
	cw.write(binary.BigEndian.AppendUint64(nil, cw.count))
	if cw.err == nil {
		_, cw.err = cw.w.Write(binary.BigEndian.AppendUint64(nil, cw.h.Sum64()))
	}
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.err
}

// Header is what a checkpoint file says it is: of which log, at which
// txn, in which version of the format.
type Header struct {
	Log     txlog.ID
	Txn     txlog.Txn
	Version int
}

// Read reads and verifies the checkpoint at path, handing add its
// documents in ref order, and skipping its index entries. Any defect,
// down to a flipped bit, is an error wrapping ErrDamaged; the checkpoint
// is whole only when Read returns nil, so the caller keeps what add
// received only then.
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
	return Decode(f, fi.Size(), add)
}

// Decode reads a checkpoint of size bytes from r, as Read does. Each
// Doc's Data is a slice of its own, which add may keep.
func Decode(r io.Reader, size int64, add func(Doc)) (Header, error) {
	d, err := NewDecoder(r, size)
	if err != nil {
		return Header{}, err
	}
	if err := d.Docs(add); err != nil {
		return Header{}, err
	}
	if err := d.Finish(); err != nil {
		return Header{}, err
	}
	return d.Header(), nil
}

// Decoder reads a checkpoint in order: NewDecoder reads its header, Docs
// its documents, then NextSet and Entry its index entries, as many as the
// caller wants, and Finish skips the rest and verifies the whole. Any
// defect is an error wrapping ErrDamaged, possibly only from Finish: what
// was read is to be used only once Finish returns nil.
type Decoder struct {
	r      *bufio.Reader
	hr     *hashReader
	src    io.Reader
	hdr    Header
	docs   uint64
	schema uint64
	sets   int    // sets not yet started
	left   int    // entries of the current set not yet read
	key    []byte // the last entry's key
	state  int
	colls  map[string]string // interned: a handful of names, a million documents
}

// The decoder's states.
const (
	atDocs = iota
	atSets
	finished
)

// hashReader hashes the first left bytes read through it and ends there:
// the bytes the checksum covers.
type hashReader struct {
	r    io.Reader
	h    *xxhash.Digest
	left int64
}

func (hr *hashReader) Read(p []byte) (int, error) {
	if hr.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > hr.left {
		p = p[:hr.left]
	}
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.left -= int64(n)
	if err == io.EOF && hr.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, args...))
}

// NewDecoder reads the header of a checkpoint of size bytes from r.
func NewDecoder(r io.Reader, size int64) (*Decoder, error) {
	if size < int64(header)+1+16 {
		return nil, damaged("%d bytes, shorter than an empty checkpoint", size)
	}
	hr := &hashReader{r: r, h: xxhash.New(), left: size - 8}
	d := &Decoder{r: bufio.NewReaderSize(hr, 1<<20), hr: hr, src: r, colls: map[string]string{}}
	var hdr [header]byte
	if err := d.read(hdr[:]); err != nil {
		return nil, err
	}
	switch string(hdr[:len(magic)]) {
	case magic:
		d.hdr.Version = 2
	case magicV1:
		d.hdr.Version = 1
	default:
		return nil, damaged("not a checkpoint, or of a format this version does not read (magic %q)", hdr[:len(magic)])
	}
	d.hdr.Txn = txlog.Txn(binary.BigEndian.Uint64(hdr[len(magic)+16:]))
	copy(d.hdr.Log[:], hdr[len(magic):])
	return d, nil
}

// Header returns what the checkpoint says it is.
func (d *Decoder) Header() Header { return d.hdr }

// remaining is the number of bytes left before the checksum.
func (d *Decoder) remaining() int64 { return d.hr.left + int64(d.r.Buffered()) }

func (d *Decoder) read(p []byte) error {
	if _, err := io.ReadFull(d.r, p); err != nil {
		return damaged("cut short: %v", err)
	}
	return nil
}

func (d *Decoder) uvarint() (uint64, error) {
	n, err := binary.ReadUvarint(d.r)
	if err != nil {
		return 0, damaged("cut short or a bad varint: %v", err)
	}
	return n, nil
}

// Docs reads the documents, handing them to add in ref order.
func (d *Decoder) Docs(add func(Doc)) error {
	if d.state != atDocs {
		return errors.New("checkpoint: Docs called twice")
	}
	var prev txlog.Ref
	for {
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if left := d.remaining(); n > uint64(left) {
			return damaged("a frame of %d bytes with %d left", n, left)
		}
		body := make([]byte, n)
		if err := d.read(body); err != nil {
			return err
		}
		doc, err := decodeDoc(body, d.colls)
		if err != nil {
			return damaged("document %d: %v", d.docs, err)
		}
		if d.docs > 0 && !refLess(prev, doc.Ref) {
			return damaged("document %s out of order", doc.Ref)
		}
		add(doc)
		prev = doc.Ref
		d.docs++
	}
	d.state = atSets
	if d.hdr.Version < 2 {
		return nil
	}
	var fp [8]byte
	if err := d.read(fp[:]); err != nil {
		return err
	}
	d.schema = binary.BigEndian.Uint64(fp[:])
	sets, err := d.uvarint()
	if err != nil {
		return err
	}
	if sets > uint64(d.remaining()) {
		return damaged("%d sets of entries in %d bytes", sets, d.remaining())
	}
	d.sets = int(sets)
	return nil
}

// Schema returns the fingerprint of the schema that made the index
// entries, and the number of sets; zero for a version 1 checkpoint, which
// has none. Call it after Docs.
func (d *Decoder) Schema() (fingerprint uint64, sets int) {
	return d.schema, d.sets
}

// NextSet starts the next set of index entries and returns how many it
// has; ok is false after the last one. Call it after Docs, once the
// previous set's entries are read.
func (d *Decoder) NextSet() (n int, ok bool, err error) {
	if d.state != atSets || d.left != 0 {
		return 0, false, errors.New("checkpoint: NextSet before the entries of the last set are read")
	}
	if d.sets == 0 {
		return 0, false, nil
	}
	c, err := d.uvarint()
	if err != nil {
		return 0, false, err
	}
	// An entry takes at least 5 bytes: that bounds what the caller may
	// allocate for it.
	if c > uint64(d.remaining()/5) {
		return 0, false, damaged("a set of %d entries in %d bytes", c, d.remaining())
	}
	d.sets--
	d.left = int(c)
	d.key = d.key[:0]
	return d.left, true, nil
}

// Entry reads the current set's next entry. key is valid until the next
// call. Entries come in strictly ascending key order, with
// terms <= values < len(key).
func (d *Decoder) Entry() (key []byte, terms, values int, err error) {
	if d.left <= 0 {
		return nil, 0, 0, errors.New("checkpoint: Entry past the end of the set")
	}
	shared, err := d.uvarint()
	if err != nil {
		return nil, 0, 0, err
	}
	n, err := d.uvarint()
	if err != nil {
		return nil, 0, 0, err
	}
	if shared > uint64(len(d.key)) || n == 0 || n > uint64(d.remaining()) {
		return nil, 0, 0, damaged("an entry sharing %d bytes of a key of %d, then %d more", shared, len(d.key), n)
	}
	s, old := int(shared), len(d.key)
	var was byte
	if s < old {
		was = d.key[s]
	}
	d.key = slices.Grow(d.key[:s], int(n))[:s+int(n)]
	if err := d.read(d.key[s:]); err != nil {
		return nil, 0, 0, err
	}
	// Ascending, and sharing all it can: the new key goes on past the old
	// one, or is above it where it stops sharing.
	if s < old && d.key[s] <= was {
		return nil, 0, 0, damaged("an entry out of order, or sharing less of the previous key than it could")
	}
	t, err := d.uvarint()
	if err != nil {
		return nil, 0, 0, err
	}
	v, err := d.uvarint()
	if err != nil {
		return nil, 0, 0, err
	}
	if t > v || v >= uint64(len(d.key)) {
		return nil, 0, 0, damaged("an entry of %d bytes with terms and values ending at %d and %d", len(d.key), t, v)
	}
	d.left--
	return d.key, int(t), int(v), nil
}

// Finish skips what is left of the index entries and verifies the
// trailer and the checksum.
func (d *Decoder) Finish() error {
	if d.state == atDocs {
		if err := d.Docs(func(Doc) {}); err != nil {
			return err
		}
	}
	if d.state != atSets {
		return errors.New("checkpoint: Finish called twice")
	}
	for {
		for d.left > 0 {
			if _, _, _, err := d.Entry(); err != nil {
				return err
			}
		}
		if d.sets == 0 {
			break
		}
		if _, _, err := d.NextSet(); err != nil {
			return err
		}
	}
	d.state = finished
	var count [8]byte
	if err := d.read(count[:]); err != nil {
		return err
	}
	if left := d.remaining(); left != 0 {
		return damaged("%d bytes after the end", left)
	}
	var sum [8]byte
	if _, err := io.ReadFull(d.src, sum[:]); err != nil {
		return damaged("no checksum: %v", err)
	}
	if got, want := d.hr.h.Sum64(), binary.BigEndian.Uint64(sum[:]); got != want {
		return damaged("checksum %016x, want %016x", got, want)
	}
	if n := binary.BigEndian.Uint64(count[:]); n != d.docs {
		return damaged("%d documents, the trailer says %d", d.docs, n)
	}
	return nil
}

// refLess orders refs as checkpoints store them: by collection, then ID.
func refLess(a, b txlog.Ref) bool {
	if a.Collection != b.Collection {
		return a.Collection < b.Collection
	}
	return a.ID < b.ID
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

// Encode writes docs, in ref order, and the index entries idx (none if
// nil) as the checkpoint of the log's state at txn on w. stop is polled
// every few thousand documents or entries; when it reports true the write
// is abandoned with ErrStopped.
func Encode(w io.Writer, log txlog.ID, txn txlog.Txn, docs iter.Seq[Doc], idx *Index, stop func() bool) error {
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
	if idx != nil && cw.err == nil {
		cw.Index(idx.Schema, len(idx.Sets))
		n := 0
		for _, set := range idx.Sets {
			cw.StartSet(set.Len)
			for e := range set.Entries {
				cw.AddEntry(e.Key, e.Terms, e.Values)
				if cw.err != nil {
					return cw.err
				}
				if n++; n%4096 == 0 && stop() {
					return ErrStopped
				}
			}
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
