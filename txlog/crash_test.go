package txlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/internal/crashtest"
)

// The crash test runs this test binary again as a child that appends to a
// file log until the parent kills it with SIGKILL. TestMain hands control
// to crashChild when crashChildEnv is set.
const (
	crashChildEnv = "TXLOG_CRASH_CHILD" // the log's directory
	crashRoundEnv = "TXLOG_CRASH_ROUND"
	crashSeedEnv  = "TXLOG_CRASH_SEED" // replays a logged seed

	crashAppenders   = 4
	crashSegmentSize = 4 << 10
	crashRounds      = 25
	// crashParent is the appender number of the records the parent appends
	// after each recovery.
	crashParent = crashAppenders
)

// crashID names the seq'th record of appender a in a round.
func crashID(round, a, seq int) string { return fmt.Sprintf("r%d-a%d-s%d", round, a, seq) }

var crashIDPattern = regexp.MustCompile(`^r(\d+)-a(\d+)-s(\d+)$`)

func parseCrashID(id string) (round, a, seq int, ok bool) {
	m := crashIDPattern.FindStringSubmatch(id)
	if m == nil {
		return 0, 0, 0, false
	}
	round, _ = strconv.Atoi(m[1])
	a, _ = strconv.Atoi(m[2])
	seq, _ = strconv.Atoi(m[3])
	return round, a, seq, true
}

// crashWrites is the record with the given id: 1 to 3 writes whose images
// name it and vary in size, so that segments roll at irregular points.
func crashWrites(id string, seq int) []Write {
	ws := make([]Write, 1+seq%3)
	for i := range ws {
		pad := strings.Repeat("x", (seq*37+i*101)%211)
		ws[i] = Write{
			Ref:    Ref{Collection: "crash", ID: fmt.Sprintf("%s-w%d", id, i)},
			Action: ActionCreate,
			After:  fmt.Appendf(nil, `{"id":%q,"op":%d,"pad":%q}`, id, i, pad),
		}
	}
	return ws
}

// crashRecordID checks that rec is exactly a record crashWrites makes and
// returns its id.
func crashRecordID(rec Record) (string, error) {
	if len(rec.Writes) == 0 {
		return "", errors.New("no writes")
	}
	id, ok := strings.CutSuffix(rec.Writes[0].Ref.ID, "-w0")
	if !ok {
		return "", fmt.Errorf("unknown write %s", rec.Writes[0].Ref)
	}
	_, _, seq, ok := parseCrashID(id)
	if !ok {
		return "", fmt.Errorf("unknown record %q", id)
	}
	want := crashWrites(id, seq)
	if len(rec.Writes) != len(want) {
		return "", fmt.Errorf("record %s has %d writes, want %d", id, len(rec.Writes), len(want))
	}
	for i, w := range rec.Writes {
		v := want[i]
		if w.Ref != v.Ref || w.Action != v.Action || w.BeforeTxn != 0 || w.Before != nil || !bytes.Equal(w.After, v.After) {
			return "", fmt.Errorf("record %s write %d is %+v, want %+v", id, i, w, v)
		}
	}
	return id, nil
}

// crashChild is the process that the crash test kills: it opens the log,
// says "ready", and runs crashAppenders goroutines that append records
// forever, printing "ack <txn> <id>" after each Append that succeeded.
func crashChild() {
	dir := os.Getenv(crashChildEnv)
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: bad round:", err)
		os.Exit(2)
	}
	l, err := OpenFile(dir, FileOptions{Sync: SyncBatch, SegmentSize: crashSegmentSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex // one line per write, so that lines never interleave
	say := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(2) // the parent is gone
		}
	}
	say("ready\n")
	for a := range crashAppenders {
		go func() {
			for seq := 0; ; seq++ {
				id := crashID(round, a, seq)
				txn, err := l.Append(crashWrites(id, seq))
				if err != nil {
					fmt.Fprintln(os.Stderr, "crash child: append:", err)
					os.Exit(2)
				}
				say(fmt.Sprintf("ack %d %s\n", txn, id))
			}
		}()
	}
	// The parent kills well before this; exit on our own should it not.
	time.Sleep(30 * time.Second)
	fmt.Fprintln(os.Stderr, "crash child: not killed")
	os.Exit(3)
}

// childRun is what the parent learned from one child.
type childRun struct {
	kill    string         // how the child was killed
	acks    map[string]Txn // id -> acknowledged txn
	partial int            // bytes of an unfinished last line
	stderr  string
}

