package txlog

import (
	"fmt"
	"testing"
)

// Stage orders records and assigns txns without writing; Wait writes them.
// A record is invisible to readers until written, and one Wait writes every
// record staged before it, so stagers that wait later find theirs done.
func TestStageWait(t *testing.T) {
	l := openFile(t, t.TempDir(), FileOptions{})
	defer l.Close()
	var staged []Txn
	for i := range 5 {
		txn, err := l.Stage(testWrites(fmt.Sprint(i), 1))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && txn <= staged[i-1] {
			t.Fatalf("txn %d staged after %d", txn, staged[i-1])
		}
		staged = append(staged, txn)
	}
	if l.Head() != (Pos{}) || len(readAll(t, l, Cursor{Log: l.ID()})) != 0 {
		t.Fatal("staged records are visible before they are written")
	}
	if err := l.Wait(staged[3]); err != nil {
		t.Fatal(err)
	}
	if got := l.syncs.Load(); got != 1 {
		t.Fatalf("%d fsyncs for one wait, want 1", got)
	}
	// One write took everything staged, the fifth record included.
	if l.Head().Txn != staged[4] {
		t.Fatalf("head %d after the wait, want %d", l.Head().Txn, staged[4])
	}
	for _, s := range staged {
		if err := l.Wait(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.syncs.Load(); got != 1 {
		t.Fatalf("%d fsyncs after waiting for written records, want 1", got)
	}
	if n := len(readAll(t, l, Cursor{Log: l.ID()})); n != 5 {
		t.Fatalf("%d records, want 5", n)
	}
}

// A staged record nobody waits for is still written by Close.
func TestStagedWrittenOnClose(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, FileOptions{})
	txn, err := l.Stage(testWrites("a", 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openFile(t, dir, FileOptions{})
	defer l.Close()
	if l.Head() != (Pos{Txn: txn, Op: 1}) {
		t.Fatalf("head %+v after reopening, want the staged record's", l.Head())
	}
}

// Sync fsyncs what SyncNever only wrote.
func TestFileSync(t *testing.T) {
	l := openFile(t, t.TempDir(), FileOptions{Sync: SyncNever})
	defer l.Close()
	l.Append(testWrites("a", 1))
	if got := l.syncs.Load(); got != 0 {
		t.Fatalf("%d fsyncs under SyncNever", got)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := l.syncs.Load(); got != 1 {
		t.Fatalf("%d fsyncs after Sync, want 1", got)
	}
}

// KeepAfter holds retention back: segments with records after the floor
// stay whatever MaxBytes says, and go once the floor moves past them.
func TestFileKeepAfter(t *testing.T) {
	dir := t.TempDir()
	opt := FileOptions{SegmentSize: 1 << 10, MaxBytes: 4 << 10}
	l := openFile(t, dir, opt)
	defer l.Close()
	var txns []Txn
	appendN := func(n int) {
		for range n {
			txn, err := l.Append(testWrites(fmt.Sprint(len(txns)), 1))
			if err != nil {
				t.Fatal(err)
			}
			txns = append(txns, txn)
		}
	}
	appendN(10)
	floor := txns[9]
	l.KeepAfter(floor)
	appendN(200)
	if l.Oldest().Txn > floor {
		t.Fatalf("retention dropped up to %d, past the floor %d", l.Oldest().Txn, floor)
	}
	recs := readAll(t, l, Cursor{Log: l.ID(), Pos: AfterTxn(floor)})
	if len(recs) != 200 {
		t.Fatalf("%d records after the floor, want 200", len(recs))
	}
	// Moving the floor up lets retention go on when the next segment fills.
	l.KeepAfter(txns[200])
	appendN(100)
	if o := l.Oldest().Txn; o <= floor || o > txns[200] {
		t.Fatalf("oldest %d after raising the floor to %d (was %d)", o, txns[200], floor)
	}
}
