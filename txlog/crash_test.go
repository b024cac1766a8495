package txlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return run, err
	}

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

	if err := cmd.Start(); err != nil {
		return run, err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				// A line without its newline was cut by the kill.
				run.partial = len(line)
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()

	var timer <-chan time.Time
	if mode == 0 {
		timer = time.After(delay)
	}
	watchdog := time.After(20 * time.Second)
	var runErr error
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Kill() // SIGKILL
		}
	}
	handle := func(line string) {
		switch {
		case line == "ready":
			if mode == 1 {
				timer = time.After(delay)
			}
		case strings.HasPrefix(line, "ack "):
			f := strings.Fields(line)
			if len(f) != 3 {
				runErr = errors.Join(runErr, fmt.Errorf("bad line %q", line))
				return
			}
			txn, err := strconv.ParseUint(f[1], 10, 64)
			if _, dup := run.acks[f[2]]; err != nil || dup {
				runErr = errors.Join(runErr, fmt.Errorf("bad or repeated line %q", line))
				return
			}
			run.acks[f[2]] = Txn(txn)
			if len(run.acks) == ackLimit {
				kill()
			}
		default:
			runErr = errors.Join(runErr, fmt.Errorf("bad line %q", line))
		}
	}
	for !killed {
		select {
		case line, ok := <-lines:
			if !ok {
				runErr = errors.Join(runErr, errors.New("child ended its output before it was killed"))
				kill()
				continue
			}
			handle(line)
		case <-timer:
			kill()
		case <-watchdog:
			runErr = errors.Join(runErr, errors.New("child still running after 20s"))
			kill()
		}
	}
	// Lines written before the kill took effect are acknowledgements too.
	for line := range lines {
		handle(line)
	}
	err = cmd.Wait()
	run.stderr = stderr.String()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return run, errors.Join(runErr, fmt.Errorf("child: %v", err))
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		runErr = errors.Join(runErr, fmt.Errorf("child did not die of SIGKILL: %v", err))
	}
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
// nothing that was not in flight, and that the log takes appends again.
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

		var logBuf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		l, err := OpenFile(dir, FileOptions{Sync: SyncBatch, SegmentSize: crashSegmentSize, Logger: logger})
		if err != nil {
			t.Fatalf("round %d (kill %s, %d acks): recovery failed: %v", round, run.kill, len(run.acks), err)
		}
		torn, tornBytes := tornWarnings(logBuf.String())
		if tornBytes < 0 {
			l.Close()
			t.Fatalf("round %d: recovery's warnings do not say how many bytes it truncated:\n%s", round, logBuf.String())
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

		// The log takes appends after recovery, above every earlier txn,
		// and reads them back.
		before := l.Head()
		var added []histRec
		for k := range 2 {
			id := crashID(round, crashParent, k)
			txn, err := l.Append(crashWrites(id, k))
			if err != nil {
				l.Close()
				t.Fatalf("round %d: append after recovery: %v", round, err)
			}
			if txn <= before.Txn {
				l.Close()
				t.Fatalf("round %d: append after recovery got txn %d, not above the last one, %d", round, txn, before.Txn)
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
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("round %d: after the appends that followed recovery: %v", round, err)
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

// checkRecovered reads the whole recovered log and checks it against what
// earlier rounds left and what this round's child acknowledged. It returns
// the records this round added.
func checkRecovered(l *FileLog, history []histRec, round int, acks map[string]Txn) (newRecs []histRec, inFlight int, err error) {
	recs, err := collect(l, Cursor{Log: l.ID()})
	if err != nil {
		return nil, 0, fmt.Errorf("read: %w", err)
	}
	if len(recs) < len(history) {
		return nil, 0, fmt.Errorf("%d records, fewer than the %d of earlier rounds", len(recs), len(history))
	}
	if err := sameHistory(recs[:len(history)], history); err != nil {
		return nil, 0, fmt.Errorf("earlier rounds' records: %w", err)
	}
	if n := len(recs); n == 0 {
		if l.Head() != (Pos{}) {
			return nil, 0, fmt.Errorf("head %+v of an empty log", l.Head())
		}
	} else if l.Head() != recs[n-1].Last() {
		return nil, 0, fmt.Errorf("head %+v, the last record ends at %+v", l.Head(), recs[n-1].Last())
	}

	next := make([]int, crashAppenders) // per appender, the next seq expected
	found := map[string]bool{}
	for i, rec := range recs[len(history):] {
		if i+len(history) > 0 && rec.Txn <= recs[i+len(history)-1].Txn {
			return nil, 0, fmt.Errorf("txn %d follows txn %d", rec.Txn, recs[i+len(history)-1].Txn)
		}
		id, err := crashRecordID(rec)
		if err != nil {
			return nil, 0, fmt.Errorf("txn %d: %w", rec.Txn, err)
		}
		r, a, seq, _ := parseCrashID(id)
		if r != round || a >= crashAppenders {
			return nil, 0, fmt.Errorf("txn %d: record %s could not have been written in round %d", rec.Txn, id, round)
		}
		if seq != next[a] {
			return nil, 0, fmt.Errorf("txn %d: appender %d's record %d where its record %d was due (reordered or a gap)", rec.Txn, a, seq, next[a])
		}
		next[a]++
		if txn, ok := acks[id]; ok && txn != rec.Txn {
			return nil, 0, fmt.Errorf("record %s has txn %d, acknowledged as %d", id, rec.Txn, txn)
		}
		found[id] = true
		newRecs = append(newRecs, newHistRec(rec, id))
	}
	for id, txn := range acks {
		if !found[id] {
			return nil, 0, fmt.Errorf("acknowledged record %s (txn %d) is missing", id, txn)
		}
	}
	// An appender has one append in flight at a time: beyond its
	// acknowledged records, at most the next one may be present.
	for a := range crashAppenders {
		acked := 0
		for acks[crashID(round, a, acked)] != 0 {
			acked++
		}
		switch extra := next[a] - acked; {
		case extra > 1:
			return nil, 0, fmt.Errorf("appender %d: %d records past its %d acknowledged ones, at most 1 may be in flight", a, extra, acked)
		case extra == 1:
			inFlight++
		}
	}
	return newRecs, inFlight, nil
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

var tornBytesPattern = regexp.MustCompile(`truncating a record torn by a crash\b.*? bytes=(\d+)`)

// tornWarnings counts recovery's warnings about torn records and the bytes
// it truncated.
func tornWarnings(log string) (n, bytes int) {
	for _, m := range tornBytesPattern.FindAllStringSubmatch(log, -1) {
		b, _ := strconv.Atoi(m[1])
		n, bytes = n+1, bytes+b
	}
	if w := strings.Count(log, "truncating a record torn by a crash"); w != n {
		return w, -1 // a warning without its bytes: the log format changed
	}
	return n, bytes
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