// runCrashChild starts a child appending to dir, kills it with SIGKILL at a
// point chosen by rng, and returns once it is dead and its output read.
func runCrashChild(dir string, round int, rng *rand.Rand) (childRun, error) {
	run := childRun{acks: map[string]Txn{}}

	// Three ways to pick the moment: a random delay from the start (which
	// may fall while the child opens the log), a random delay from the
	// first append, or right after the n'th acknowledgement.
	var delay time.Duration
	ackLimit := -1
	mode := rng.IntN(3)
	switch mode {
	case 0:
		delay = time.Duration(rng.Int64N(int64(60 * time.Millisecond)))
		run.kill = fmt.Sprintf("%v after start", delay.Round(time.Microsecond))
	case 1:
		delay = time.Duration(rng.Int64N(int64(30 * time.Millisecond)))
		run.kill = fmt.Sprintf("%v after ready", delay.Round(time.Microsecond))
	case 2:
		ackLimit = 1 + rng.IntN(150)
		run.kill = fmt.Sprintf("after %d acks", ackLimit)
	}

	child, err := crashtest.Start(crashtest.Options{
		Run: "^$", // TestMain runs crashChild instead of the tests
		Env: []string{crashChildEnv + "=" + dir, crashRoundEnv + "=" + strconv.Itoa(round)},
	})
	if err != nil {
		return run, err
	}
	if mode == 0 {
		child.KillAfter(delay)
	}
	// Lines written before the kill took effect are acknowledgements too.
	res, runErr := child.Watch(func(line string) error {
		switch {
		case line == "ready":
			if mode == 1 {
				child.KillAfter(delay)
			}
		case strings.HasPrefix(line, "ack "):
			f := strings.Fields(line)
			if len(f) != 3 {
				return fmt.Errorf("bad line %q", line)
			}
			txn, err := strconv.ParseUint(f[1], 10, 64)
			if _, dup := run.acks[f[2]]; err != nil || dup {
				return fmt.Errorf("bad or repeated line %q", line)
			}
			run.acks[f[2]] = Txn(txn)
			if len(run.acks) == ackLimit {
				child.Kill()
			}
		default:
			return fmt.Errorf("bad line %q", line)
		}
		return nil
	})
	run.stderr, run.partial = res.Stderr, res.Partial
	if strings.Contains(run.stderr, "DATA RACE") || strings.Contains(run.stderr, "panic") {
		runErr = errors.Join(runErr, errors.New("child reported a race or a panic"))
	}
	return run, runErr
}

// histRec is a record that an earlier round left in the log, with a hash
// of its writes, so that later rounds check it cheaply.
type histRec struct {
	txn Txn
	id  string
	sum uint64
}

func newHistRec(rec Record, id string) histRec {
	return histRec{rec.Txn, id, xxhash.Sum64(appendWrites(nil, rec.Writes))}
}

// TestCrashRecovery kills a child appending under SyncBatch with SIGKILL at
// random points, round after round on the same directory, and checks after
// each kill that recovery kept every acknowledged append, in order, kept
// nothing that was not in flight, and that the log takes appends again:
// the log's side of Guarantee 6 (broker package doc) under SyncBatch.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process per round")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", crashSeedEnv, err)
		}
	}
	t.Logf("seed %d (replay the kill points with %s=%d)", seed, crashSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	var history []histRec // what the log held after the last round
	var totalAcks, totalFound, totalInFlight, totalTorn, tornRounds int
	for round := range crashRounds {
		run, err := runCrashChild(dir, round, rng)
		if err != nil {
			t.Fatalf("round %d (kill %s): %v\nchild stderr:\n%s", round, run.kill, err, run.stderr)
		}
		l, torn, tornBytes, err := recoverCrashed(dir)
		if err != nil {
			t.Fatalf("round %d (kill %s, %d acks): %v", round, run.kill, len(run.acks), err)
		}
		newRecs, inFlight, err := checkRecovered(l, history, round, run.acks)
		if err != nil {
			l.Close()
			t.Fatalf("round %d (kill %s, %d acks, torn %d bytes): %v", round, run.kill, len(run.acks), tornBytes, err)
		}
		segs := countSegments(t, dir)
		t.Logf("round %2d: kill %-20s %4d acks, %4d new records (%d unacked in flight), torn %d record(s) %d bytes, %d segments, partial line %d bytes",
			round, run.kill, len(run.acks), len(newRecs), inFlight, torn, tornBytes, segs, run.partial)
		totalAcks += len(run.acks)
		totalFound += len(newRecs)
		totalInFlight += inFlight
		totalTorn += tornBytes
		if torn > 0 {
			tornRounds++
		}
		history = append(history, newRecs...)

		added, err := checkAppendsAfterRecovery(l, round)
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		history = append(history, added...)
	}
	segs := countSegments(t, dir)
	t.Logf("%d rounds: %d acks, %d records recovered (%d unacked in flight), %d torn bytes in %d rounds, %d segments",
		crashRounds, totalAcks, totalFound, totalInFlight, totalTorn, tornRounds, segs)
	if totalAcks == 0 || segs < 2 {
		t.Fatalf("the children acknowledged %d appends over %d segments: the test exercised nothing", totalAcks, segs)
	}
}

