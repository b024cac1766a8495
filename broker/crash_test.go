package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

type crashIntentWrite struct {
	ref    txlog.Ref
	action txlog.Action
	after  []byte // nil: deleted
}

type crashEvent struct{ cursor, json string }

// crashRun is what the parent learned from one child.
type crashRun struct {
	kill    string
	behind  bool // the child's clock was an hour behind
	ready   bool
	head    txlog.Txn                             // the head the child started from
	intents [crashCommitters][][]crashIntentWrite // by seq: what each transaction writes
	acks    [crashCommitters][]txlog.Txn          // by seq: the txn Commit returned
	events  [][]crashEvent                        // by subscriber
	ended   []bool                                // the subscriber's stream ended
	subFail []string                              // Subscribe failed
	ckpts   int                                   // explicit checkpoints begun
	ckptsOK int                                   // checkpoints written (all kinds)
	stderr  string
}

func (run *crashRun) numAcks() int {
	n := 0
	for c := range run.acks {
		n += len(run.acks[c])
	}
	return n
}

var crashActions = map[string]txlog.Action{"create": txlog.ActionCreate, "update": txlog.ActionUpdate, "delete": txlog.ActionDelete}

// handle takes one line of the child's output.
func (run *crashRun) handle(line string) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return fmt.Errorf("empty line")
	}
	atoi := func(s string, max int) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || (max >= 0 && n >= max) {
			return 0, fmt.Errorf("bad number %q in line %q", s, line)
		}
		return n, nil
	}
	switch f[0] {
	case "ready":
		txn, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if len(f) != 2 || err != nil || run.ready {
			return fmt.Errorf("bad line %q", line)
		}
		run.ready, run.head = true, txlog.Txn(txn)
	case "try":
		if len(f) < 6 || (len(f)-3)%3 != 0 {
			return fmt.Errorf("bad line %q", line)
		}
		c, err := atoi(f[1], crashCommitters)
		if err != nil {
			return err
		}
		seq, err := atoi(f[2], -1)
		if err != nil {
			return err
		}
		if seq != len(run.intents[c]) || seq != len(run.acks[c]) {
			return fmt.Errorf("committer %d tries seq %d after %d tries and %d acks", c, seq, len(run.intents[c]), len(run.acks[c]))
		}
		var ws []crashIntentWrite
		for i := 3; i < len(f); i += 3 {
			k, err := atoi(f[i], crashDocs)
			if err != nil {
				return err
			}
			a, ok := crashActions[f[i+1]]
			if !ok {
				return fmt.Errorf("bad action in line %q", line)
			}
			w := crashIntentWrite{ref: crashRef(c, k), action: a}
			if a != txlog.ActionDelete {
				w.after = []byte(f[i+2])
			}
			ws = append(ws, w)
		}
		run.intents[c] = append(run.intents[c], ws)
	case "ack":
		if len(f) != 4 {
			return fmt.Errorf("bad line %q", line)
		}
		c, err := atoi(f[1], crashCommitters)
		if err != nil {
			return err
		}
		seq, err := atoi(f[2], -1)
		if err != nil {
			return err
		}
		txn, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil || seq != len(run.acks[c]) || seq >= len(run.intents[c]) {
			return fmt.Errorf("committer %d acks seq %d after %d tries and %d acks", c, seq, len(run.intents[c]), len(run.acks[c]))
		}
		run.acks[c] = append(run.acks[c], txlog.Txn(txn))
	case "ev":
		p := strings.SplitN(line, " ", 4)
		if len(p) != 4 {
			return fmt.Errorf("bad line %q", line)
		}
		i, err := atoi(p[1], len(run.events))
		if err != nil {
			return err
		}
		if run.ended[i] {
			return fmt.Errorf("subscriber %d: an event after the end of its stream: %q", i, line)
		}
		run.events[i] = append(run.events[i], crashEvent{cursor: p[2], json: p[3]})
	case "evend":
		i, err := atoi(f[len(f)-1], len(run.events))
		if err != nil {
			return err
		}
		run.ended[i] = true
	case "subfail":
		i, err := atoi(f[1], len(run.events))
		if err != nil {
			return err
		}
		run.subFail[i] = strings.Join(f[2:], " ")
	case "ckpt":
		run.ckpts++
	case "ckptdone":
		run.ckptsOK++
	default:
		return fmt.Errorf("bad line %q", line)
	}
	return nil
}

