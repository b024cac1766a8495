package txlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// recover reads the directory: it checks every segment header, scans the
// last segment to find the head, truncates a torn tail, and opens the last
// segment for appending.
func (l *FileLog) recover() error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("txlog: %w", err)
	}
	var names []string
	for _, e := range entries {
		if _, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)

	var headers []segHeader
	for i, name := range names {
		h, err := l.readHeader(name)
		if errors.Is(err, errTorn) && i == len(names)-1 {
			// A crash while a new segment was being created: it holds no
			// record, so it is removed and the previous one is the tail.
			l.opt.Logger.Warn("txlog: removing a segment whose creation a crash interrupted", "dir", l.dir, "segment", name)
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("txlog: %w", err)
			}
			names = names[:i]
			break
		}
		if errors.Is(err, errTorn) {
			return &CorruptError{Segment: name, Offset: 0, Reason: "header cut short, and later segments exist"}
		}
		if err != nil {
			return err
		}
		if err := checkHeader(h, name, headers); err != nil {
			return err
		}
		headers = append(headers, h)
	}

	if len(names) == 0 {
		l.id = NewID()
		f, err := l.createSegment(segHeader{id: l.id})
		if err != nil {
			return fmt.Errorf("txlog: %w", err)
		}
		l.active = f
		l.segs = []*segment{{name: segName(0), size: headerSize}}
		l.tailSeg, l.tailSize = l.segs[0], headerSize
		return nil
	}

	l.id = headers[0].id
	for i, name := range names {
		s := &segment{name: name, base: headers[i].base, prev: headers[i].prev, last: headers[i].prev}
		if i+1 < len(names) {
			s.last = headers[i+1].prev
			fi, err := os.Stat(filepath.Join(l.dir, name))
			if err != nil {
				return fmt.Errorf("txlog: %w", err)
			}
			s.size = fi.Size()
		}
		l.segs = append(l.segs, s)
	}
	tail := l.segs[len(l.segs)-1]
	if err := l.scanTail(tail); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(l.dir, tail.name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("txlog: %w", err)
	}
	l.active = f
	l.oldest = l.segs[0].prev
	l.head = tail.last
	l.tailSeg, l.tailSize = tail, tail.size
	l.tailPos = tail.last
	// A tail segment that a crash left empty right after a roll has a base
	// above the head; its records must not fall below that base.
	l.clock.Observe(max(l.head.Txn, tail.base))
	return nil
}

// checkHeader checks a header against its file name, the log's identity
// and the headers before it.
func checkHeader(h segHeader, name string, before []segHeader) error {
	bad := func(reason string) error { return &CorruptError{Segment: name, Offset: 0, Reason: reason} }
	if base, _ := parseSegName(name); base != h.base {
		return bad(fmt.Sprintf("header says base %d, the name %d", h.base, base))
	}
	if len(before) == 0 {
		return nil
	}
	p := before[len(before)-1]
	switch {
	case h.id != p.id:
		return bad(fmt.Sprintf("belongs to log %s, the segments before it to log %s", h.id, p.id))
	case h.prev.Compare(p.prev) <= 0 || h.prev.Txn < p.base:
		return bad("previous position does not follow the segment before it")
	}
	return nil
}

// readHeader reads and checks a segment's header. A header that is short or
// all zeros is errTorn: a crash while the segment was created.
func (l *FileLog) readHeader(name string) (segHeader, error) {
	f, err := os.Open(filepath.Join(l.dir, name))
	if err != nil {
		return segHeader{}, fmt.Errorf("txlog: %w", err)
	}
	defer f.Close()
	b := make([]byte, headerSize)
	n, err := f.ReadAt(b, 0)
	if n < headerSize || allZero(b) {
		if rest, _ := f.Stat(); n == headerSize && rest != nil && rest.Size() > headerSize {
			// Zeros followed by data is damage, not a torn creation.
			return segHeader{}, &CorruptError{Segment: name, Offset: 0, Reason: "header is all zeros"}
		}
		return segHeader{}, errTorn
	}
	if err != nil {
		return segHeader{}, fmt.Errorf("txlog: %w", err)
	}
	h, err := unmarshalHeader(b)
	if err != nil {
		return segHeader{}, &CorruptError{Segment: name, Offset: 0, Reason: err.Error()}
	}
	return h, nil
}

// scanTail verifies every frame of the tail segment, sets its size and last
// position, and truncates a torn final frame.
func (l *FileLog) scanTail(s *segment) error {
	path := filepath.Join(l.dir, s.name)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("txlog: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("txlog: %w", err)
	}
	fr := newFrameReader(f, headerSize, fi.Size())
	for {
		off := fr.off
		payload, err := fr.next()
		if err == io.EOF {
			s.size = off
			return nil
		}
		torn := errors.Is(err, errTorn)
		if errors.Is(err, errZeros) {
			torn, err = restIsZero(f, off, fi.Size())
			if err == nil && !torn {
				err = errors.New("frame header check mismatch")
			}
		}
		if torn {
			l.opt.Logger.Warn("txlog: truncating a record torn by a crash", "dir", l.dir, "segment", s.name,
				"offset", off, "bytes", fi.Size()-off)
			if err := truncateSync(path, off); err != nil {
				return fmt.Errorf("txlog: %w", err)
			}
			s.size = off
			return nil
		}
		if err != nil {
			return &CorruptError{Segment: s.name, Offset: off, Reason: err.Error()}
		}
		rec, err := decodePayload(payload, s.last, s.name, off, nil)
		if err != nil {
			return err
		}
		if rec.Txn < s.base {
			return &CorruptError{Segment: s.name, Offset: off, Reason: fmt.Sprintf("txn %d is below the segment's base %d", rec.Txn, s.base)}
		}
		s.last = rec.Last()
	}
}