// recoverCrashed opens the log in dir after a kill, and returns how many
// torn records recovery says it truncated, and how many bytes.
func recoverCrashed(dir string) (l *FileLog, torn, tornBytes int, err error) {
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err = OpenFile(dir, FileOptions{Sync: SyncBatch, SegmentSize: crashSegmentSize, Logger: logger})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("recovery failed: %w", err)
	}
	torn, tornBytes = tornWarnings(logBuf.String())
	if tornBytes < 0 {
		l.Close()
		return nil, 0, 0, fmt.Errorf("recovery's warnings do not say how many bytes it truncated:\n%s", logBuf.String())
	}
	return l, torn, tornBytes, nil
}

// checkRecovered reads the whole recovered log and checks it against what
// earlier rounds left and what this round's child acknowledged, one check
// after the other. It returns the records this round added, and how many
// of them are appends that were in flight, not acknowledged.
func checkRecovered(l *FileLog, history []histRec, round int, acks map[string]Txn) (newRecs []histRec, inFlight int, err error) {
	recs, err := collect(l, Cursor{Log: l.ID()})
	if err != nil {
		return nil, 0, fmt.Errorf("read: %w", err)
	}
	if err := checkEarlierRoundsKept(recs, history); err != nil {
		return nil, 0, err
	}
	if err := checkHeadAtLastRecord(l, recs); err != nil {
		return nil, 0, err
	}
	if err := checkTxnsUpward(recs, len(history)); err != nil {
		return nil, 0, err
	}
	next, found, newRecs, err := checkAppendersInOrder(recs[len(history):], round)
	if err != nil {
		return nil, 0, err
	}
	if err := checkAcksKept(acks, found); err != nil {
		return nil, 0, err
	}
	inFlight, err = checkOneInFlight(next, round, acks)
	if err != nil {
		return nil, 0, err
	}
	return newRecs, inFlight, nil
}

// checkEarlierRoundsKept: the log begins with exactly the records that
// earlier rounds left, unchanged.
func checkEarlierRoundsKept(recs []Record, history []histRec) error {
	if len(recs) < len(history) {
		return fmt.Errorf("%d records, fewer than the %d of earlier rounds", len(recs), len(history))
	}
	if err := sameHistory(recs[:len(history)], history); err != nil {
		return fmt.Errorf("earlier rounds' records: %w", err)
	}
	return nil
}

// checkHeadAtLastRecord: the log's head is where its last record ends, or
// zero if it has none.
func checkHeadAtLastRecord(l *FileLog, recs []Record) error {
	if n := len(recs); n == 0 {
		if l.Head() != (Pos{}) {
			return fmt.Errorf("head %+v of an empty log", l.Head())
		}
	} else if l.Head() != recs[n-1].Last() {
		return fmt.Errorf("head %+v, the last record ends at %+v", l.Head(), recs[n-1].Last())
	}
	return nil
}

// checkTxnsUpward: from recs[from] on (this round's records), every txn is
// above the one before, the last of the earlier rounds included.
func checkTxnsUpward(recs []Record, from int) error {
	for i := max(from, 1); i < len(recs); i++ {
		if recs[i].Txn <= recs[i-1].Txn {
			return fmt.Errorf("txn %d follows txn %d", recs[i].Txn, recs[i-1].Txn)
		}
	}
	return nil
}

// checkAppendersInOrder: each of this round's records is exactly one that
// an appender of this round's child made, and each appender's records are
// there in order with no gap. It returns, per appender, the seq after its
// last record; the txn of each record by id; and the records as history.
func checkAppendersInOrder(fresh []Record, round int) (next []int, found map[string]Txn, newRecs []histRec, err error) {
	next = make([]int, crashAppenders) // per appender, the next seq expected
	found = map[string]Txn{}
	for _, rec := range fresh {
		id, err := crashRecordID(rec)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("txn %d: %w", rec.Txn, err)
		}
		r, a, seq, _ := parseCrashID(id)
		if r != round || a >= crashAppenders {
			return nil, nil, nil, fmt.Errorf("txn %d: record %s could not have been written in round %d", rec.Txn, id, round)
		}
		if seq != next[a] {
			return nil, nil, nil, fmt.Errorf("txn %d: appender %d's record %d where its record %d was due (reordered or a gap)", rec.Txn, a, seq, next[a])
		}
		next[a]++
		found[id] = rec.Txn
		newRecs = append(newRecs, newHistRec(rec, id))
	}
	return next, found, newRecs, nil
}

