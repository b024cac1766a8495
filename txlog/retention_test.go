package txlog

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestMemoryRetentionByCount(t *testing.T) {
	l := NewMemory(MemoryOptions{MaxRecords: 5})
	defer l.Close()
	var txns []Txn
	for i := range 12 {
		txn, err := l.Append(testWrites(fmt.Sprint(i), 2))
		if err != nil {
			t.Fatal(err)
		}
		txns = append(txns, txn)
	}
	if want := (Pos{Txn: txns[6], Op: 1}); l.Oldest() != want {
		t.Fatalf("oldest %+v, want %+v", l.Oldest(), want)
	}
	recs := readAll(t, l, Cursor{Log: l.ID(), Pos: l.Oldest()})
	if len(recs) != 5 || recs[0].Txn != txns[7] {
		t.Fatalf("%d records from %d, want 5 from %d", len(recs), recs[0].Txn, txns[7])
	}
	// From just before the oldest: the end of txn 6's record was dropped,
	// so even its last write cannot be resumed after its first.
	for _, p := range []Pos{{}, {Txn: txns[6]}, {Txn: txns[2], Op: 1}} {
		if _, err := collect(l, Cursor{Log: l.ID(), Pos: p}); !errors.Is(err, ErrHistoryUnavailable) {
			t.Errorf("after %+v: %v, want ErrHistoryUnavailable", p, err)
		}
	}
	if _, err := collect(l, Cursor{Log: l.ID(), Pos: AfterTxn(txns[6])}); err != nil {
		t.Errorf("after the whole of the last dropped txn: %v", err)
	}
}

func TestMemoryRetentionByBytes(t *testing.T) {
	one := int64(encodedSize(testWrites("0", 1)))
	l := NewMemory(MemoryOptions{MaxBytes: 3*one + one/2})
	defer l.Close()
	for i := range 10 {
		if _, err := l.Append(testWrites(fmt.Sprint(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	recs := readAll(t, l, Cursor{Log: l.ID(), Pos: l.Oldest()})
	if len(recs) != 3 || recs[0].Writes[0].Ref.ID != "7-0" {
		t.Fatalf("kept %d records, want the last 3", len(recs))
	}
	// A record larger than the whole budget is still kept: it is the newest.
	if _, err := l.Append(testWrites("big", 10)); err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, l, Cursor{Log: l.ID(), Pos: l.Oldest()}); len(recs) != 1 || len(recs[0].Writes) != 10 {
		t.Fatalf("kept %d records after a large one, want just it", len(recs))
	}
}

func TestMemoryRetentionByAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewMemory(MemoryOptions{MaxAge: time.Minute})
		defer l.Close()
		first, _ := l.Append(testWrites("a", 1))
		time.Sleep(30 * time.Second)
		l.Append(testWrites("b", 1))
		time.Sleep(45 * time.Second) // "a" is now 75s old, "b" 45s
		third, _ := l.Append(testWrites("c", 1))
		if o := l.Oldest(); o != (Pos{Txn: first}) {
			t.Fatalf("oldest %+v, want the first record dropped (%d)", o, first)
		}
		time.Sleep(10 * time.Minute) // everything is old; the newest stays
		l.Append(testWrites("d", 1))
		recs := readAll(t, l, Cursor{Log: l.ID(), Pos: l.Oldest()})
		if len(recs) != 1 || recs[0].Writes[0].Ref.ID != "d-0" || l.Oldest().Txn != third {
			t.Fatalf("kept %d records, oldest %+v", len(recs), l.Oldest())
		}
	})
}

// A reader that retention overtakes between two batches is told so at the
// point where it was, never handed a gap.
func TestMemoryReaderOvertaken(t *testing.T) {
	l := NewMemory(MemoryOptions{MaxRecords: memReadBatch})
	defer l.Close()
	for i := range memReadBatch {
		l.Append(testWrites(fmt.Sprint(i), 1))
	}
	n := 0
	var err error
	for r, e := range l.Read(Cursor{Log: l.ID()}) {
		if e != nil {
			err = e
			break
		}
		if n > 0 && r.Writes[0].Ref.ID != fmt.Sprintf("%d-0", n) {
			t.Fatalf("record %d is %s: a gap", n, r.Writes[0].Ref.ID)
		}
		n++
		if n == 1 {
			// Push the whole next batch out while the reader holds this one.
			for i := range 2 * memReadBatch {
				l.Append(testWrites(fmt.Sprint("late", i), 1))
			}
		}
	}
	if !errors.Is(err, ErrHistoryUnavailable) || n != memReadBatch {
		t.Fatalf("read %d records then %v; want %d then ErrHistoryUnavailable", n, err, memReadBatch)
	}
}
