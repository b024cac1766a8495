package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/txlog"
)

// TestBrokerCrash is spread over five files, one idea each:
//
//   - crash_test.go (this one): the test, round after round, and the
//     harness that carries what one round leaves to the next;
//   - crash_child_test.go: the child, and what it writes and subscribes to;
//   - crash_run_test.go: running one child and killing it (with
//     internal/crashtest, which the txlog's crash test shares);
//   - crash_check_test.go and crash_resume_test.go: the checks after each
//     kill, one function each, in the order crashHarness.check runs them.

// TestBrokerCrash kills a child process serving commits under load, with
// subscribers attached, with SIGKILL at random points, round after round
// on the same directory, with checkpoints written in the background and
// retention dropping what they cover. After every kill, the restarted
// broker holds every acknowledged commit in its state and its log (and of
// the commits in flight, each whole or not at all, and none after a gap),
// its txns go on upward, and a subscriber resuming from its last cursor
// receives exactly the events after it.
//
// Guarantee 6 (broker package doc) under SIGKILL, with 3 and 4 across the
// restart (a subscriber whose cursor retention overtook is told so), 9
// for the commits in flight, and 7 for the resumed streams at Close.
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

// ---------------------------------------------------------------------------
// The harness: what one round leaves to the next.

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

// crashRound is what the checks of one round share: what the child
// reported, the broker reopened on the directory after the kill, and what
// the checks found so far. Each check reads what the ones before it found.
type crashRound struct {
	n    int       // the round
	run  *crashRun // what the child announced, acknowledged and delivered
	b    *Broker   // reopened after the kill
	l    *txlog.FileLog
	said string   // what the broker and the log logged while reopening
	tmps []string // temporary checkpoint files the kill left

	oldest, head txlog.Pos      // the log's oldest retained position, and its head
	recs         []txlog.Record // the log after oldest
	fresh        []txlog.Record // those of recs this round's child wrote

	acked   [crashCommitters]int       // each committer's acknowledged commits
	lastAck [crashCommitters]txlog.Txn // and the txn of its last one
	recOf   map[[2]int]*txlog.Record   // this round's records, by committer and seq
	model   map[txlog.Ref]crashDoc     // every document as this round leaves it

	last    []string // per subscriber, the cursor to resume from
	mids    []string // per subscriber, a cursor from the middle of what the child received
	fresher string   // a cursor at the head, for subscribers whose cursor retention overtook
}

// gone reports whether retention may have dropped the events after cursor.
func (r *crashRound) gone(cursor string) bool {
	c, err := txlog.ParseCursor(cursor)
	return err == nil && c.Pos.Txn <= r.oldest.Txn
}

// check reopens the broker after a kill and checks it against everything
// known: the earlier rounds' log and state, and what the child announced,
// acknowledged and delivered. It returns a line about the round for the
// test's log.
func (h *crashHarness) check(round int, run *crashRun) (string, error) {
	h.overtakenNow = h.overtakenNow[:0]
	r := &crashRound{n: round, run: run}
	ckptDir := filepath.Join(h.dir, "checkpoints")
	r.tmps, _ = filepath.Glob(filepath.Join(ckptDir, "*.tmp"))
	if len(r.tmps) > 0 {
		h.tmpLeft++
	}
	b, l, logs, err := h.open()
	if err != nil {
		return "", fmt.Errorf("reopening: %w\n%s", err, logs.String())
	}
	defer b.Close()
	r.b, r.l, r.said = b, l, logs.String()

	for _, check := range []func(*crashRound) error{
		// The restart.
		h.checkRestartClean,
		// The log.
		h.checkLogReadable,
		h.checkEarlierRoundsKept,
		h.checkChildStartedAtBase,
		h.checkAcksUpward,
		h.checkLogHoldsAcks,
		// The state.
		h.checkStateMatchesModel,
		h.checkSetsMatchModel,
		h.checkHeadCoversAcks,
		// The subscribers.
		h.checkSubscribersPrefix,
		h.checkResumes,
	} {
		if err := check(r); err != nil {
			return "", err
		}
	}

	h.cursors = r.last
	h.childCkpts += run.ckptsOK
	ckpts, _ := checkpoint.List(ckptDir)
	segs, _ := filepath.Glob(filepath.Join(h.dir, "*.seg"))
	what := fmt.Sprintf("head %d, oldest %d, %d checkpoints (loaded one: %v), %d segments, %d temporary checkpoint files left",
		r.head.Txn, r.oldest.Txn, len(ckpts), strings.Contains(r.said, crashLoadedMsg), len(segs), len(r.tmps))
	if len(h.overtakenNow) > 0 {
		what += "; cursors overtaken by retention: " + strings.Join(h.overtakenNow, ", ")
	}
	return what, nil
}
