package txlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFileReopen(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, FileOptions{SegmentSize: 1 << 10})
	id := l.ID()
	for i := range 40 {
		if _, err := l.Append(testWrites(fmt.Sprint(i), 2)); err != nil {
			t.Fatal(err)
		}
	}
	before := readAll(t, l, Cursor{Log: id})
	head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments; the test wants several", n)
	}

	// Reopen with a clock an hour behind: the txns still go up.
	past := func() time.Time { return time.Now().Add(-time.Hour) }
	l = openFile(t, dir, FileOptions{SegmentSize: 1 << 10, Now: past})
	defer l.Close()
	if l.ID() != id || l.Head() != head {
		t.Fatalf("reopened as %s at %+v, want %s at %+v", l.ID(), l.Head(), id, head)
	}
	after := readAll(t, l, Cursor{Log: id})
	if len(after) != len(before) {
		t.Fatalf("%d records after reopening, %d before", len(after), len(before))
	}
	for i := range before {
		if after[i].Txn != before[i].Txn || string(after[i].Writes[1].After) != string(before[i].Writes[1].After) {
			t.Fatalf("record %d differs after reopening", i)
		}
	}
	txn, err := l.Append(testWrites("new", 1))
	if err != nil || txn <= head.Txn {
		t.Fatalf("append after reopening: txn %d (head %d), %v", txn, head.Txn, err)
	}
}

func TestFileLocked(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, FileOptions{})
	if _, err := OpenFile(dir, FileOptions{}); err == nil {
		t.Fatal("a second open of the same directory succeeded")
	}
	l.Close()
	openFile(t, dir, FileOptions{}).Close()
}

func TestFileRetentionByBytes(t *testing.T) {
	dir := t.TempDir()
	opt := FileOptions{SegmentSize: 1 << 10, MaxBytes: 4 << 10}
	l := openFile(t, dir, opt)
	var txns []Txn
	for i := range 100 {
		txn, err := l.Append(testWrites(fmt.Sprint(i), 1))
		if err != nil {
			t.Fatal(err)
		}
		txns = append(txns, txn)
	}
	var total int64
	for _, f := range segmentFiles(t, dir) {
		fi, _ := os.Stat(f)
		total += fi.Size()
	}
	if total > opt.MaxBytes+opt.SegmentSize {
		t.Fatalf("%d bytes kept, over the %d allowed plus a segment", total, opt.MaxBytes)
	}
	oldest := l.Oldest()
	if oldest.Txn == 0 {
		t.Fatal("nothing dropped")
	}
	recs := readAll(t, l, Cursor{Log: l.ID(), Pos: oldest})
	if recs[0].Txn <= oldest.Txn || recs[len(recs)-1].Txn != txns[99] {
		t.Fatalf("records after the oldest run %d..%d", recs[0].Txn, recs[len(recs)-1].Txn)
	}
	i := 0
	for txns[i] != recs[0].Txn {
		i++
	}
	if txns[i-1] != oldest.Txn || len(recs) != 100-i {
		t.Fatalf("the oldest %d is not the record just before the first retained", oldest.Txn)
	}
	if _, err := collect(l, Cursor{Log: l.ID(), Pos: Pos{Txn: txns[0]}}); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("read from a dropped position: %v", err)
	}
	l.Close()

	// The bounds survive a restart.
	l = openFile(t, dir, opt)
	defer l.Close()
	if l.Oldest() != oldest || len(readAll(t, l, Cursor{Log: l.ID(), Pos: oldest})) != len(recs) {
		t.Fatalf("after reopening: oldest %+v, want %+v", l.Oldest(), oldest)
	}
}

func TestFileRetentionByAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		// A segment per record, so that age decides record by record.
		l := openFile(t, dir, FileOptions{SegmentSize: 1, MaxAge: time.Hour})
		defer l.Close()
		for i := range 20 {
			l.Append(testWrites(fmt.Sprint(i), 1))
		}
		segs := len(segmentFiles(t, dir))
		time.Sleep(2 * time.Hour)
		for i := range 5 {
			l.Append(testWrites(fmt.Sprint("late", i), 1))
		}
		recs := readAll(t, l, Cursor{Log: l.ID(), Pos: l.Oldest()})
		if now := len(segmentFiles(t, dir)); segs != 20 || now != 5 || len(recs) != 5 || recs[0].Writes[0].Ref.ID != "late0-0" {
			t.Fatalf("%d segments before, %d after; first retained %s", segs, now, recs[0].Writes[0].Ref.ID)
		}
	})
}

// A reader overtaken by retention either finishes the segment it has open
// or stops with ErrHistoryUnavailable: it never skips records.
func TestFileReaderOvertaken(t *testing.T) {
	l := openFile(t, t.TempDir(), FileOptions{SegmentSize: 512, MaxBytes: 2 << 10})
	defer l.Close()
	var order []string // ids in append order
	add := func(tag string) {
		if _, err := l.Append(testWrites(tag, 1)); err != nil {
			t.Fatal(err)
		}
		order = append(order, tag+"-0")
	}
	for i := range 20 {
		add(fmt.Sprint(i))
	}
	var err error
	next := -1 // index in order of the record expected next
	for r, e := range l.Read(Cursor{Log: l.ID(), Pos: l.Oldest()}) {
		if e != nil {
			err = e
			break
		}
		id := r.Writes[0].Ref.ID
		if next < 0 {
			for next = 0; order[next] != id; next++ {
			}
			for i := range 100 {
				add(fmt.Sprint("late", i))
			}
		} else if id != order[next] {
			t.Fatalf("read %s where %s comes next: a gap", id, order[next])
		}
		next++
	}
	if !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("read up to %d, then %v; want ErrHistoryUnavailable", next, err)
	}
}

func TestFileSyncPolicies(t *testing.T) {
	t.Run("batch", func(t *testing.T) {
		l := openFile(t, t.TempDir(), FileOptions{})
		defer l.Close()
		for i := range 5 {
			l.Append(testWrites(fmt.Sprint(i), 1))
			if got := l.syncs.Load(); got != int64(i+1) {
				t.Fatalf("%d fsyncs after %d sequential appends", got, i+1)
			}
		}
	})
	t.Run("never", func(t *testing.T) {
		l := openFile(t, t.TempDir(), FileOptions{Sync: SyncNever})
		for i := range 5 {
			l.Append(testWrites(fmt.Sprint(i), 1))
		}
		if got := l.syncs.Load(); got != 0 {
			t.Fatalf("%d fsyncs under SyncNever", got)
		}
		l.Close()
		if got := l.syncs.Load(); got != 1 {
			t.Fatalf("%d fsyncs on Close, want 1", got)
		}
	})
	t.Run("interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := openFile(t, t.TempDir(), FileOptions{Sync: SyncInterval, SyncInterval: time.Second})
			defer l.Close()
			l.Append(testWrites("a", 1))
			l.Append(testWrites("b", 1))
			if got := l.syncs.Load(); got != 0 {
				t.Fatalf("%d fsyncs before the interval", got)
			}
			time.Sleep(time.Second + time.Millisecond)
			synctest.Wait()
			if got := l.syncs.Load(); got != 1 {
				t.Fatalf("%d fsyncs after one interval, want 1", got)
			}
		})
	})
}

// Concurrent appends share fsyncs.
func TestGroupCommit(t *testing.T) {
	l := openFile(t, t.TempDir(), FileOptions{})
	defer l.Close()
	const committers, each = 32, 10
	var wg sync.WaitGroup
	for c := range committers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(testWrites(fmt.Sprint(c, ".", i), 1)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	syncs := l.syncs.Load()
	t.Logf("%d appends, %d fsyncs", committers*each, syncs)
	if syncs >= committers*each {
		t.Fatalf("%d fsyncs for %d concurrent appends: no group commit", syncs, committers*each)
	}
	if n := len(readAll(t, l, Cursor{Log: l.ID()})); n != committers*each {
		t.Fatalf("%d records, want %d", n, committers*each)
	}
}