// runCrashChild starts a child on dir, kills it with SIGKILL at a point
// chosen by rng, and returns once it is dead and its output read.
func runCrashChild(dir string, round int, cursors []string, rng *rand.Rand) (*crashRun, error) {
	n := len(cursors)
	run := &crashRun{events: make([][]crashEvent, n), ended: make([]bool, n), subFail: make([]string, n)}

	// Four ways to pick the moment: a random delay from the start (which
	// may fall while the child recovers), a random delay from "ready", right
	// after the n'th acknowledgement, or during the child's n'th checkpoint
	// of its own: a random delay after it began, or as soon as its file
	// appears (so, in the middle of writing it).
	var delay time.Duration
	ackLimit, ckptLimit := -1, -1
	watchTmp := false
	mode := [...]int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3}[rng.IntN(20)]
	switch mode {
	case 0:
		delay = time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
		run.kill = fmt.Sprintf("%v after start", delay.Round(time.Microsecond))
	case 1:
		delay = time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		run.kill = fmt.Sprintf("%v after ready", delay.Round(time.Microsecond))
	case 2:
		ackLimit = 1 + rng.IntN(300)
		run.kill = fmt.Sprintf("after %d acks", ackLimit)
	case 3:
		ckptLimit = 1 + rng.IntN(4)
		if watchTmp = rng.IntN(3) > 0; watchTmp {
			run.kill = fmt.Sprintf("writing checkpoint %d", ckptLimit)
		} else {
			delay = time.Duration(rng.Int64N(int64(1500 * time.Microsecond)))
			run.kill = fmt.Sprintf("%v into checkpoint %d", delay.Round(time.Microsecond), ckptLimit)
		}
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokerCrash$")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"="+dir,
		crashRoundEnv+"="+strconv.Itoa(round),
		crashCursorsEnv+"="+strings.Join(cursors, ","),
		crashRandEnv+"="+strconv.FormatUint(rng.Uint64(), 10))
	if mode == 3 {
		cmd.Env = append(cmd.Env, crashCkptEnv+"=1")
	}
	// In some rounds the child's wall clock is an hour behind: its txns
	// must still go on above every earlier one.
	if rng.IntN(4) == 0 {
		cmd.Env = append(cmd.Env, crashBehindEnv+"=1h")
		run.behind = true
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return run, err
	}
	if err := cmd.Start(); err != nil {
		return run, err
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		r := bufio.NewReaderSize(out, 64<<10)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // and a line cut by the kill is dropped
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()

	var timer <-chan time.Time
	var tmpSeen chan bool // the watcher's answer: did the checkpoint's file appear
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
		if err := run.handle(line); err != nil {
			runErr = errors.Join(runErr, err)
			return
		}
		switch {
		case mode == 1 && strings.HasPrefix(line, "ready "):
			timer = time.After(delay)
		case mode == 2 && strings.HasPrefix(line, "ack ") && run.numAcks() == ackLimit:
			kill()
		case mode == 3 && line == "ckpt" && run.ckpts == ckptLimit && !watchTmp:
			timer = time.After(delay)
		case mode == 3 && line == "ckpt" && run.ckpts == ckptLimit:
			// Watch for the checkpoint's file: a temporary one, or a
			// checkpoint newer than those there now.
			ckptDir := filepath.Join(dir, "checkpoints")
			var newest txlog.Txn
			if txns, _ := checkpoint.List(ckptDir); len(txns) > 0 {
				newest = txns[0]
			}
			tmpSeen = make(chan bool, 1)
			go func() {
				for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
					tmps, _ := filepath.Glob(filepath.Join(ckptDir, "*"+checkpoint.TempSuffix))
					txns, _ := checkpoint.List(ckptDir)
					if len(tmps) > 0 || (len(txns) > 0 && txns[0] > newest) {
						tmpSeen <- true
						return
					}
				}
				tmpSeen <- false
			}()
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
		case seen := <-tmpSeen:
			tmpSeen = nil
			if !seen {
				run.kill += " (no file in 50ms)"
			}
			kill()
		case <-watchdog:
			runErr = errors.Join(runErr, errors.New("child still running after 20s"))
			kill()
		}
	}
	if tmpSeen != nil {
		<-tmpSeen // the watcher ends
	}
	// Lines written before the kill took effect count too.
	for line := range lines {
		if err := run.handle(line); err != nil {
			runErr = errors.Join(runErr, err)
		}
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
	if run.stderr != "" {
		runErr = errors.Join(runErr, errors.New("child wrote to stderr (a race, a panic, a warning or an error of the broker)"))
	}
	return run, runErr
}

// ---------------------------------------------------------------------------
// The parent: checking after each kill.

type crashDoc struct {
	data []byte
	ts   txlog.Txn
}

// crashHist is a record the log held at the last check, by a hash of its
// writes, so that later rounds check it cheaply.
type crashHist struct {
	txn txlog.Txn
	sum uint64
}

func crashSum(rec *txlog.Record) uint64 {
	var b []byte
	for _, w := range rec.Writes {
		b = append(b, w.Ref.Collection...)
		b = append(b, 0)
		b = append(b, w.Ref.ID...)
		b = append(b, 0, byte(w.Action))
		b = binary.BigEndian.AppendUint64(b, uint64(w.BeforeTxn))
		b = binary.AppendUvarint(b, uint64(len(w.Before)))
		b = append(b, w.Before...)
		b = binary.AppendUvarint(b, uint64(len(w.After)))
		b = append(b, w.After...)
	}
	return xxhash.Sum64(b)
}

// crashLogBuf collects what the broker and the log say while the parent
// has them open (the checkpointer logs from its own goroutine).
type crashLogBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *crashLogBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *crashLogBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type crashHarness struct {
	t       *testing.T
	rng     *rand.Rand // picks the cursors resumed from besides the last
	dir     string
	subs    []crashSub
	model   map[txlog.Ref]crashDoc // every document, as the checks so far leave it
	hist    []crashHist            // the log after the last check
	base    txlog.Txn              // the last txn before the child started
	maxSeen txlog.Txn              // the highest txn seen anywhere so far
	cursors []string               // where each subscriber starts in the next round

	// Figures for the summary.
	acks, inFlight, inFlightLost            int
	loaded, tmpLeft, childCkpts, dropped    int
	childEvents, resumedEvents, unavailable int
	tornBytes, tornRounds                   int
	overtakenNow                            []string // this round's
}

