package txlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const corruptSegmentSize = 600

// corruptLog builds a small closed log of 2-3 segments with records of
// varied sizes and kinds, and returns its directory, its records, and its
// segment files' names (in order) and contents.
func corruptLog(t *testing.T) (dir string, recs []Record, names []string, files map[string][]byte) {
	t.Helper()
	dir = t.TempDir()
	l, err := OpenFile(dir, FileOptions{SegmentSize: corruptSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	img := func(n int) []byte { return fmt.Appendf(nil, `{"v":%q}`, strings.Repeat("q", n)) }
	var prev Txn
	for i, size := range []int{3, 90, 20, 160, 1, 60, 120, 8} {
		ws := testWrites(fmt.Sprint(i), 1+i%3)
		ws[0].After = img(size)
		if i%4 == 3 && prev != 0 { // an update and a delete of a document written before
			ref := Ref{Collection: "spells", ID: "u"}
			ws = append(ws,
				Write{Ref: ref, Action: ActionUpdate, BeforeTxn: prev, Before: img(size / 2), After: img(size / 3)},
				Write{Ref: ref, Action: ActionDelete, BeforeTxn: prev, Before: img(7)})
		}
		if prev, err = l.Append(ws); err != nil {
			t.Fatal(err)
		}
	}
	recs = readAll(t, l, Cursor{Log: l.ID()})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, recs, segmentNames(t, dir), readSegments(t, dir)
}

func segmentNames(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	slices.Sort(names)
	return names
}

func readSegments(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range segmentNames(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

// restoreSegments puts the segment files back as they were: the contents of
// files, and no other segment.
func restoreSegments(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for _, name := range segmentNames(t, dir) {
		if _, ok := files[name]; !ok {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// frameStarts returns the offsets of the frames of a segment file.
func frameStarts(t *testing.T, b []byte) []int64 {
	t.Helper()
	var offs []int64
	for off := int64(headerSize); off < int64(len(b)); {
		offs = append(offs, off)
		off += frameHdrSize + int64(binary.LittleEndian.Uint32(b[off:]))
		if off > int64(len(b)) {
			t.Fatalf("frames overrun the file at %d", off)
		}
	}
	return offs
}

// openAndRead opens the log in dir and reads all of it. It reports on which
// step an error came, and turns a panic into an error.
func openAndRead(dir string, opt FileOptions) (recs []Record, step string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	l, err := OpenFile(dir, opt)
	if err != nil {
		return nil, "open", err
	}
	defer l.Close()
	recs, err = collect(l, Cursor{Log: l.ID()})
	return recs, "read", err
}

func sameRecords(got, want []Record) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		if a, b := appendWrites(nil, got[i].Writes), appendWrites(nil, want[i].Writes); got[i].Txn != want[i].Txn || !bytes.Equal(a, b) {
			return fmt.Errorf("record %d differs: txn %d, want %d", i, got[i].Txn, want[i].Txn)
		}
	}
	return nil
}

var quietLogger = slog.New(slog.DiscardHandler)

// TestCorruptionDetected damages a small closed log of 2-3 segments in
// every way a disk or an operator can and checks what opening and reading it
// does:
//   - each byte of each segment flipped (^0xFF, then ^0x01), one at a time:
//     a *CorruptError that names the segment and the damaged header or
//     frame, on open or on read; never success, fewer records or a panic;
//   - a segment deleted from the middle, or a segment before the last cut
//     short (at each frame boundary, and inside headers and frames):
//     ErrCorrupt, not a silent gap;
//   - the last segment ending in a prefix of a valid frame or in zeros, as
//     a crash leaves it: truncated on open, every earlier record intact, and
//     appends work after.
func TestCorruptionDetected(t *testing.T) {
	t.Run("flips", func(t *testing.T) {
		dir, recs, names, files := corruptLog(t)
		if len(names) < 2 || len(names) > 3 {
			t.Fatalf("the test log has %d segments, want 2 or 3", len(names))
		}
		opt := FileOptions{SegmentSize: corruptSegmentSize, Logger: quietLogger}
		for _, mask := range []byte{0xFF, 0x01} {
			flipped, onOpen, onRead := 0, 0, 0
			for _, name := range names {
				orig := files[name]
				starts := frameStarts(t, orig)
				path := filepath.Join(dir, name)
				// Flip in place: rewriting whole files costs ten times more.
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				for off := range orig {
					if _, err := f.WriteAt([]byte{orig[off] ^ mask}, int64(off)); err != nil {
						f.Close()
						t.Fatal(err)
					}
					got, step, err := openAndRead(dir, opt)
					flipped++
					// The damage is reported at the start of the frame that holds
					// the byte, or at 0 for the segment header.
					want := int64(0)
					for _, s := range starts {
						if s <= int64(off) {
							want = s
						}
					}
					var ce *CorruptError
					switch {
					case err == nil:
						t.Errorf("%s byte %d ^%#x: not detected, %d records read (want %d)", name, off, mask, len(got), len(recs))
					case !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt):
						t.Errorf("%s byte %d ^%#x: %s: %v, want a *CorruptError", name, off, mask, step, err)
					case ce.Segment != name || ce.Offset != want:
						t.Errorf("%s byte %d ^%#x: %s: %v, want segment %s at offset %d", name, off, mask, step, err, name, want)
					case step == "open":
						onOpen++
					default:
						onRead++
					}
					if _, err := f.WriteAt(orig[off:off+1], int64(off)); err != nil {
						f.Close()
						t.Fatal(err)
					}
					// Opening must not have repaired anything: that would
					// be damage mistaken for a crash.
					if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(orig)) {
						t.Errorf("%s byte %d ^%#x: opening changed the log's files", name, off, mask)
						restoreSegments(t, dir, files)
					}
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(segmentNames(t, dir), names) {
					t.Fatalf("flips in %s made opening add or remove segments", name)
				}
			}
			t.Logf("mask %#02x: %d bytes flipped in %d segments, %d detected on open, %d on read", mask, flipped, len(names), onOpen, onRead)
			if onOpen+onRead != flipped {
				t.Fatalf("mask %#02x: %d of %d flips detected", mask, onOpen+onRead, flipped)
			}
		}
		// The log is whole again.
		got, _, err := openAndRead(dir, opt)
		if err == nil {
			err = sameRecords(got, recs)
		}
		if err != nil {
			t.Fatalf("after restoring every byte: %v", err)
		}
	})
	t.Run("missing or short segment", func(t *testing.T) {
		dir, _, names, files := corruptLog(t)
		opt := FileOptions{SegmentSize: corruptSegmentSize, Logger: quietLogger}
		if len(names) < 3 {
			t.Fatalf("the test log has %d segments, want 3 to delete the middle one", len(names))
		}
		check := func(what string) (step string) {
			t.Helper()
			got, step, err := openAndRead(dir, opt)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: %s: %v (%d records), want ErrCorrupt", what, step, err, len(got))
			}
			restoreSegments(t, dir, files)
			return step
		}

		for _, name := range names[1 : len(names)-1] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			step := check("without " + name)
			t.Logf("segment %s deleted: detected on %s", name, step)
		}

		// Every segment but the last, cut at each frame boundary, and inside
		// its header and inside each frame's header and payload.
		cuts, atBoundary, onOpen := 0, 0, 0
		for _, name := range names[:len(names)-1] {
			orig := files[name]
			boundaries := frameStarts(t, orig)
			lengths := []int64{0, 1, headerSize / 2, headerSize - 1}
			for _, b := range boundaries {
				lengths = append(lengths, b, b+1, b+frameHdrSize, b+frameHdrSize+1)
			}
			for _, n := range lengths {
				if n >= int64(len(orig)) {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, name), orig[:n], 0o644); err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("%s cut to %d of %d bytes", name, n, len(orig))
				if slices.Contains(boundaries, n) {
					what += " (a frame boundary)"
					atBoundary++
				}
				if check(what) == "open" {
					onOpen++
				}
				cuts++
			}
		}
		t.Logf("%d cuts of segments before the last (%d at frame boundaries): %d detected on open, %d on read", cuts, atBoundary, onOpen, cuts-onOpen)
	})
	t.Run("torn tail", func(t *testing.T) {
		dir, recs, names, files := corruptLog(t)
		last := names[len(names)-1]
		path := filepath.Join(dir, last)

		// The frame the next append would have written.
		payload := appendWrites(nil, testWrites("torn", 2))
		putTxn(payload, recs[len(recs)-1].Txn+1)
		frame := appendFrame(nil, payload)

		// Prefixes cut inside the frame header, at its end, inside the
		// payload; zero runs shorter and longer than a frame header.
		var tails [][]byte
		prefixes := []int{1, 4, 11, 12, frameHdrSize - 1, frameHdrSize, frameHdrSize + 1, frameHdrSize + 8, len(frame) / 2, len(frame) - 1}
		for _, n := range prefixes {
			tails = append(tails, frame[:n])
		}
		for _, n := range []int{1, frameHdrSize - 1, frameHdrSize, frameHdrSize + 1, 100, 5000} {
			tails = append(tails, make([]byte, n))
		}
		for _, tail := range tails {
			kind := fmt.Sprintf("%d bytes of a frame", len(tail))
			if allZero(tail) {
				kind = fmt.Sprintf("%d zero bytes", len(tail))
			}
			if err := os.WriteFile(path, append(slices.Clone(files[last]), tail...), 0o644); err != nil {
				t.Fatal(err)
			}
			var logBuf bytes.Buffer
			opt := FileOptions{SegmentSize: corruptSegmentSize, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}
			l, err := OpenFile(dir, opt)
			if err != nil {
				t.Fatalf("%s: open: %v", kind, err)
			}
			got, err := collect(l, Cursor{Log: l.ID()})
			if err == nil {
				err = sameRecords(got, recs)
			}
			if n, torn := tornWarnings(logBuf.String()); err == nil && (n != 1 || torn != len(tail)) {
				err = fmt.Errorf("%d warnings of %d torn bytes, want 1 of %d", n, torn, len(tail))
			}
			if fi, serr := os.Stat(path); err == nil && (serr != nil || fi.Size() != int64(len(files[last]))) {
				err = fmt.Errorf("last segment not truncated to its %d bytes: %v, %v", len(files[last]), fi.Size(), serr)
			}
			var txn Txn
			if err == nil {
				txn, err = l.Append(testWrites("after", 1))
			}
			if cerr := l.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			// Reopened, the log holds the old records and the new one, and
			// needs no repair.
			logBuf.Reset()
			got, _, err = openAndRead(dir, opt)
			if err == nil {
				err = sameRecords(got[:min(len(got), len(recs))], recs)
			}
			if err == nil && (len(got) != len(recs)+1 || got[len(recs)].Txn != txn || got[len(recs)].Writes[0].Ref.ID != "after-0") {
				err = fmt.Errorf("%d records, the last not the one appended after recovery", len(got))
			}
			if err == nil && logBuf.Len() > 0 {
				err = fmt.Errorf("the second open repaired again: %s", logBuf.String())
			}
			if err != nil {
				t.Fatalf("%s: reopened: %v", kind, err)
			}
			restoreSegments(t, dir, files)
		}
		t.Logf("%d torn tails truncated (%d prefixes of a %d-byte frame, %d zero runs)", len(tails), len(prefixes), len(frame), len(tails)-len(prefixes))
	})
}
