package txlog

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// appendLog is a Log with the Append of both logs, which these tests use.
type appendLog interface {
	Log
	Append(ws []Write) (Txn, error)
}

// The same contract, checked against every Log.
var logKinds = []struct {
	name string
	open func(t *testing.T) appendLog
}{
	{"memory", func(t *testing.T) appendLog { return NewMemory(MemoryOptions{}) }},
	{"file", func(t *testing.T) appendLog {
		l, err := OpenFile(t.TempDir(), FileOptions{SegmentSize: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}},
}

func forEachLog(t *testing.T, f func(t *testing.T, l appendLog)) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) {
			l := k.open(t)
			defer l.Close()
			f(t, l)
		})
	}
}

func TestAppendRead(t *testing.T) {
	forEachLog(t, func(t *testing.T, l appendLog) {
		var txns []Txn
		for i := range 50 {
			txn, err := l.Append(testWrites(fmt.Sprint(i), 1+i%3))
			if err != nil {
				t.Fatal(err)
			}
			if len(txns) > 0 && txn <= txns[len(txns)-1] {
				t.Fatalf("txn %d after %d", txn, txns[len(txns)-1])
			}
			txns = append(txns, txn)
		}
		recs := readAll(t, l, Cursor{Log: l.ID()})
		if len(recs) != 50 {
			t.Fatalf("read %d records, want 50", len(recs))
		}
		for i, r := range recs {
			if r.Txn != txns[i] || len(r.Writes) != 1+i%3 || r.Writes[0].Ref.ID != fmt.Sprintf("%d-0", i) {
				t.Fatalf("record %d: txn %d, %d writes, first %v", i, r.Txn, len(r.Writes), r.Writes[0].Ref)
			}
			want := fmt.Sprintf(`{"tag":"%d","op":0}`, i)
			if string(r.Writes[0].After) != want {
				t.Fatalf("record %d: after %s, want %s", i, r.Writes[0].After, want)
			}
		}
		if h := l.Head(); h != recs[49].Last() {
			t.Fatalf("head %+v, want %+v", h, recs[49].Last())
		}
		if o := l.Oldest(); o != (Pos{}) {
			t.Fatalf("oldest %+v of a log that dropped nothing", o)
		}
	})
}

func TestReadFromPositions(t *testing.T) {
	forEachLog(t, func(t *testing.T, l appendLog) {
		var txns []Txn
		for i := range 10 {
			txn, err := l.Append(testWrites(fmt.Sprint(i), 3))
			if err != nil {
				t.Fatal(err)
			}
			txns = append(txns, txn)
		}
		cases := []struct {
			pos       Pos
			firstTxn  Txn
			firstOp   int
			nrecs     int
			nextWrite string
		}{
			{Pos{}, txns[0], 0, 10, "0-0"},
			{Pos{Txn: txns[4], Op: 0}, txns[4], 1, 6, "4-1"},
			{Pos{Txn: txns[4], Op: 2}, txns[5], 0, 5, "5-0"},
			{AfterTxn(txns[4]), txns[5], 0, 5, "5-0"},
			{AfterTxn(txns[5] - 1), txns[5], 0, 5, "5-0"}, // between two txns, where they differ by more than 1
			{Pos{Txn: txns[9], Op: 1}, txns[9], 2, 1, "9-2"},
			{AfterTxn(txns[9]), 0, 0, 0, ""},
		}
		for _, c := range cases {
			recs := readAll(t, l, Cursor{Log: l.ID(), Pos: c.pos})
			if len(recs) != c.nrecs {
				t.Fatalf("after %+v: %d records, want %d", c.pos, len(recs), c.nrecs)
			}
			if c.nrecs == 0 {
				continue
			}
			ws, op := recs[0].After(c.pos)
			if recs[0].Txn != c.firstTxn || op != c.firstOp || ws[0].Ref.ID != c.nextWrite {
				t.Fatalf("after %+v: first txn %d op %d write %s, want %d %d %s",
					c.pos, recs[0].Txn, op, ws[0].Ref.ID, c.firstTxn, c.firstOp, c.nextWrite)
			}
		}
	})
}

