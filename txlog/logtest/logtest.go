// Package logtest is the conformance suite of txlog.Log: a log
// implementation runs it from its own tests to show that it keeps the
// contract a broker relies on.
//
//	func TestConformance(t *testing.T) {
//		logtest.Run(t, func(t *testing.T, opt logtest.Options) txlog.Log {
//			dir := t.TempDir() // a new, empty log
//			if opt.Reopen != nil {
//				dir = opt.Reopen.(*mylog.Log).Dir() // the same log again
//			}
//			cfg := mylog.Config{}
//			if opt.Retention {
//				cfg.MaxBytes = 4 << 10 // retention that drops records soon
//			}
//			l, err := mylog.Open(dir, cfg)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return l
//		})
//	}
//
// Run checks the order and txns of records, positions and cursors,
// ErrHistoryUnavailable (another log's cursor, before Oldest, beyond Head,
// a reader overtaken by retention), the two halves of an append (Stage and
// Wait), concurrent appenders and readers, and Close; and, for a log that
// implements txlog.Durable, reopening, Sync and KeepAfter. Run the tests
// with -race: the concurrent checks are meant for it.
//
// The checks end every goroutine they start before they return; the
// calling package's TestMain should check for leaks (go.uber.org/goleak),
// which covers the log's own goroutines too.
package logtest

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidings/tidings/txlog"
)

// Options say what kind of log a check asks open for.
type Options struct {
	// Retention asks for a log whose retention drops old records soon:
	// once at most a few thousand small records (a few hundred bytes
	// each) have been appended after them, but never before a dozen have.
	// A check appends until Oldest moves, and fails after 20,000 records.
	// Without it, the log must keep every record a check appends (at most
	// a few thousand small records).
	Retention bool

	// Reopen, when not nil, is a log that open returned and the suite has
	// closed since: open must return it opened again, with its identity and
	// records, and with the options it was first opened with. The suite
	// asks for it only of a log that implements txlog.Durable.
	Reopen txlog.Log
}

// maxAppends bounds the records a check appends while it waits for
// retention to move (see Options.Retention).
const maxAppends = 20_000

// Run runs the conformance checks as subtests of t. open returns a new,
// empty log for each call, or, when opt.Reopen is set, that log opened
// again; it fails t (t.Fatal) if it cannot. Run closes every log it opens.
func Run(t *testing.T, open func(t *testing.T, opt Options) txlog.Log) {
	s := &suite{open: open}
	t.Run("Order", s.order)
	t.Run("Positions", s.positions)
	t.Run("HistoryUnavailable", s.historyUnavailable)
	t.Run("BeforeOldest", s.beforeOldest)
	t.Run("RetentionOvertakesReader", s.overtaken)
	t.Run("StageWait", s.stageWait)
	t.Run("StagedWrittenOnClose", s.stagedWrittenOnClose)
	t.Run("Concurrent", s.concurrent)
	t.Run("Close", s.close)
	t.Run("Durable", func(t *testing.T) {
		if _, ok := s.newLog(t, Options{}).(txlog.Durable); !ok {
			t.Skip("the log does not implement txlog.Durable")
		}
		t.Run("Reopen", s.reopen)
		t.Run("Sync", s.sync)
		t.Run("KeepAfter", s.keepAfter)
	})
}

type suite struct {
	open func(t *testing.T, opt Options) txlog.Log
}

// newLog opens a log that is closed when the check ends.
func (s *suite) newLog(t *testing.T, opt Options) txlog.Log {
	t.Helper()
	l, _ := s.closable(t, opt)
	return l
}

// closable opens a log and returns a function that closes it, for a check
// that closes it itself; the log is closed when the check ends otherwise.
// It closes each log once, since the contract does not say what a second
// Close does.
func (s *suite) closable(t *testing.T, opt Options) (txlog.Log, func() error) {
	t.Helper()
	l := s.open(t, opt)
	if l == nil {
		t.Fatal("open returned a nil log")
	}
	var once sync.Once
	var err error
	closeLog := func() error {
		once.Do(func() { err = l.Close() })
		return err
	}
	t.Cleanup(func() { closeLog() })
	return l, closeLog
}

