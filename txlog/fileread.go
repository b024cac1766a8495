package txlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"sort"
)

// readBufSize is a reader's buffer: large enough that a sequential read is
// a few big reads per segment, not one per record.
const readBufSize = 256 << 10

func newFrameReader(f io.ReaderAt, off, limit int64) *frameReader {
	src := &limitedReader{r: f, off: off, limit: limit}
	// A small segment, or the tail of a quiet log, needs no large buffer.
	size := int(min(readBufSize, max(limit-off, 4<<10)))
	return &frameReader{src: src, r: bufio.NewReaderSize(src, size), off: off, limit: limit}
}

// setLimit lets the reader go on to a new, larger limit.
func (fr *frameReader) setLimit(limit int64) {
	fr.limit, fr.src.limit = limit, limit
}

// limitedReader reads a file up to a limit that may grow. The buffer above
// it must never read past the limit: bytes beyond it may not be written
// yet, and an end of file met there would be kept and reported later.
type limitedReader struct {
	r          io.ReaderAt
	off, limit int64
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.off >= r.limit {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.limit-r.off)]
	n, err := r.r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// Read implements Log. Every frame it passes is verified, including those
// it skips to reach the cursor's position, and it checks that each segment
// ends where the next one says it does, so a segment cut short is reported
// rather than skipped. The records' images share buffers with the records
// read around them (16 KiB at most): one kept keeps its buffer alive, so
// a reader that keeps images long should copy them.
func (l *FileLog) Read(after Cursor) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			yield(Record{}, ErrClosed)
			return
		}
		if err := checkStart(after, l.id, l.oldest, l.head); err != nil {
			l.mu.Unlock()
			yield(Record{}, err)
			return
		}
		// The last segment whose base is at or below the position holds
		// the first record to yield, or the segment after it does.
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > after.Pos.Txn })
		seg := l.segs[max(i-1, 0)]
		l.mu.Unlock()

		var a decodeAlloc
		for seg != nil {
			var err error
			seg, err = l.readSegment(seg, after.Pos, &a, yield)
			if err != nil {
				yield(Record{}, err)
				return
			}
		}
	}
}

// readSegment yields the records of seg after pos and returns the segment
// to read next, nil at the head.
func (l *FileLog) readSegment(seg *segment, pos Pos, a *decodeAlloc, yield func(Record, error) bool) (*segment, error) {
	f, err := os.Open(filepath.Join(l.dir, seg.name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, l.overtaken()
	}
	if err != nil {
		return nil, fmt.Errorf("txlog: %w", err)
	}
	defer f.Close()

	limit, next, err := l.segmentState(seg)
	if err != nil {
		return nil, err
	}
	fr := newFrameReader(f, headerSize, limit)
	last := seg.prev
	for {
		off := fr.off
		payload, err := fr.next()
		if err == io.EOF {
			if next != nil {
				break
			}
			// At the visible end of the tail: look again, since appends
			// may have made more visible or rolled to a new segment.
			if limit, next, err = l.segmentState(seg); err != nil {
				return nil, err
			}
			if fr.limit == limit && next == nil {
				return nil, nil
			}
			fr.setLimit(limit)
			continue
		}
		if err != nil {
			return nil, &CorruptError{Segment: seg.name, Offset: off, Reason: err.Error()}
		}
		t, _ := payloadTxn(payload)
		if t != 0 && t < pos.Txn && t > last.Txn {
			// Entirely before the position: skip it without decoding.
			last = Pos{Txn: t}
			continue
		}
		rec, err := decodePayload(payload, last, seg.name, off, a)
		if err != nil {
			return nil, err
		}
		last = rec.Last()
		if last.Compare(pos) <= 0 {
			continue
		}
		if !yield(rec, nil) {
			return nil, nil
		}
	}
	if last.Txn != next.prev.Txn {
		// Retention may have removed the segments between: then this
		// reader was overtaken. Otherwise the segment was cut short.
		if oldest := l.Oldest(); last.Compare(oldest) < 0 {
			return nil, &overtakenError{oldest}
		}
		return nil, &CorruptError{Segment: seg.name, Offset: fr.off,
			Reason: fmt.Sprintf("segment ends at txn %d, but the next one starts after txn %d", last.Txn, next.prev.Txn)}
	}
	return next, nil
}

// segmentState returns how much of seg is visible and the segment after it
// (nil while seg is the tail).
func (l *FileLog) segmentState(seg *segment) (limit int64, next *segment, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, nil, ErrClosed
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > seg.base })
	if i < len(l.segs) {
		next = l.segs[i]
	}
	return seg.size, next, nil
}

// overtaken is the error of a reader whose segment retention removed.
func (l *FileLog) overtaken() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &overtakenError{l.oldest}
}

// restIsZero reports whether the file holds only zero bytes from off to
// size: the mark of a crash that extended the file without its data.
func restIsZero(f *os.File, off, size int64) (bool, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), readBufSize)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if !allZero(buf[:n]) {
			return false, nil
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}