// checkAcksKept: every record the child acknowledged is in the log, at the
// txn Append returned for it.
func checkAcksKept(acks, found map[string]Txn) error {
	for id, txn := range acks {
		got, ok := found[id]
		if !ok {
			return fmt.Errorf("acknowledged record %s (txn %d) is missing", id, txn)
		}
		if got != txn {
			return fmt.Errorf("record %s has txn %d, acknowledged as %d", id, got, txn)
		}
	}
	return nil
}

// checkOneInFlight: an appender has one append in flight at a time, so
// beyond its acknowledged records at most the next one may be present. It
// returns how many appenders had one.
func checkOneInFlight(next []int, round int, acks map[string]Txn) (inFlight int, err error) {
	for a := range crashAppenders {
		acked := 0
		for acks[crashID(round, a, acked)] != 0 {
			acked++
		}
		switch extra := next[a] - acked; {
		case extra > 1:
			return 0, fmt.Errorf("appender %d: %d records past its %d acknowledged ones, at most 1 may be in flight", a, extra, acked)
		case extra == 1:
			inFlight++
		}
	}
	return inFlight, nil
}

// checkAppendsAfterRecovery appends the parent's two records of the round
// to the recovered log: their txns must go above every earlier txn, and
// they must read back as appended, the head where the second ends. It
// returns them as history.
func checkAppendsAfterRecovery(l *FileLog, round int) ([]histRec, error) {
	before := l.Head()
	var added []histRec
	for k := range 2 {
		id := crashID(round, crashParent, k)
		txn, err := l.Append(crashWrites(id, k))
		if err != nil {
			return nil, fmt.Errorf("append after recovery: %v", err)
		}
		if txn <= before.Txn {
			return nil, fmt.Errorf("append after recovery got txn %d, not above the last one, %d", txn, before.Txn)
		}
		added = append(added, histRec{txn: txn, id: id})
	}
	recs, err := collect(l, Cursor{Log: l.ID(), Pos: before})
	for i := range min(len(recs), len(added)) {
		added[i].sum = newHistRec(recs[i], "").sum
		if id, cerr := crashRecordID(recs[i]); cerr != nil || id != added[i].id || recs[i].Txn != added[i].txn {
			err = errors.Join(err, fmt.Errorf("read back txn %d as %s (%v), want %s at txn %d", recs[i].Txn, id, cerr, added[i].id, added[i].txn))
		}
	}
	if err == nil && len(recs) != len(added) {
		err = fmt.Errorf("read back %d records, want %d", len(recs), len(added))
	}
	if err == nil && l.Head() != recs[len(recs)-1].Last() {
		err = fmt.Errorf("head %+v, the last record ends at %+v", l.Head(), recs[len(recs)-1].Last())
	}
	if err != nil {
		return nil, fmt.Errorf("after the appends that followed recovery: %w", err)
	}
	return added, nil
}

// sameHistory checks that recs are exactly the records of history.
func sameHistory(recs []Record, history []histRec) error {
	if len(recs) != len(history) {
		return fmt.Errorf("%d records, want %d", len(recs), len(history))
	}
	for i, rec := range recs {
		h := history[i]
		if got := newHistRec(rec, h.id); got != h {
			return fmt.Errorf("record %d is txn %d (writes %s...), want %s at txn %d", i, rec.Txn, rec.Writes[0].Ref.ID, h.id, h.txn)
		}
	}
	return nil
}

func countSegments(t *testing.T, dir string) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

// TestRecoveryAfterRollCrashClockBehind: a crash right after a roll leaves a
// last segment with a header and no record; its base is the txn of the
// record that was being appended. After a restart whose wall clock is not
// past that txn, the next record must still go above the base, or the
// segment no longer opens.
func TestRecoveryAfterRollCrashClockBehind(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opt := FileOptions{Now: func() time.Time { return now }}
	l, err := OpenFile(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	txn, err := l.Append(testWrites("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// What the crash left: the new segment, created and synced before its
	// first frame was written.
	base := txn + 5_000_000
	h := segHeader{id: l.ID(), base: base, prev: Pos{Txn: txn}}
	if err := os.WriteFile(filepath.Join(dir, segName(base)), h.marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		l, err := OpenFile(dir, opt)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if i == 0 {
			t2, err := l.Append(testWrites("b", 1))
			if err != nil {
				l.Close()
				t.Fatal(err)
			}
			if t2 < base {
				l.Close()
				t.Fatalf("append after recovery got txn %d, below the tail segment's base %d", t2, base)
			}
		}
		recs, err := collect(l, Cursor{Log: l.ID()})
		l.Close()
		if err != nil || len(recs) != 2 || recs[1].Writes[0].Ref.ID != "b-0" {
			t.Fatalf("open %d: read %d records, %v; want a then b", i, len(recs), err)
		}
	}
}