func TestHistoryUnavailable(t *testing.T) {
	forEachLog(t, func(t *testing.T, l appendLog) {
		txn, err := l.Append(testWrites("a", 1))
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]Cursor{
			"another log":     {Log: NewID()},
			"beyond the head": {Log: l.ID(), Pos: Pos{Txn: txn + 1}},
		} {
			_, err := collect(l, c)
			if !errors.Is(err, ErrHistoryUnavailable) {
				t.Errorf("%s: %v, want ErrHistoryUnavailable", name, err)
			}
		}
	})
}

func TestInvalidRecords(t *testing.T) {
	ok := testWrites("x", 1)[0]
	bad := map[string][]Write{
		"no writes":           nil,
		"no action":           {{Ref: ok.Ref, After: ok.After}},
		"unknown action":      {{Ref: ok.Ref, Action: 9, After: ok.After}},
		"no id":               {{Ref: Ref{Collection: "c"}, Action: ActionCreate, After: ok.After}},
		"create with before":  {{Ref: ok.Ref, Action: ActionCreate, Before: ok.After, BeforeTxn: 1, After: ok.After}},
		"delete with after":   {{Ref: ok.Ref, Action: ActionDelete, Before: ok.After, BeforeTxn: 1, After: ok.After}},
		"update, no before":   {{Ref: ok.Ref, Action: ActionUpdate, After: ok.After}},
		"before without ts":   {{Ref: ok.Ref, Action: ActionUpdate, Before: ok.After, After: ok.After}},
		"rewrite, no ts":      {{Ref: ok.Ref, Action: ActionRewrite, After: ok.After}},
		"rewrite with before": {{Ref: ok.Ref, Action: ActionRewrite, BeforeTxn: 1, Before: ok.After}},
	}
	forEachLog(t, func(t *testing.T, l appendLog) {
		for name, ws := range bad {
			if _, err := l.Append(ws); !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("%s: %v, want ErrInvalidRecord", name, err)
			}
		}
		if h := l.Head(); h != (Pos{}) {
			t.Fatalf("head %+v after only invalid appends", h)
		}
	})
}