// rec is short for txlog.Record, which every check handles.
type rec = txlog.Record

// writes returns a record of n creates whose ids carry tag, so that a
// check can tell records apart by content.
func writes(tag string, n int) []txlog.Write {
	ws := make([]txlog.Write, n)
	for i := range ws {
		ws[i] = txlog.Write{
			Ref:    txlog.Ref{Collection: "logtest", ID: fmt.Sprintf("%s-%d", tag, i)},
			Action: txlog.ActionCreate,
			After:  fmt.Appendf(nil, `{"tag":%q,"op":%d}`, tag, i),
		}
	}
	return ws
}

// add appends a record with Stage and Wait, failing the check on error.
func add(t *testing.T, l txlog.Log, ws []txlog.Write) rec {
	t.Helper()
	txn, err := l.Stage(ws)
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if err := l.Wait(txn); err != nil {
		t.Fatalf("Wait(%d): %v", txn, err)
	}
	return rec{Txn: txn, Writes: ws}
}

// addN appends n records of 1 to 3 writes, tagged prefix0, prefix1, ...
func addN(t *testing.T, l txlog.Log, prefix string, n int) []rec {
	t.Helper()
	recs := make([]rec, 0, n)
	for i := range n {
		recs = append(recs, add(t, l, writes(fmt.Sprint(prefix, i), 1+i%3)))
	}
	return recs
}

// read collects what Read yields after c, up to its first error. It fails
// the check if the sequence goes on after an error.
func read(t *testing.T, l txlog.Log, c txlog.Cursor) ([]rec, error) {
	t.Helper()
	var recs []rec
	var first error
	for r, err := range l.Read(c) {
		if first != nil {
			t.Errorf("Read after %v yielded more after the error %v", c.Pos, first)
			break
		}
		if err != nil {
			first = err
			continue
		}
		recs = append(recs, r)
	}
	return recs, first
}

// readOK is read that fails the check on error.
func readOK(t *testing.T, l txlog.Log, c txlog.Cursor) []rec {
	t.Helper()
	recs, err := read(t, l, c)
	if err != nil {
		t.Fatalf("Read after %v: %v", c.Pos, err)
	}
	return recs
}

// unavailable checks that Read after c yields ErrHistoryUnavailable and
// nothing else.
func unavailable(t *testing.T, l txlog.Log, c txlog.Cursor, what string) {
	t.Helper()
	recs, err := read(t, l, c)
	if !errors.Is(err, txlog.ErrHistoryUnavailable) || len(recs) > 0 {
		t.Errorf("Read %s (%v): %d records and error %v; want only ErrHistoryUnavailable", what, c.Pos, len(recs), err)
	}
}

// after returns the records of want that hold a write after p.
func after(want []rec, p txlog.Pos) []rec {
	var out []rec
	for _, r := range want {
		if r.Last().Compare(p) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// sameFrom checks that got are exactly the records of want holding a write
// after p, in order, with the same txns and writes: what a reader resuming
// from a cursor at p must see (it skips the writes of the first record up
// to p with Record.After).
func sameFrom(t *testing.T, got, want []rec, p txlog.Pos) {
	t.Helper()
	want = after(want, p)
	if len(got) != len(want) {
		t.Fatalf("after %v: %d records (%s), want %d (%s)", p, len(got), txns(got), len(want), txns(want))
	}
	for i := range got {
		if got[i].Txn != want[i].Txn {
			t.Fatalf("after %v: record %d has txn %d, want %d", p, i, got[i].Txn, want[i].Txn)
		}
		if err := sameWrites(got[i].Writes, want[i].Writes); err != nil {
			t.Fatalf("after %v: record %d (txn %d): %v", p, i, got[i].Txn, err)
		}
	}
}

func sameWrites(got, want []txlog.Write) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d writes, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Ref != w.Ref || g.Action != w.Action || g.BeforeTxn != w.BeforeTxn ||
			!sameImage(g.Before, w.Before) || !sameImage(g.After, w.After) {
			return fmt.Errorf("write %d is %+v, want %+v", i, *g, *w)
		}
	}
	return nil
}