// overtaken counts a cursor that retention overtook: where the checks
// found it (the child's Subscribe or stream, the feed after the restart,
// or the parent's resume), for which subscriber.
func (h *crashHarness) overtaken(sub, where string) {
	h.unavailable++
	h.overtakenNow = append(h.overtakenNow, sub+" at "+where)
}

func (h *crashHarness) open() (*Broker, *txlog.FileLog, *crashLogBuf, error) {
	logs := &crashLogBuf{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := txlog.OpenFile(h.dir, crashLogOptions(logger))
	if err != nil {
		return nil, nil, logs, err
	}
	b, err := New(crashOptions(l, logger))
	if err != nil {
		l.Close()
		return nil, nil, logs, err
	}
	return b, l, logs, nil
}

func crashReadLog(l txlog.Log, from txlog.Pos) ([]txlog.Record, error) {
	var recs []txlog.Record
	for rec, err := range l.Read(txlog.Cursor{Log: l.ID(), Pos: from}) {
		if err != nil {
			return recs, err
		}
		if rec.Last().Compare(from) > 0 {
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

// commitMarkers commits the parent's two marker writes of a round: an
// upsert and an update, each moving the marker within the red set.
func (h *crashHarness) commitMarkers(b *Broker, round int) (m1, m2 txlog.Txn, err error) {
	ctx := context.Background()
	data := crashData(crashFields{C: -1, R: round, S: 2*round + 1, Color: "red"})
	if m1, err = b.Commit(ctx, func(tx *Tx) error { return tx.Upsert(crashMarker, data) }); err != nil {
		return 0, 0, err
	}
	patch := fmt.Appendf(nil, `{"s":%d}`, 2*round+2)
	if m2, err = b.Commit(ctx, func(tx *Tx) error { return tx.Update(crashMarker, patch) }); err != nil {
		return 0, 0, err
	}
	d, _ := b.Get(crashMarker)
	h.model[crashMarker] = crashDoc{data: bytes.Clone(d.Data), ts: m2}
	return m1, m2, nil
}

// init makes the log's first records and the subscribers' first cursors.
func (h *crashHarness) init() error {
	b, l, _, err := h.open()
	if err != nil {
		return err
	}
	defer b.Close()
	if _, _, err := h.commitMarkers(b, -1); err != nil {
		return err
	}
	recs, err := crashReadLog(l, txlog.Pos{})
	if err != nil || len(recs) != 2 || recs[1].Txn != b.Head() {
		return fmt.Errorf("the log holds %d records (%v) after two commits up to txn %d", len(recs), err, b.Head())
	}
	for i := range recs {
		h.hist = append(h.hist, crashHist{recs[i].Txn, crashSum(&recs[i])})
	}
	h.base = b.Head()
	h.maxSeen = h.base
	c := txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(b.Head())}.String()
	h.cursors = make([]string, len(h.subs))
	for i := range h.cursors {
		h.cursors[i] = c
	}
	return b.Close()
}

var crashTornPattern = regexp.MustCompile(`truncating a record torn by a crash\b.*? bytes=(\d+)`)

// crashCommitterOf returns the committer whose documents rec writes.
func crashCommitterOf(rec *txlog.Record) (int, error) {
	c := -1
	for _, w := range rec.Writes {
		wc, _, ok := parseCrashRef(w.Ref)
		if !ok || (c >= 0 && wc != c) {
			return 0, fmt.Errorf("txn %d writes %s: not one committer's transaction", rec.Txn, w.Ref)
		}
		c = wc
	}
	if c < 0 {
		return 0, fmt.Errorf("txn %d has no writes", rec.Txn)
	}
	return c, nil
}

// crashSeqOf returns the round and seq that rec's data names, if any of
// its writes has data.
func crashSeqOf(rec *txlog.Record) (round, seq int, ok bool) {
	for _, w := range rec.Writes {
		if w.After != nil {
			var f crashFields
			if json.Unmarshal(w.After, &f) == nil {
				return f.R, f.S, true
			}
		}
	}
	return 0, 0, false
}

func crashSameWrites(rec *txlog.Record, want []crashIntentWrite) error {
	if len(rec.Writes) != len(want) {
		return fmt.Errorf("%d writes, the child announced %d", len(rec.Writes), len(want))
	}
	for i, w := range rec.Writes {
		v := want[i]
		if w.Ref != v.ref || w.Action != v.action || !bytes.Equal(w.After, v.after) {
			return fmt.Errorf("write %d is %s %s %s, the child announced %s %s %s", i, w.Action, w.Ref, w.After, v.action, v.ref, v.after)
		}
	}
	return nil
}

// check reopens the broker after a kill and checks it against everything
// known: the earlier rounds' log and state, and what the child announced,
// acknowledged and delivered.
func (h *crashHarness) check(round int, run *crashRun) (string, error) {
	ctx := context.Background()
	h.overtakenNow = h.overtakenNow[:0]
	ckptDir := filepath.Join(h.dir, "checkpoints")
	tmps, _ := filepath.Glob(filepath.Join(ckptDir, "*.tmp"))
	if len(tmps) > 0 {
		h.tmpLeft++
	}
	b, l, logs, err := h.open()
	if err != nil {
		return "", fmt.Errorf("reopening: %w\n%s", err, logs.String())
	}
	defer b.Close()
	said := logs.String()
	if strings.Contains(said, "skipping a checkpoint") || strings.Contains(said, "level=ERROR") {
		return "", fmt.Errorf("reopening: a checkpoint that a SIGKILL should never damage was skipped, or an error:\n%s", said)
	}
	loaded := strings.Contains(said, "state loaded from a checkpoint")
	if loaded {
		h.loaded++
	}
	torn := 0
	for _, m := range crashTornPattern.FindAllStringSubmatch(said, -1) {
		n, _ := strconv.Atoi(m[1])
		torn += n
	}
	if torn > 0 {
		h.tornBytes += torn
		h.tornRounds++
	}

	// 1. The log: everything of earlier rounds that retention has not
	// dropped, then this round's records, each exactly what its committer
	// announced, in each committer's order, every acknowledged one there.
	oldest, lhead := l.Oldest(), l.Head()
	recs, err := crashReadLog(l, oldest)
	if err != nil {
		return "", fmt.Errorf("reading the log after %d: %w", oldest.Txn, err)
	}
	if len(recs) == 0 || lhead != recs[len(recs)-1].Last() || b.Head() != lhead.Txn {
		return "", fmt.Errorf("%d records after the oldest %d; log head %+v, broker head %d", len(recs), oldest.Txn, lhead, b.Head())
	}
	for i := range recs {
		if i > 0 && recs[i].Txn <= recs[i-1].Txn {
			return "", fmt.Errorf("txn %d follows txn %d in the log", recs[i].Txn, recs[i-1].Txn)
		}
	}
	kept := slices.IndexFunc(h.hist, func(r crashHist) bool { return r.txn > oldest.Txn })
	if kept < 0 {
		kept = len(h.hist)
	}
	h.dropped += kept
	old := h.hist[kept:]
	if len(recs) < len(old) {
		return "", fmt.Errorf("the log holds %d records after %d, fewer than the %d that earlier rounds left there", len(recs), oldest.Txn, len(old))
	}
	for i, want := range old {
		if recs[i].Txn != want.txn || crashSum(&recs[i]) != want.sum {
			return "", fmt.Errorf("an earlier round's record at txn %d is now txn %d, or changed", want.txn, recs[i].Txn)
		}
	}
	fresh := recs[len(old):]
	if len(fresh) > 0 && fresh[0].Txn <= h.base {
		return "", fmt.Errorf("txn %d in the log, not above the last txn %d before the child started, and unknown", fresh[0].Txn, h.base)
	}
	if run.ready && run.head != h.base {
		return "", fmt.Errorf("the child started at head %d, the log ended at %d", run.head, h.base)
	}
	var next, acked [crashCommitters]int
	var lastAck [crashCommitters]txlog.Txn
	recOf := map[[2]int]*txlog.Record{}
	for c := range crashCommitters {
		acked[c] = len(run.acks[c])
		next[c] = acked[c]
		for seq, txn := range run.acks[c] {
			if txn <= h.maxSeen {
				return "", fmt.Errorf("committer %d seq %d acknowledged txn %d, not above %d, the highest txn before this round", c, seq, txn, h.maxSeen)
			}
			if seq > 0 && txn <= run.acks[c][seq-1] {
				return "", fmt.Errorf("committer %d seq %d acknowledged txn %d after txn %d", c, seq, txn, run.acks[c][seq-1])
			}
			if txn > oldest.Txn && next[c] == acked[c] {
				next[c] = seq // the first one retention cannot have dropped
			}
			lastAck[c] = txn
		}
		h.acks += acked[c]
	}
	for i := range fresh {
		rec := &fresh[i]
		c, err := crashCommitterOf(rec)
		if err != nil {
			return "", err
		}
		seq := next[c]
		if r, s, ok := crashSeqOf(rec); ok && (r != round || s != seq) {
			what := "out of order or after a gap"
			if s < seq {
				what = "twice"
			}
			return "", fmt.Errorf("txn %d is committer %d's round %d seq %d where its seq %d was due: a commit %s", rec.Txn, c, r, s, seq, what)
		}
		if seq >= len(run.intents[c]) {
			return "", fmt.Errorf("txn %d is committer %d's seq %d, which it never announced", rec.Txn, c, seq)
		}
		if err := crashSameWrites(rec, run.intents[c][seq]); err != nil {
			return "", fmt.Errorf("txn %d, committer %d seq %d: %w", rec.Txn, c, seq, err)
		}
		if seq < acked[c] && rec.Txn != run.acks[c][seq] {
			return "", fmt.Errorf("committer %d seq %d is txn %d in the log, acknowledged as txn %d", c, seq, rec.Txn, run.acks[c][seq])
		}
		recOf[[2]int{c, seq}] = rec
		next[c]++
	}
	for c := range crashCommitters {
		if next[c] < acked[c] {
			return "", fmt.Errorf("committer %d's acknowledged seq %d (txn %d) is missing from the log (oldest %d, head %d)",
				c, next[c], run.acks[c][next[c]], oldest.Txn, lhead.Txn)
		}
	}

	// 2. The state: each committer's announced transactions applied in
	// order, all acknowledged ones and possibly the one in flight, all of
	// its writes or none; every document as they leave it, its sets too.
	model := maps.Clone(h.model)
	for c := range crashCommitters {
		for seq, ws := range run.intents[c] {
			rec := recOf[[2]int{c, seq}]
			var txn txlog.Txn
			switch {
			case seq < acked[c]:
				txn = run.acks[c][seq]
			case rec != nil:
				txn = rec.Txn
				h.inFlight++
			case oldest.Txn > max(h.base, lastAck[c]):
				// In flight and possibly in the log, then dropped with a
				// checkpoint covering it: the state tells.
				applied := 0
				for _, w := range ws {
					if d, ok := b.Get(w.ref); ok == (w.after != nil) && bytes.Equal(d.Data, w.after) {
						applied++
						if ok && (d.TS <= max(h.base, lastAck[c]) || d.TS > oldest.Txn) {
							return "", fmt.Errorf("committer %d's seq %d in flight is in the state at txn %d but not in the log after %d", c, seq, d.TS, oldest.Txn)
						}
						txn = d.TS
					}
				}
				if applied != 0 && applied != len(ws) {
					return "", fmt.Errorf("committer %d's seq %d in flight: %d of its %d writes are in the state", c, seq, applied, len(ws))
				}
				if applied == 0 {
					h.inFlightLost++
					continue
				}
				h.inFlight++
			default:
				h.inFlightLost++
				continue
			}
			for i, w := range ws {
				prev, had := model[w.ref]
				if rec != nil {
					lw := &rec.Writes[i]
					if !bytes.Equal(lw.Before, prev.data) || lw.BeforeTxn != prev.ts {
						return "", fmt.Errorf("txn %d writes %s over version %d %s; the one before was %d %s", txn, w.ref, lw.BeforeTxn, lw.Before, prev.ts, prev.data)
					}
				}
				if had == (w.action == txlog.ActionCreate) {
					return "", fmt.Errorf("committer %d seq %d %ss %s, which exists: %v", c, seq, w.action, w.ref, had)
				}
				if w.after == nil {
					delete(model, w.ref)
				} else {
					model[w.ref] = crashDoc{data: w.after, ts: txn}
				}
			}
		}
	}
	var refs []txlog.Ref
	for c := range crashCommitters {
		for k := range crashDocs {
			refs = append(refs, crashRef(c, k))
		}
	}
	refs = append(refs, crashMarker)
	for _, ref := range refs {
		want, wok := model[ref]
		got, ok := b.Get(ref)
		if ok != wok || !bytes.Equal(got.Data, want.data) || (ok && got.TS != want.ts) {
			return "", fmt.Errorf("%s is %d %s (exists %v) after the restart, want %d %s (exists %v)", ref, got.TS, got.Data, ok, want.ts, want.data, wok)
		}
	}
	if err := h.checkSets(b, model); err != nil {
		return "", err
	}

	// 3. The txn sequence: the head is at least every acknowledged txn
	// (the log check above found each one), and the parent's commits go
	// above everything seen.
	for c := range crashCommitters {
		if lastAck[c] > b.Head() {
			return "", fmt.Errorf("head %d below committer %d's acknowledged txn %d", b.Head(), c, lastAck[c])
		}
	}
	h.maxSeen = max(h.maxSeen, b.Head())

	// 4. Subscribers. What the child's subscriber received from cursor c
	// is the beginning of what the restarted broker reads after c, event
	// for event: nothing that did not survive, no gap, no duplicate.
	last := make([]string, len(h.subs))
	mids := make([]string, len(h.subs)) // a cursor from the middle of what the child received
	fresher := txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(b.Head())}.String()
	gone := func(cursor string) bool {
		c, err := txlog.ParseCursor(cursor)
		return err == nil && c.Pos.Txn <= oldest.Txn
	}
	for i, sp := range h.subs {
		cur := h.cursors[i]
		evs := run.events[i]
		last[i] = cur
		if run.subFail[i] != "" {
			if strings.HasPrefix(run.subFail[i], "unavailable ") && gone(cur) {
				h.overtaken(sp.name, "child-subscribe")
				last[i] = fresher
				continue
			}
			return "", fmt.Errorf("subscriber %s: Subscribe from %s failed in the child: %s", sp.name, cur, run.subFail[i])
		}
		if len(evs) == 0 {
			if run.ended[i] {
				return "", fmt.Errorf("subscriber %s: its stream ended without an event", sp.name)
			}
			continue
		}
		if evs[0].cursor != cur || !strings.HasPrefix(evs[0].json, `{"type":"start"`) {
			return "", fmt.Errorf("subscriber %s started from %s with %s %s", sp.name, cur, evs[0].cursor, evs[0].json)
		}
		evs = evs[1:]
		if n := len(evs); n > 0 && strings.HasPrefix(evs[n-1].json, `{"type":"error"`) {
			var e wireEvent
			if err := json.Unmarshal([]byte(evs[n-1].json), &e); err != nil || e.Event.Code != subscription.CodeHistoryUnavailable || !gone(e.Event.Cursor) {
				return "", fmt.Errorf("subscriber %s ended with %s (oldest %d)", sp.name, evs[n-1].json, oldest.Txn)
			}
			h.overtaken(sp.name, "child-stream")
			last[i] = fresher
			continue
		} else if run.ended[i] {
			return "", fmt.Errorf("subscriber %s: its stream ended without an error event", sp.name)
		}
		opt := sp.opt
		opt.Cursor = cur
		p, err := b.ReadPage(ctx, sp.target, opt, 1<<20, false)
		if errors.Is(err, ErrHistoryUnavailable) && gone(cur) {
			h.overtaken(sp.name, "child-feed")
			last[i] = fresher
			continue
		}
		if err != nil || p.More {
			return "", fmt.Errorf("subscriber %s: reading after %s: %v (more %v)", sp.name, cur, err, p.More)
		}
		if i == crashAll {
			if err := crashCheckAll(p.Events, cur, recs); err != nil {
				return "", fmt.Errorf("subscriber %s: the feed after %s: %w", sp.name, cur, err)
			}
		}
		if len(evs) > len(p.Events) {
			return "", fmt.Errorf("subscriber %s received %d events after %s, the restarted broker has %d: an event of a commit that did not survive (first extra: %s)",
				sp.name, len(evs), cur, len(p.Events), evs[len(p.Events)].json)
		}
		for j, e := range evs {
			w := &p.Events[j]
			if e.cursor != w.CursorString() || e.json != string(w.JSON) {
				return "", fmt.Errorf("subscriber %s's event %d after %s:\n%s\nthe restarted broker has\n%s", sp.name, j, cur, e.json, w.JSON)
			}
		}
		h.childEvents += len(evs)
		if len(evs) > 0 {
			last[i] = evs[len(evs)-1].cursor
		}
		if len(evs) > 1 {
			mids[i] = h.pickCursor(evs[:len(evs)-1])
		}
	}

	// A subscriber resuming from its last cursor in the restarted broker
	// receives exactly the events after it, then those of new commits.
	h.model = model
	n, err := h.resume(b, l, round, last, mids, recs, gone, fresher)
	if err != nil {
		return "", err
	}
	h.resumedEvents += n
	h.cursors = last
	h.childCkpts += run.ckptsOK
	ckpts, _ := checkpoint.List(ckptDir)
	segs, _ := filepath.Glob(filepath.Join(h.dir, "*.seg"))
	what := fmt.Sprintf("head %d, oldest %d, %d checkpoints (loaded one: %v), %d segments, %d temporary checkpoint files left",
		lhead.Txn, oldest.Txn, len(ckpts), loaded, len(segs), len(tmps))
	if len(h.overtakenNow) > 0 {
		what += "; cursors overtaken by retention: " + strings.Join(h.overtakenNow, ", ")
	}
	return what, nil
}

// checkSets checks the restarted broker's sets against the model: the
// collection, and each color with its values, by snapshots.
func (h *crashHarness) checkSets(b *Broker, model map[txlog.Ref]crashDoc) error {
	type member struct {
		Document struct {
			Ref  txlog.Ref       `json:"ref"`
			TS   txlog.Txn       `json:"ts"`
			Data json.RawMessage `json:"data"`
		} `json:"document"`
		Index *struct {
			Values []int `json:"values"`
		} `json:"index"`
	}
	targets := []subscription.Target{subscription.Collection(crashColl)}
	for _, col := range crashColors {
		targets = append(targets, must(subscription.Match("crash_by_color", col)))
	}
	for ti, target := range targets {
		opt := subscription.Options{Snapshot: true, Data: true, SnapshotPageSize: subscription.MaxSnapshotPageSize}
		if ti > 0 {
			opt.Fields = subscription.DefaultFields | subscription.FieldIndex
		}
		s, err := b.Subscribe(context.Background(), target, opt)
		if err != nil {
			return err
		}
		var got []member
		for e := range s.Events() {
			if e.Type == subscription.TypeStart {
				continue
			}
			var page struct {
				Type  string `json:"type"`
				Event struct {
					Data []member `json:"data"`
				} `json:"event"`
			}
			if err := json.Unmarshal(e.JSON, &page); err != nil || page.Type != "snapshot" {
				s.Close()
				return fmt.Errorf("%v: %s instead of a snapshot page (%v)", target, e.JSON, err)
			}
			got = append(got, page.Event.Data...)
			if e.Action == subscription.ActionLastPage {
				break
			}
		}
		s.Close()
		want := map[txlog.Ref]crashFields{}
		for ref, d := range model {
			var f crashFields
			if err := json.Unmarshal(d.data, &f); err != nil {
				return err
			}
			if ti == 0 || f.Color == crashColors[ti-1] {
				want[ref] = f
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("%v has %d members after the restart, want %d", target, len(got), len(want))
		}
		for _, m := range got {
			ref := m.Document.Ref
			f, ok := want[ref]
			d := model[ref]
			if !ok || m.Document.TS != d.ts || !bytes.Equal(m.Document.Data, d.data) ||
				(ti > 0 && (m.Index == nil || !slices.Equal(m.Index.Values, []int{f.S}))) {
				return fmt.Errorf("%v after the restart has member %s ts %d %s (index %+v); want it %v, ts %d %s", target, ref, m.Document.TS, m.Document.Data, m.Index, ok, d.ts, d.data)
			}
		}
	}
	return nil
}

// crashCheckAll checks the collection subscriber's events after cursor
// against the log records alone: one event per write, in order, add for a
// create, update for an update, remove for a delete.
func crashCheckAll(evs []subscription.Event, cursor string, recs []txlog.Record) error {
	c, err := txlog.ParseCursor(cursor)
	if err != nil {
		return err
	}
	actions := map[txlog.Action]string{txlog.ActionCreate: "add", txlog.ActionUpdate: "update", txlog.ActionDelete: "remove"}
	j := 0
	for i := range recs {
		for op, w := range recs[i].Writes {
			pos := txlog.Pos{Txn: recs[i].Txn, Op: uint32(op)}
			if pos.Compare(c.Pos) <= 0 {
				continue
			}
			if j >= len(evs) {
				return fmt.Errorf("no event for the write at %d.%d, %s %s", pos.Txn, pos.Op, w.Action, w.Ref)
			}
			e := &evs[j]
			var got wireEvent
			json.Unmarshal(e.JSON, &got)
			var doc struct {
				Ref txlog.Ref `json:"ref"`
			}
			json.Unmarshal(got.Event.Document, &doc)
			if e.Cursor.Pos != pos || e.Cursor.Seq != 0 || e.Action != actions[w.Action] || got.Event.Action != e.Action || doc.Ref != w.Ref {
				return fmt.Errorf("event %d is %s; the write at %d.%d is %s %s", j, e.JSON, pos.Txn, pos.Op, w.Action, w.Ref)
			}
			j++
		}
	}
	if j != len(evs) {
		return fmt.Errorf("%d events for %d writes: %s", len(evs), j, evs[j].JSON)
	}
	return nil
}

// crashResumer is a subscription the parent resumes from a subscriber's
// last cursor, read by its own goroutine.
type crashResumer struct {
	name   string
	target subscription.Target
	opt    subscription.Options
	cursor string
	want   []subscription.Event
	sub    *Subscription
	mu     sync.Mutex
	got    []subscription.Event
	notify chan struct{}
	done   chan struct{}
}

func (r *crashResumer) run() {
	defer close(r.done)
	for e := range r.sub.Events() {
		r.mu.Lock()
		r.got = append(r.got, e)
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
}

// firstDiff describes the first event received that is not the one due.
func (r *crashResumer) firstDiff() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for j := 1; j < len(r.got) && j <= len(r.want); j++ {
		if w := &r.want[j-1]; !bytes.Equal(r.got[j].JSON, w.JSON) {
			return fmt.Sprintf("; event %d is\n%s\nwhere the feed has\n%s", j-1, r.got[j].JSON, w.JSON)
		}
	}
	return ""
}

func (r *crashResumer) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// pickCursor picks a cursor among evs to resume from: often the first
// event of a write that has two (a document moving within a set), where
// resuming must deliver the second.
func (h *crashHarness) pickCursor(evs []crashEvent) string {
	var pairs []string
	for j := 0; j+1 < len(evs); j++ {
		a, err1 := txlog.ParseCursor(evs[j].cursor)
		b, err2 := txlog.ParseCursor(evs[j+1].cursor)
		if err1 == nil && err2 == nil && a.Pos == b.Pos && a.Seq == 0 && b.Seq == 1 {
			pairs = append(pairs, evs[j].cursor)
		}
	}
	if len(pairs) > 0 && h.rng.IntN(2) == 0 {
		return pairs[h.rng.IntN(len(pairs))]
	}
	return evs[h.rng.IntN(len(evs))].cursor
}

// resume subscribes from each subscriber's last cursor, and from the one
// picked in the middle, commits the round's markers, and checks that each
// subscription delivers exactly the events after its cursor (read from
// the log before the markers) and the markers' events, and, when the
// broker closes, nothing more than shutting_down. It closes b, and records
// the markers in the model and the history.
func (h *crashHarness) resume(b *Broker, l *txlog.FileLog, round int, last, mids []string, recs []txlog.Record, gone func(string) bool, fresher string) (int, error) {
	ctx := context.Background()
	var rs []*crashResumer
	defer func() {
		b.Close()
		for _, r := range rs {
			<-r.done
		}
	}()
	type from struct {
		i      int
		cursor string
		last   bool
	}
	var froms []from
	for i := range h.subs {
		froms = append(froms, from{i, last[i], true})
		if mids[i] != "" {
			froms = append(froms, from{i, mids[i], false})
		}
	}
	for _, f := range froms {
		sp := h.subs[f.i]
		opt := sp.opt
		opt.Cursor = f.cursor
		p, err := b.ReadPage(ctx, sp.target, opt, 1<<20, false)
		if errors.Is(err, ErrHistoryUnavailable) && gone(f.cursor) {
			h.overtaken(sp.name, "resume")
			if f.last {
				last[f.i] = fresher
			}
			continue
		}
		if err != nil || p.More {
			return 0, fmt.Errorf("subscriber %s: reading after %s: %v (more %v)", sp.name, f.cursor, err, p.More)
		}
		if f.i == crashAll {
			if err := crashCheckAll(p.Events, f.cursor, recs); err != nil {
				return 0, fmt.Errorf("subscriber %s: the feed after %s: %w", sp.name, f.cursor, err)
			}
		}
		s, err := b.Subscribe(ctx, sp.target, opt)
		if err != nil {
			return 0, fmt.Errorf("subscriber %s: resuming from %s: %w", sp.name, f.cursor, err)
		}
		r := &crashResumer{name: sp.name, target: sp.target, opt: opt, cursor: f.cursor, want: p.Events, sub: s, notify: make(chan struct{}, 1), done: make(chan struct{})}
		rs = append(rs, r)
		go r.run()
	}
	head := b.Head()
	m1, m2, err := h.commitMarkers(b, round)
	if err != nil {
		return 0, fmt.Errorf("committing after the restart: %w", err)
	}
	if m1 <= h.maxSeen || m2 <= m1 {
		return 0, fmt.Errorf("the parent's commits after the restart got txns %d and %d, not above %d, the highest seen so far", m1, m2, h.maxSeen)
	}
	markers, err := crashReadLog(l, txlog.AfterTxn(head))
	if err != nil || len(markers) != 2 || markers[0].Txn != m1 || markers[1].Txn != m2 {
		return 0, fmt.Errorf("the log after %d: %d records (%v), want the markers %d and %d", head, len(markers), err, m1, m2)
	}
	h.hist = h.hist[:0]
	for _, rec := range slices.Concat(recs, markers) {
		h.hist = append(h.hist, crashHist{rec.Txn, crashSum(&rec)})
	}
	h.base, h.maxSeen = m2, m2

	// The markers' events, for those that have some.
	for i, r := range rs {
		after := r.cursor
		if n := len(r.want); n > 0 {
			after = r.want[n-1].CursorString()
		}
		opt := r.opt
		opt.Cursor = after
		p, err := b.ReadPage(ctx, r.target, opt, 1<<20, false)
		if err != nil {
			return 0, fmt.Errorf("resumer %d (%s): reading after %s: %w", i, r.name, after, err)
		}
		for _, e := range p.Events {
			if e.Txn != m1 && e.Txn != m2 {
				return 0, fmt.Errorf("resumer %s: after the markers the feed has %s", r.name, e.JSON)
			}
		}
		r.want = append(r.want, p.Events...)
	}
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for _, r := range rs {
	wait:
		for r.count() < 1+len(r.want) {
			select {
			case <-r.notify:
			case <-r.done:
				break wait
			case <-deadline.C:
				return 0, fmt.Errorf("resumer %s from %s: %d events after 15s, want %d%s", r.name, r.cursor, r.count(), 1+len(r.want), r.firstDiff())
			}
		}
	}
	if err := b.Close(); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rs {
		select {
		case <-r.done:
		case <-deadline.C:
			return 0, fmt.Errorf("resumer %s: its stream did not end after Close", r.name)
		}
		got := r.got
		if len(got) == 0 || got[0].Type != subscription.TypeStart || got[0].CursorString() != r.cursor {
			return 0, fmt.Errorf("resumer %s from %s: no start event with its cursor (%d events)", r.name, r.cursor, len(got))
		}
		got = got[1:]
		for j := range min(len(got), len(r.want)) {
			if got[j].CursorString() != r.want[j].CursorString() || !bytes.Equal(got[j].JSON, r.want[j].JSON) {
				return 0, fmt.Errorf("resumer %s from %s, event %d:\n%s\nthe feed has\n%s", r.name, r.cursor, j, got[j].JSON, r.want[j].JSON)
			}
		}
		if len(got) != len(r.want)+1 {
			return 0, fmt.Errorf("resumer %s from %s: %d events and the end, want %d and the end", r.name, r.cursor, len(got), len(r.want))
		}
		end := parse(h.t, got[len(got)-1])
		lastCursor := r.cursor
		if n := len(r.want); n > 0 {
			lastCursor = r.want[n-1].CursorString()
		}
		if end.Type != "error" || end.Event.Code != subscription.CodeShuttingDown || end.Event.Cursor != lastCursor {
			return 0, fmt.Errorf("resumer %s from %s ended with %s, want shutting_down at %s", r.name, r.cursor, got[len(got)-1].JSON, lastCursor)
		}
		n += len(r.want)
	}
	return n, nil
}

// TestBrokerCrash kills a child process serving commits under load, with
// subscribers attached, with SIGKILL at random points, round after round
// on the same directory, with checkpoints written in the background and
// retention dropping what they cover. After every kill, the restarted
// broker holds every acknowledged commit in its state and its log (and of
// the commits in flight, each whole or not at all, and none after a gap),
// its txns go on upward, and a subscriber resuming from its last cursor
// receives exactly the events after it.
func TestBrokerCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild() // never returns
		return
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
	rounds := crashRounds
	if testing.Short() {
		rounds = crashShortRounds
	}

	h := &crashHarness{t: t, rng: rand.New(rand.NewPCG(seed, 1)), dir: t.TempDir(), subs: crashSubs(), model: map[txlog.Ref]crashDoc{}}
	if err := h.init(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for round := range rounds {
		t0 := time.Now()
		run, err := runCrashChild(h.dir, round, h.cursors, rng)
		t1 := time.Now()
		if err != nil {
			t.Fatalf("seed %d round %d (kill %s): %v\nchild stderr:\n%s", seed, round, run.kill, err, run.stderr)
		}
		what, err := h.check(round, run)
		if err != nil {
			t.Fatalf("seed %d round %d (kill %s, %d acks): %v", seed, round, run.kill, run.numAcks(), err)
		}
		evs := 0
		for _, e := range run.events {
			evs += len(e)
		}
		clock := ""
		if run.behind {
			clock = ", clock 1h behind"
		}
		t.Logf("round %2d: kill %-26s %4d acks, %5d events, %2d checkpoints written%s; %s; child %v, checks %v",
			round, run.kill, run.numAcks(), evs, run.ckptsOK, clock, what,
			t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	}
	t.Logf("%d rounds in %v: %d acks, %d commits recovered (%d of them unacknowledged), %d in flight lost; "+
		"%d restarts loaded a checkpoint, %d checkpoints written by the children, %d rounds left a temporary checkpoint file, %d records dropped by retention; "+
		"%d events of the children's subscribers and %d of resumed subscribers checked, %d cursors overtaken by retention; %d torn bytes in %d rounds",
		rounds, time.Since(start).Round(time.Millisecond), h.acks, h.acks+h.inFlight, h.inFlight, h.inFlightLost,
		h.loaded, h.childCkpts, h.tmpLeft, h.dropped,
		h.childEvents, h.resumedEvents, h.unavailable, h.tornBytes, h.tornRounds)
	if h.acks == 0 || h.loaded == 0 || h.dropped == 0 || h.childEvents == 0 {
		t.Fatalf("the test exercised too little: %d acks, %d checkpoint loads, %d records dropped, %d events", h.acks, h.loaded, h.dropped, h.childEvents)
	}
}