func TestClosed(t *testing.T) {
	forEachLog(t, func(t *testing.T, l appendLog) {
		if _, err := l.Append(testWrites("a", 1)); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(testWrites("b", 1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("append after close: %v", err)
		}
		if _, err := collect(l, Cursor{Log: l.ID()}); !errors.Is(err, ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	})
}

// TestConcurrentAppendRead runs appenders and readers at once: txns must be
// strictly increasing in read order, every append must be read exactly
// once, and a reader never sees a gap.
func TestConcurrentAppendRead(t *testing.T) {
	forEachLog(t, func(t *testing.T, l appendLog) {
		const appenders, each = 8, 100
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := map[Txn]string{}
		for a := range appenders {
			wg.Go(func() {
				for i := range each {
					tag := fmt.Sprintf("%d.%d", a, i)
					txn, err := l.Append(testWrites(tag, 2))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked[txn] = tag
					mu.Unlock()
				}
			})
		}
		// A reader that follows the log while it grows.
		stop := make(chan struct{})
		readerDone := make(chan error)
		go func() {
			pos := Pos{}
			for {
				select {
				case <-stop:
					readerDone <- nil
					return
				default:
				}
				for r, err := range l.Read(Cursor{Log: l.ID(), Pos: pos}) {
					if err != nil {
						readerDone <- err
						return
					}
					if r.Txn <= pos.Txn {
						readerDone <- fmt.Errorf("txn %d after %d", r.Txn, pos.Txn)
						return
					}
					pos = r.Last()
				}
			}
		}()
		wg.Wait()
		close(stop)
		if err := <-readerDone; err != nil {
			t.Fatal(err)
		}
		recs := readAll(t, l, Cursor{Log: l.ID()})
		if len(recs) != appenders*each {
			t.Fatalf("%d records, want %d", len(recs), appenders*each)
		}
		for i, r := range recs {
			if i > 0 && r.Txn <= recs[i-1].Txn {
				t.Fatalf("txn %d after %d", r.Txn, recs[i-1].Txn)
			}
			tag, ok := acked[r.Txn]
			if !ok || r.Writes[1].Ref.ID != tag+"-1" {
				t.Fatalf("record %d (txn %d, %s) is not the one acknowledged (%q)", i, r.Txn, r.Writes[1].Ref.ID, tag)
			}
		}
	})
}

func TestClockStrictlyIncreasing(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base
	c := NewClock(func() time.Time { return now })
	var got []Txn
	for _, step := range []time.Duration{0, 0, time.Second, -time.Hour, 0, 2 * time.Hour, -time.Minute} {
		now = now.Add(step)
		got = append(got, c.Next())
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("txns %v are not strictly increasing", got)
		}
	}
	want0 := Txn(base.UnixMicro())
	if got[0] != want0 || got[2] != want0+1_000_000 || got[3] != got[2]+1 {
		t.Fatalf("txns %v do not follow max(now, last+1)", got)
	}
	c.Observe(got[len(got)-1] + 1000)
	if n := c.Next(); n != got[len(got)-1]+1001 {
		t.Fatalf("after Observe: %d", n)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{{}, {Log: NewID(), Pos: Pos{Txn: 1700000000000000, Op: 3}}, {Log: NewID(), Pos: AfterTxn(^Txn(0))}} {
		s := c.String()
		got, err := ParseCursor(s)
		if err != nil || got != c {
			t.Fatalf("%q: %+v, %v; want %+v", s, got, err, c)
		}
		if b := c.AppendTo([]byte("x")); string(b) != "x"+s || len(s) != 44 {
			t.Fatalf("AppendTo: %q, want %q", b, "x"+s)
		}
	}
	id := NewID()
	enc := NewCursorEncoder(id)
	for _, c := range []Cursor{{Log: id}, {Log: id, Pos: Pos{Txn: 1700000000000000, Op: 3}, Seq: 2}, {Log: id, Pos: AfterTxn(^Txn(0)), Seq: ^uint32(0)}, {Log: NewID(), Seq: 1}} {
		if got, want := enc.AppendTo([]byte("x"), c), c.AppendTo([]byte("x")); string(got) != string(want) {
			t.Fatalf("CursorEncoder.AppendTo: %q, want %q", got, want)
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = Cursor{Seq: 1}.AppendTo(buf[:0]) }); n != 0 {
		t.Errorf("AppendTo into room: %v allocations, want 0", n)
	}
	for _, s := range []string{"", "x", "AQ", string(make([]byte, 44)), "Ag" + Cursor{}.String()[2:]} {
		if _, err := ParseCursor(s); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("%q: %v, want ErrInvalidCursor", s, err)
		}
	}
}

func TestRecordAfter(t *testing.T) {
	r := Record{Txn: 10, Writes: testWrites("r", 3)}
	for _, c := range []struct {
		p     Pos
		n, op int
	}{{Pos{}, 3, 0}, {Pos{Txn: 9, Op: 7}, 3, 0}, {Pos{Txn: 10}, 2, 1}, {Pos{Txn: 10, Op: 2}, 0, 3}, {AfterTxn(10), 0, 3}, {Pos{Txn: 11}, 0, 3}} {
		ws, op := r.After(c.p)
		if len(ws) != c.n || op != c.op {
			t.Errorf("After(%+v) = %d writes from op %d, want %d from %d", c.p, len(ws), op, c.n, c.op)
		}
	}
	if !slices.Equal([]int{r.Last().Compare(Pos{Txn: 10, Op: 2})}, []int{0}) {
		t.Fatal("Last")
	}
}
