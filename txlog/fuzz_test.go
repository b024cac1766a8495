package txlog

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Seeds: records with creates, updates, deletes and odd strings.
func seedRecords() []Record {
	return []Record{
		{Txn: 1, Writes: testWrites("a", 1)},
		{Txn: 1700000000000000, Writes: []Write{
			{Ref: Ref{"spells", "1"}, Action: ActionUpdate, BeforeTxn: 1699999999999999, Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`)},
			{Ref: Ref{"spells", "ü\x00"}, Action: ActionDelete, BeforeTxn: 5, Before: []byte(`{}`)},
			{Ref: Ref{"c", "x"}, Action: ActionCreate, After: []byte{}},
			{Ref: Ref{"c", "y"}, Action: ActionRewrite, BeforeTxn: 3, After: []byte(`{"old":true}`)},
			{Ref: Ref{"c", "y"}, Action: ActionRewrite, BeforeTxn: 2},
		}},
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range seedRecords() {
		b := appendWrites(nil, r.Writes)
		putTxn(b, r.Txn)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add(make([]byte, 9))
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := DecodeRecord(payload)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeRecord: %v, not ErrCorrupt", err)
			}
			return
		}
		if err := r.validate(); err != nil {
			t.Fatalf("decoded a record Append would refuse: %v", err)
		}
		b := AppendRecord(nil, &r)
		again, err := DecodeRecord(b)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding does not round-trip: %v", err)
		}
	})
}

func FuzzParseCursor(f *testing.F) {
	f.Add(Cursor{}.String())
	f.Add(Cursor{Log: NewID(), Pos: Pos{Txn: 1700000000000000, Op: 2}}.String())
	f.Add("")
	f.Add("AQ==")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("error %v is not ErrInvalidCursor", err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("%q parses but encodes as %q", s, c.String())
		}
	})
}

// FuzzSegment opens a log whose only segment holds the fuzzed bytes. Opening
// and reading may fail, but only with ErrCorrupt, and what they accept must
// be a log that appends and reopens like any other.
func FuzzSegment(f *testing.F) {
	dir := f.TempDir()
	l, err := OpenFile(dir, FileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range seedRecords() {
		if _, err := l.Append(r.Writes); err != nil {
			f.Fatal(err)
		}
	}
	l.Close()
	seg, err := os.ReadFile(filepath.Join(dir, segName(0)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg)
	f.Add(seg[:headerSize])
	f.Add(seg[:len(seg)-3])
	f.Add(append(seg[:len(seg):len(seg)], make([]byte, 20)...))
	f.Add([]byte{})

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(0)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		opt := FileOptions{Logger: quiet, Sync: SyncNever}
		l, err := OpenFile(dir, opt)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v is not ErrCorrupt", err)
			}
			return
		}
		recs, err := collect(l, Cursor{Log: l.ID()})
		if err != nil {
			l.Close()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read: %v is not ErrCorrupt", err)
			}
			return
		}
		for i := 1; i < len(recs); i++ {
			if recs[i].Txn <= recs[i-1].Txn {
				t.Fatalf("txn %d after %d", recs[i].Txn, recs[i-1].Txn)
			}
		}
		txn, err := l.Append(testWrites("new", 1))
		if err != nil {
			t.Fatalf("append to a recovered log: %v", err)
		}
		if len(recs) > 0 && txn <= recs[len(recs)-1].Txn {
			t.Fatalf("new txn %d is not above %d", txn, recs[len(recs)-1].Txn)
		}
		l.Close()
		l, err = OpenFile(dir, opt)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l.Close()
		again, err := collect(l, Cursor{Log: l.ID()})
		if err != nil || len(again) != len(recs)+1 || again[len(recs)].Txn != txn {
			t.Fatalf("reopen read %d records (%v), want %d", len(again), err, len(recs)+1)
		}
	})
}