// sameImage compares two images, where nil (no document) differs from
// any document.
func sameImage(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// txns lists the txns of recs for a failure message, eliding the middle
// of a long list.
func txns(recs []rec) string {
	var b bytes.Buffer
	for i, r := range recs {
		if i == 8 && len(recs) > 10 {
			fmt.Fprintf(&b, " … %d", recs[len(recs)-1].Txn)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, r.Txn)
	}
	return "txns " + b.String()
}

// increasing checks that txns strictly increase.
func increasing(t *testing.T, recs []rec) {
	t.Helper()
	for i := 1; i < len(recs); i++ {
		if recs[i].Txn <= recs[i-1].Txn {
			t.Fatalf("txn %d follows txn %d: txns must strictly increase", recs[i].Txn, recs[i-1].Txn)
		}
	}
}

// lastPos is the head a log holding recs must report.
func lastPos(recs []rec) txlog.Pos {
	if len(recs) == 0 {
		return txlog.Pos{}
	}
	return recs[len(recs)-1].Last()
}

// untilDropped appends records until Oldest is at or past p, and returns
// them. It fails the check if retention never gets there.
func untilDropped(t *testing.T, l txlog.Log, prefix string, p txlog.Pos) []rec {
	t.Helper()
	var recs []rec
	for l.Oldest().Compare(p) < 0 {
		if len(recs) == maxAppends {
			t.Fatalf("Oldest is %v after %d more records, still before %v: retention does not drop records (Options.Retention)", l.Oldest(), maxAppends, p)
		}
		recs = append(recs, add(t, l, writes(fmt.Sprint(prefix, len(recs)), 1+len(recs)%2)))
	}
	return recs
}

// order: Stage and Wait assign strictly increasing txns, and a reader sees
// every record, with its writes as they were given, in that order.
func (s *suite) order(t *testing.T) {
	l := s.newLog(t, Options{})
	if l.ID() == (txlog.ID{}) {
		t.Fatal("the log's ID is the zero ID, which the zero Cursor names")
	}
	if l.Head() != (txlog.Pos{}) || l.Oldest() != (txlog.Pos{}) {
		t.Fatalf("an empty log has Head %v and Oldest %v, want the zero Pos", l.Head(), l.Oldest())
	}
	if recs := readOK(t, l, txlog.Cursor{Log: l.ID()}); len(recs) != 0 {
		t.Fatalf("an empty log yields %d records", len(recs))
	}

	// Every action, with and without images, so that a log that encodes
	// records shows it gives them back as they were.
	ref := txlog.Ref{Collection: "logtest", ID: "doc"}
	v1, v2 := []byte(`{"v":1}`), []byte(`{"v":2,"nested":{"a":[1,2]}}`)
	var want []rec
	want = append(want, add(t, l, []txlog.Write{{Ref: ref, Action: txlog.ActionCreate, After: v1}}))
	want = append(want, add(t, l, []txlog.Write{{Ref: ref, Action: txlog.ActionUpdate, BeforeTxn: want[0].Txn, Before: v1, After: v2}}))
	want = append(want, add(t, l, []txlog.Write{
		{Ref: ref, Action: txlog.ActionDelete, BeforeTxn: want[1].Txn, Before: v2},
		{Ref: ref, Action: txlog.ActionRewrite, BeforeTxn: want[1].Txn, After: v1},
		{Ref: ref, Action: txlog.ActionRewrite, BeforeTxn: want[0].Txn},
	}))
	want = append(want, addN(t, l, "r", 50)...)
	increasing(t, want)
	if want[0].Txn == 0 {
		t.Fatal("the first txn is 0")
	}
	if h := l.Head(); h != lastPos(want) {
		t.Fatalf("Head is %v, want %v, the last write of the newest record", h, lastPos(want))
	}
	if o := l.Oldest(); o != (txlog.Pos{}) {
		t.Fatalf("Oldest is %v in a log that dropped nothing", o)
	}
	sameFrom(t, readOK(t, l, txlog.Cursor{Log: l.ID()}), want, txlog.Pos{})
}

// positions: a reader resuming after any position, whole txns or the
// middle of a record, gets exactly the writes that follow it.
func (s *suite) positions(t *testing.T) {
	l := s.newLog(t, Options{})
	want := addN(t, l, "p", 12)
	ps := []txlog.Pos{{}}
	for i, r := range want {
		for op := range len(r.Writes) {
			ps = append(ps, txlog.Pos{Txn: r.Txn, Op: uint32(op)})
		}
		ps = append(ps, txlog.AfterTxn(r.Txn))
		if i > 0 && r.Txn-want[i-1].Txn > 1 {
			ps = append(ps, txlog.AfterTxn(r.Txn-1)) // between two txns
		}
	}
	for _, p := range ps {
		got := readOK(t, l, txlog.Cursor{Log: l.ID(), Pos: p})
		increasing(t, got)
		sameFrom(t, got, want, p)
		// What a resuming reader passes on: the first record's writes
		// after p (Record.After), then every write of the rest.
		var gotW, wantW []txlog.Write
		for i, r := range got {
			ws := r.Writes
			if i == 0 {
				ws, _ = r.After(p)
			}
			gotW = append(gotW, ws...)
		}
		for _, r := range want {
			for op, w := range r.Writes {
				if (txlog.Pos{Txn: r.Txn, Op: uint32(op)}).Compare(p) > 0 {
					wantW = append(wantW, w)
				}
			}
		}
		if err := sameWrites(gotW, wantW); err != nil {
			t.Fatalf("resuming after %v: %v", p, err)
		}
	}
}

// historyUnavailable: a cursor of another log, or beyond the head, yields
// ErrHistoryUnavailable and nothing else, in an empty log too.
func (s *suite) historyUnavailable(t *testing.T) {
	l := s.newLog(t, Options{})
	other := s.newLog(t, Options{})
	if l.ID() == other.ID() {
		t.Fatalf("two logs have the same ID %v", l.ID())
	}
	unavailable(t, l, txlog.Cursor{Pos: txlog.Pos{Txn: 1}}, "beyond the head of an empty log")
	unavailable(t, l, txlog.Cursor{Log: other.ID()}, "with another log's cursor, in an empty log")
	want := addN(t, l, "h", 5)
	add(t, other, writes("o", 1))
	for name, c := range map[string]txlog.Cursor{
		"with another log's cursor":                            {Log: other.ID()},
		"with another log's cursor at a position this log has": {Log: other.ID(), Pos: want[2].Last()},
		"with a random log's cursor":                           {Log: txlog.NewID(), Pos: want[1].Last()},
		"with the zero cursor":                                 {},
		"beyond the head":                                      {Log: l.ID(), Pos: txlog.Pos{Txn: want[4].Txn + 1}},
	} {
		unavailable(t, l, c, name)
	}
	// At the head: nothing to read, and no error.
	if got := readOK(t, l, txlog.Cursor{Log: l.ID(), Pos: l.Head()}); len(got) != 0 {
		t.Fatalf("Read after the head yields %d records", len(got))
	}
}

// beforeOldest: once retention has dropped records, Oldest is the last
// position dropped; a reader may start there but not before.
func (s *suite) beforeOldest(t *testing.T) {
	l := s.newLog(t, Options{Retention: true})
	first := add(t, l, writes("first", 2))
	all := append([]rec{first}, untilDropped(t, l, "b", first.Last())...)
	o := l.Oldest()
	found := false
	for _, r := range all {
		found = found || r.Last() == o
	}
	if !found {
		t.Fatalf("Oldest is %v, which is not the last write of any record appended", o)
	}
	unavailable(t, l, txlog.Cursor{Log: l.ID()}, "from the start, after retention dropped it")
	unavailable(t, l, txlog.Cursor{Log: l.ID(), Pos: txlog.Pos{Txn: first.Txn}}, "from within the first record, dropped")
	before := txlog.Pos{Txn: o.Txn - 1, Op: ^uint32(0)}
	if o.Op > 0 {
		before = txlog.Pos{Txn: o.Txn, Op: o.Op - 1}
	}
	unavailable(t, l, txlog.Cursor{Log: l.ID(), Pos: before}, "just before Oldest")
	got := readOK(t, l, txlog.Cursor{Log: l.ID(), Pos: o})
	sameFrom(t, got, all, o)
	if len(got) == 0 {
		t.Fatal("retention dropped every record: the newest must be kept")
	}
}

// overtaken: a reader that retention overtakes while it reads gets
// ErrHistoryUnavailable where it was: never a silent skip, and never a
// silent end before the head.
func (s *suite) overtaken(t *testing.T) {
	l := s.newLog(t, Options{Retention: true})
	all := addN(t, l, "a", 5)
	start := l.Oldest()
	var got []rec
	var rerr error
	for r, err := range l.Read(txlog.Cursor{Log: l.ID(), Pos: start}) {
		if rerr != nil {
			t.Fatalf("Read yielded more after the error %v", rerr)
		}
		if err != nil {
			rerr = err
			continue
		}
		got = append(got, r)
		if len(got) > 1 {
			continue
		}
		// Drop what the reader may have taken in already (the records
		// there when it started) and the record after them, then as many
		// again: a reader that went on past the gap would skip records.
		next := add(t, l, writes("next", 1))
		all = append(all, next)
		all = append(all, untilDropped(t, l, "x", next.Last())...)
		all = append(all, untilDropped(t, l, "y", l.Head())...)
	}
	want := after(all, start)
	if len(got) > len(want) {
		t.Fatalf("the reader yielded %d records, only %d were appended", len(got), len(want))
	}
	// What it yielded follows on from where it started, with no gap.
	sameFrom(t, got, want[:len(got)], start)
	switch {
	case rerr == nil && len(got) < len(want):
		t.Fatalf("the overtaken reader ended without an error after %d of %d records: a silent gap", len(got), len(want))
	case rerr == nil:
		// Allowed: the log kept what the reader needed.
		t.Logf("the reader was never overtaken: it read all %d records", len(got))
	case !errors.Is(rerr, txlog.ErrHistoryUnavailable):
		t.Fatalf("the overtaken reader ended with %v, want ErrHistoryUnavailable", rerr)
	default:
		last := lastPos(got)
		if l.Oldest().Compare(last) <= 0 {
			t.Fatalf("ErrHistoryUnavailable after %v, which retention has not dropped (Oldest is %v)", last, l.Oldest())
		}
		unavailable(t, l, txlog.Cursor{Log: l.ID(), Pos: last}, "from where the overtaken reader was")
	}
}

// stageWait: Stage fixes the txn; records become visible in txn order,
// never one before an earlier one; Wait returns once the record, and
// every record before it, is visible.
func (s *suite) stageWait(t *testing.T) {
	l := s.newLog(t, Options{})
	var staged []rec
	for i := range 5 {
		ws := writes(fmt.Sprint("s", i), 1+i%2)
		txn, err := l.Stage(ws)
		if err != nil {
			t.Fatalf("Stage: %v", err)
		}
		staged = append(staged, rec{Txn: txn, Writes: ws})
	}
	increasing(t, staged)
	visiblePrefix := func(atLeast int) {
		t.Helper()
		h := l.Head()
		got := readOK(t, l, txlog.Cursor{Log: l.ID()})
		if len(got) < atLeast || len(got) > len(staged) {
			t.Fatalf("%d records visible, want %d to %d", len(got), atLeast, len(staged))
		}
		sameFrom(t, got, staged[:len(got)], txlog.Pos{})
		if h.Compare(lastPos(staged[:atLeast])) < 0 || h.Compare(lastPos(got)) > 0 {
			t.Fatalf("Head is %v with %d records visible, want at least %v", h, len(got), lastPos(staged[:atLeast]))
		}
	}
	// Nothing is waited for yet: whatever is visible is the start of what
	// was staged, in order.
	visiblePrefix(0)
	if err := l.Wait(staged[2].Txn); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	visiblePrefix(3)
	if err := l.Wait(staged[4].Txn); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	visiblePrefix(5)
	// Waiting again, or for a record written by another's wait, returns.
	for _, r := range staged {
		if err := l.Wait(r.Txn); err != nil {
			t.Fatalf("Wait for a written record: %v", err)
		}
	}
	// Stage and Wait interleaved, waited for out of order.
	a, b := writes("a", 1), writes("b", 2)
	ta, err := l.Stage(a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := l.Stage(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(tb); err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(ta); err != nil {
		t.Fatal(err)
	}
	staged = append(staged, rec{Txn: ta, Writes: a}, rec{Txn: tb, Writes: b})
	increasing(t, staged)
	visiblePrefix(len(staged))
}

// stagedWrittenOnClose: Close writes what was staged and not waited for;
// a Wait after Close returns nil; a durable log has the records when it
// is opened again.
func (s *suite) stagedWrittenOnClose(t *testing.T) {
	l, closeLog := s.closable(t, Options{})
	want := []rec{add(t, l, writes("w", 1))}
	for _, tag := range []string{"u", "v"} {
		ws := writes(tag, 2)
		txn, err := l.Stage(ws)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rec{Txn: txn, Writes: ws})
	}
	if err := closeLog(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, r := range want[1:] {
		if err := l.Wait(r.Txn); err != nil {
			t.Fatalf("Wait after Close for a record staged before it: %v", err)
		}
	}
	if _, ok := l.(txlog.Durable); !ok {
		return
	}
	l2 := s.newLog(t, Options{Reopen: l})
	if l2.Head() != lastPos(want) {
		t.Fatalf("reopened, Head is %v, want %v, the last record staged before Close", l2.Head(), lastPos(want))
	}
	sameFrom(t, readOK(t, l2, txlog.Cursor{Log: l2.ID()}), want, txlog.Pos{})
}

// concurrent: appenders and readers at once. Every Stage gets its own
// txn; a record is visible once its Wait returns; readers that follow the
// log see every record exactly once, in txn order, never a gap.
func (s *suite) concurrent(t *testing.T) {
	l := s.newLog(t, Options{})
	const appenders, each, readers = 8, 40, 3
	var (
		mu       sync.Mutex
		acked    = map[txlog.Txn][]txlog.Write{}
		done     atomic.Bool
		wg       sync.WaitGroup
		failures = make(chan string, appenders+readers+1)
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}
	for a := range appenders {
		wg.Go(func() {
			for i := 0; i < each; {
				// Odd appenders stage three records and wait only for the
				// last, which must make the other two visible as well.
				batch := 1 + 2*(a%2)
				var got []rec
				for j := range batch {
					ws := writes(fmt.Sprintf("c%d.%d.%d", a, i, j), 1+j%2)
					txn, err := l.Stage(ws)
					if err != nil {
						fail("Stage: %v", err)
						return
					}
					got = append(got, rec{Txn: txn, Writes: ws})
				}
				last := got[len(got)-1]
				if err := l.Wait(last.Txn); err != nil {
					fail("Wait: %v", err)
					return
				}
				if h := l.Head(); h.Compare(last.Last()) < 0 {
					fail("Head is %v after Wait(%d) returned", h, last.Txn)
					return
				}
				mu.Lock()
				for _, r := range got {
					if _, dup := acked[r.Txn]; dup {
						fail("txn %d given to two records", r.Txn)
					}
					acked[r.Txn] = r.Writes
				}
				mu.Unlock()
				i += batch
			}
		})
	}
	seen := make([][]txlog.Txn, readers)
	var rwg sync.WaitGroup
	for i := range readers {
		rwg.Go(func() {
			pos := txlog.Pos{}
			for {
				finished := done.Load() // every Wait has returned
				moved := false
				for r, err := range l.Read(txlog.Cursor{Log: l.ID(), Pos: pos}) {
					if err != nil {
						fail("reader: Read after %v: %v", pos, err)
						return
					}
					if r.Last().Compare(pos) <= 0 {
						fail("reader: record %v yielded after %v", r.Last(), pos)
						return
					}
					seen[i] = append(seen[i], r.Txn)
					pos, moved = r.Last(), true
				}
				if finished && !moved {
					return
				}
				if !moved {
					runtime.Gosched()
				}
			}
		})
	}
	// Head and Oldest, called meanwhile, never go back.
	rwg.Go(func() {
		var h txlog.Pos
		for !done.Load() {
			n := l.Head()
			if n.Compare(h) < 0 {
				fail("Head went back from %v to %v", h, n)
				return
			}
			if o := l.Oldest(); o != (txlog.Pos{}) {
				fail("Oldest is %v in a log that must keep everything", o)
				return
			}
			h = n
			runtime.Gosched()
		}
	})
	wg.Wait()
	done.Store(true)
	rwg.Wait()
	close(failures)
	for f := range failures {
		t.Fatal(f)
	}

	all := readOK(t, l, txlog.Cursor{Log: l.ID()})
	increasing(t, all)
	if len(all) != len(acked) {
		t.Fatalf("the log holds %d records, %d were acknowledged", len(all), len(acked))
	}
	for _, r := range all {
		ws, ok := acked[r.Txn]
		if !ok {
			t.Fatalf("txn %d was not acknowledged to any appender", r.Txn)
		}
		if err := sameWrites(r.Writes, ws); err != nil {
			t.Fatalf("txn %d is not the record Stage gave it: %v", r.Txn, err)
		}
	}
	for i, txns := range seen {
		if len(txns) != len(all) {
			t.Fatalf("reader %d saw %d records, the log holds %d", i, len(txns), len(all))
		}
		for j, txn := range txns {
			if txn != all[j].Txn {
				t.Fatalf("reader %d saw txn %d as record %d, which is txn %d", i, txn, j, all[j].Txn)
			}
		}
	}
}

// close: Stage and Read after Close fail with ErrClosed, and a reader
// that Close interrupts ends with ErrClosed, not as if at the head.
func (s *suite) close(t *testing.T) {
	l, closeLog := s.closable(t, Options{})
	all := addN(t, l, "z", 30)
	var got []rec
	var rerr error
	for r, err := range l.Read(txlog.Cursor{Log: l.ID()}) {
		if rerr != nil {
			t.Fatalf("Read yielded more after the error %v", rerr)
		}
		if err != nil {
			rerr = err
			continue
		}
		got = append(got, r)
		if len(got) == 1 {
			if err := closeLog(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	}
	if !errors.Is(rerr, txlog.ErrClosed) {
		t.Fatalf("a reader interrupted by Close ended with %v after %d of %d records, want ErrClosed", rerr, len(got), len(all))
	}
	if len(got) > len(all) {
		t.Fatalf("the reader yielded %d records, only %d were appended", len(got), len(all))
	}
	sameFrom(t, got, all[:len(got)], txlog.Pos{})
	if _, err := l.Stage(writes("late", 1)); !errors.Is(err, txlog.ErrClosed) {
		t.Fatalf("Stage after Close: %v, want ErrClosed", err)
	}
	recs, err := read(t, l, txlog.Cursor{Log: l.ID()})
	if !errors.Is(err, txlog.ErrClosed) || len(recs) > 0 {
		t.Fatalf("Read after Close: %d records and %v, want only ErrClosed", len(recs), err)
	}
	if d, ok := l.(txlog.Durable); ok {
		if err := d.Sync(); !errors.Is(err, txlog.ErrClosed) {
			t.Fatalf("Sync after Close: %v, want ErrClosed", err)
		}
	}
}

// reopen: a durable log opened again has its identity, its records and
// its directory, and txns go on upward.
func (s *suite) reopen(t *testing.T) {
	l, closeLog := s.closable(t, Options{})
	want := addN(t, l, "o", 20)
	id, head, oldest, dir := l.ID(), l.Head(), l.Oldest(), l.(txlog.Durable).Dir()
	if err := closeLog(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l2 := s.newLog(t, Options{Reopen: l})
	d2, ok := l2.(txlog.Durable)
	switch {
	case !ok:
		t.Fatal("the reopened log does not implement txlog.Durable")
	case l2.ID() != id:
		t.Fatalf("reopened, the log's ID is %v, was %v: every cursor would be refused", l2.ID(), id)
	case l2.Head() != head || l2.Oldest() != oldest:
		t.Fatalf("reopened, Head %v and Oldest %v, were %v and %v", l2.Head(), l2.Oldest(), head, oldest)
	case d2.Dir() != dir:
		t.Fatalf("reopened, Dir is %q, was %q: the broker would not find its checkpoints", d2.Dir(), dir)
	}
	// A cursor from before the restart resumes.
	mid := txlog.Cursor{Log: id, Pos: txlog.Pos{Txn: want[10].Txn, Op: 0}}
	sameFrom(t, readOK(t, l2, mid), want, mid.Pos)
	next := add(t, l2, writes("after", 1))
	if next.Txn <= head.Txn {
		t.Fatalf("reopened, the next txn is %d, not after the head %d", next.Txn, head.Txn)
	}
	sameFrom(t, readOK(t, l2, txlog.Cursor{Log: id}), append(want, next), txlog.Pos{})
}

// sync: Sync writes everything staged, and it is then visible.
func (s *suite) sync(t *testing.T) {
	l := s.newLog(t, Options{})
	d := l.(txlog.Durable)
	var staged []rec
	for i := range 3 {
		ws := writes(fmt.Sprint("y", i), 1)
		txn, err := l.Stage(ws)
		if err != nil {
			t.Fatal(err)
		}
		staged = append(staged, rec{Txn: txn, Writes: ws})
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if h := l.Head(); h != lastPos(staged) {
		t.Fatalf("Head is %v after Sync, want %v, the last record staged", h, lastPos(staged))
	}
	sameFrom(t, readOK(t, l, txlog.Cursor{Log: l.ID()}), staged, txlog.Pos{})
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync with nothing staged: %v", err)
	}
}

// keepAfter: retention never drops a record after the floor, and goes on
// once the floor is raised.
func (s *suite) keepAfter(t *testing.T) {
	// How many records retention needs before it drops the first.
	probe := s.newLog(t, Options{Retention: true})
	first := add(t, probe, writes("k", 1))
	k := len(untilDropped(t, probe, "k", first.Last()))
	extra := 2*k + 10 // enough that retention would have dropped past the floor

	l := s.newLog(t, Options{Retention: true})
	d := l.(txlog.Durable)
	all := addN(t, l, "f", 3)
	floor := all[2].Txn
	if o := l.Oldest(); o.Txn > floor {
		t.Fatalf("retention dropped up to %v after 3 records: it must keep more for this check (Options.Retention)", o)
	}
	d.KeepAfter(floor)
	for i := range extra {
		all = append(all, add(t, l, writes(fmt.Sprint("g", i), 1)))
	}
	if o := l.Oldest(); o.Txn > floor {
		t.Fatalf("Oldest is %v, past the floor %d", o, floor)
	}
	p := txlog.AfterTxn(floor)
	sameFrom(t, readOK(t, l, txlog.Cursor{Log: l.ID(), Pos: p}), all, p)

	// Raise the floor: retention goes past the old one, not past the new.
	newFloor := all[len(all)-1-k].Txn
	d.KeepAfter(newFloor)
	untilDropped(t, l, "h", p)
	for range extra {
		add(t, l, writes("i", 1))
	}
	if o := l.Oldest(); o.Txn > newFloor {
		t.Fatalf("Oldest is %v, past the raised floor %d", o, newFloor)
	}
}
