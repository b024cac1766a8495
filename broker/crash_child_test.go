package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// The child process of TestBrokerCrash (see crash_test.go for the parent):
// the schema and documents it writes, its subscribers, and its committers.

// TestBrokerCrash runs this test binary again as a child that serves
// commits under load, with subscribers attached, until the parent kills it
// with SIGKILL; round after round on the same directory. The child is
// TestBrokerCrash itself, run alone with crashChildEnv set: it never
// returns (it is killed, or exits on its own with a message on stderr), so
// TestMain's leak check never runs in it.
const (
	crashChildEnv   = "TIDINGS_BROKER_CRASH_CHILD"       // the directory
	crashRoundEnv   = "TIDINGS_BROKER_CRASH_ROUND"       // the round, written into every document
	crashCursorsEnv = "TIDINGS_BROKER_CRASH_CURSORS"     // the subscribers' cursors, comma-separated
	crashCkptEnv    = "TIDINGS_BROKER_CRASH_CHECKPOINTS" // "1": the child also checkpoints on its own, announcing each
	crashRandEnv    = "TIDINGS_BROKER_CRASH_RAND"        // seeds the child's committers
	crashBehindEnv  = "TIDINGS_BROKER_CRASH_BEHIND"      // how far the child's clock is behind, as a time.Duration
	crashSeedEnv    = "TIDINGS_CRASH_SEED"               // replays a logged seed

	crashCommitters  = 4
	crashDocs        = 96 // documents per committer
	crashRounds      = 25
	crashShortRounds = 20
	crashColl        = "crash"
)

var crashSchema = index.Schema{
	Collections: []string{crashColl},
	Indexes: []index.Definition{
		// An update that keeps the color changes the value: the document
		// leaves and enters the set in one write (two events, Seq 0 and 1).
		{Name: "crash_by_color", Collection: crashColl, Terms: []string{"color"}, Values: []string{"s"}},
		{Name: "crash_by_owner", Collection: crashColl, Terms: []string{"c"}},
	},
}

var crashColors = []string{"red", "green", "blue", "gold"}

// crashLogOptions: small segments, and a size bound that retention reaches
// in every round. The checkpoints are further apart than the bound, so
// what retention may drop is often decided by the floor that the oldest
// checkpoint sets, and a restart then needs that checkpoint. A round
// writes less than a checkpoint interval, so that the log after the
// restart still holds the round and the parent can check what the child's
// subscribers received against it.
func crashLogOptions(logger *slog.Logger) txlog.FileOptions {
	return txlog.FileOptions{SegmentSize: 16 << 10, MaxBytes: 64 << 10, Logger: logger}
}

// crashCheckpoints: a checkpoint every 128 KiB of writes (about 350
// commits), in the background, during the load.
var crashCheckpoints = CheckpointOptions{Every: 128 << 10, Keep: 2}

func crashOptions(l txlog.Log, logger *slog.Logger) Options {
	return Options{Log: l, Schema: crashSchema, Checkpoint: crashCheckpoints, Logger: logger}
}

// The documents: committer c owns crash/c<c>-d<k>; the parent owns
// crash/marker. Every write names its round and its committer's sequence
// number, so that a record tells whose commit it is.
type crashFields struct {
	C     int    `json:"c"`
	K     int    `json:"k"`
	R     int    `json:"r"`
	S     int    `json:"s"`
	Color string `json:"color"`
	Pad   string `json:"pad"`
}

func crashData(f crashFields) []byte {
	return fmt.Appendf(nil, `{"c":%d,"k":%d,"r":%d,"s":%d,"color":%q,"pad":%q}`, f.C, f.K, f.R, f.S, f.Color, f.Pad)
}

func crashRef(c, k int) txlog.Ref {
	return txlog.Ref{Collection: crashColl, ID: fmt.Sprintf("c%d-d%d", c, k)}
}

var crashMarker = txlog.Ref{Collection: crashColl, ID: "marker"}

var crashRefPattern = regexp.MustCompile(`^c(\d+)-d(\d+)$`)

func parseCrashRef(ref txlog.Ref) (c, k int, ok bool) {
	m := crashRefPattern.FindStringSubmatch(ref.ID)
	if ref.Collection != crashColl || m == nil {
		return 0, 0, false
	}
	c, _ = strconv.Atoi(m[1])
	k, _ = strconv.Atoi(m[2])
	return c, k, c < crashCommitters && k < crashDocs
}

// crashSub is one of the child's subscribers. The parent hands each one
// the cursor to start from and checks what it received.
type crashSub struct {
	name    string
	target  subscription.Target
	opt     subscription.Options // without the cursor
	batches bool                 // read with Batches rather than Events
}

func crashSubs() []crashSub {
	return []crashSub{
		{name: "red", target: must(subscription.Match("crash_by_color", "red")),
			opt: subscription.Options{Fields: subscription.FieldAction | subscription.FieldDocument | subscription.FieldIndex, Data: true}},
		{name: "doc", target: subscription.Document(crashRef(0, 0)),
			opt: subscription.Options{Fields: subscription.FieldAction | subscription.FieldDocument | subscription.FieldPrev | subscription.FieldDiff}},
		// Every write, through a queue of 4: it overflows all the time and
		// reads the log to catch up.
		{name: "all", target: subscription.Collection(crashColl), opt: subscription.Options{Updates: true, Buffer: 4}},
		{name: "owner1", target: must(subscription.Match("crash_by_owner", 1)),
			opt: subscription.Options{Updates: true, Data: true, Buffer: 16}, batches: true},
		// A queue of 3 overflows between the two events of a write that
		// moves a document within the set, and catching up must then
		// deliver the second.
		{name: "gold", target: must(subscription.Match("crash_by_color", "gold")),
			opt: subscription.Options{Fields: subscription.FieldAction | subscription.FieldDocument | subscription.FieldIndex, Buffer: 3}},
	}
}

// crashAll is the index of the collection subscriber, whose events the
// parent also derives from the log records alone.
const crashAll = 2

// ---------------------------------------------------------------------------
// The child.

// crashOut writes the child's lines to stdout, one whole line per write.
type crashOut struct{ mu sync.Mutex }

func (o *crashOut) say(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := os.Stdout.WriteString(line); err != nil {
		os.Exit(2) // the parent is gone
	}
}

// crashChildLog receives the child's log lines: a checkpoint written is
// announced to the parent, and warnings and errors go to stderr, where the
// parent fails the test on them.
type crashChildLog struct{ out *crashOut }

func (w crashChildLog) Write(p []byte) (int, error) {
	s := string(p)
	if strings.Contains(s, "checkpoint written") {
		w.out.say("ckptdone\n")
	}
	if strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

func crashFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "broker crash child: "+format+"\n", args...)
	os.Exit(2)
}

// crashChild opens the broker in the directory, says "ready <head>",
// starts the subscribers from the cursors it was given, printing
// "ev <subscriber> <cursor> <json>" for every event, and runs
// crashCommitters committers: before each Commit "try <c> <seq>" and each
// write (doc, action, data after), after it "ack <c> <seq> <txn>".
func crashChild() {
	dir := os.Getenv(crashChildEnv)
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	if err != nil {
		crashFail("bad round: %v", err)
	}
	seed, err := strconv.ParseUint(os.Getenv(crashRandEnv), 10, 64)
	if err != nil {
		crashFail("bad seed: %v", err)
	}
	subs := crashSubs()
	cursors := strings.Split(os.Getenv(crashCursorsEnv), ",")
	if len(cursors) != len(subs) {
		crashFail("%d cursors for %d subscribers", len(cursors), len(subs))
	}
	out := &crashOut{}
	logger := slog.New(slog.NewTextHandler(crashChildLog{out}, nil))
	lopt := crashLogOptions(logger)
	if s := os.Getenv(crashBehindEnv); s != "" {
		behind, err := time.ParseDuration(s)
		if err != nil {
			crashFail("bad clock: %v", err)
		}
		lopt.Now = func() time.Time { return time.Now().Add(-behind) }
	}
	l, err := txlog.OpenFile(dir, lopt)
	if err != nil {
		crashFail("open the log: %v", err)
	}
	b, err := New(crashOptions(l, logger))
	if err != nil {
		crashFail("open the broker: %v", err)
	}
	out.say("ready %d\n", b.Head())
	ctx := context.Background()
	for i, sp := range subs {
		opt := sp.opt
		opt.Cursor = cursors[i]
		s, err := b.Subscribe(ctx, sp.target, opt)
		if err != nil {
			what := "failed"
			if errors.Is(err, ErrHistoryUnavailable) {
				what = "unavailable"
			}
			out.say("subfail %d %s %s\n", i, what, strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		go func() {
			show := func(e *subscription.Event) {
				c := e.CursorString()
				if c == "" {
					c = "-"
				}
				out.say("ev %d %s %s\n", i, c, e.JSON)
			}
			if sp.batches {
				for batch := range s.Batches() {
					for j := range batch {
						show(&batch[j])
					}
				}
			} else {
				for e := range s.Events() {
					show(&e)
				}
			}
			out.say("evend %d\n", i)
		}()
	}
	for c := range crashCommitters {
		go crashCommitter(b, out, c, round, rand.New(rand.NewPCG(seed, uint64(c))))
	}
	if os.Getenv(crashCkptEnv) == "1" {
		go func() {
			r := rand.New(rand.NewPCG(seed, 1<<32))
			for {
				time.Sleep(time.Duration(2000+r.IntN(8000)) * time.Microsecond)
				out.say("ckpt\n")
				if _, err := b.Checkpoint(ctx); err != nil {
					crashFail("checkpoint: %v", err)
				}
			}
		}()
	}
	// The parent kills well before this; exit on our own should it not.
	time.Sleep(60 * time.Second)
	crashFail("not killed")
}

// crashWrite is one write a committer plans.
type crashWrite struct {
	k      int
	op     string // create, upsert, replace, update or delete
	arg    []byte // the data or patch given to op
	after  []byte // the document's data after the write; nil if deleted
	action txlog.Action
	pad    int // the pad after the write; -1 if deleted
}

// crashPlan plans committer c's transaction seq: one to three of its
// documents, created where missing, else deleted, replaced or updated,
// with a new color (moving them between sets) and always a new s.
func crashPlan(r *rand.Rand, c, round, seq int, pads []int) []crashWrite {
	n := 1 + r.IntN(3)
	var ws []crashWrite
	used := map[int]bool{}
	for len(ws) < n {
		k := r.IntN(crashDocs)
		if r.IntN(4) == 0 {
			k = 0 // the document stream's document gets more writes
		}
		if used[k] {
			continue
		}
		used[k] = true
		f := crashFields{C: c, K: k, R: round, S: seq, Color: crashColors[r.IntN(len(crashColors))], Pad: strings.Repeat("x", r.IntN(120))}
		w := crashWrite{k: k, pad: -1}
		switch p := r.IntN(10); {
		case pads[k] < 0:
			w.op, w.action = "create", txlog.ActionCreate
			if p < 3 {
				w.op = "upsert"
			}
		case p < 2:
			w.op, w.action = "delete", txlog.ActionDelete
		case p < 5:
			w.op, w.action = "replace", txlog.ActionUpdate
			if p == 4 {
				w.op = "upsert"
			}
		default:
			w.op, w.action = "update", txlog.ActionUpdate
			f.Pad = strings.Repeat("x", pads[k])
			w.arg = fmt.Appendf(nil, `{"r":%d,"s":%d,"color":%q}`, round, seq, f.Color)
		}
		if w.action != txlog.ActionDelete {
			w.after, w.pad = crashData(f), len(f.Pad)
			if w.arg == nil {
				w.arg = w.after
			}
		}
		ws = append(ws, w)
	}
	return ws
}

// crashCommitter commits forever, announcing each transaction before
// Commit and acknowledging it after.
func crashCommitter(b *Broker, out *crashOut, c, round int, r *rand.Rand) {
	pads := make([]int, crashDocs)
	for k := range pads {
		pads[k] = -1
		if d, ok := b.Get(crashRef(c, k)); ok {
			var f crashFields
			if err := json.Unmarshal(d.Data, &f); err != nil {
				crashFail("committer %d: %s: %v", c, d.Data, err)
			}
			pads[k] = len(f.Pad)
		}
	}
	ctx := context.Background()
	var line []byte
	for seq := 0; ; seq++ {
		plan := crashPlan(r, c, round, seq, pads)
		line = fmt.Appendf(line[:0], "try %d %d", c, seq)
		for _, w := range plan {
			after := []byte("-")
			if w.after != nil {
				after = w.after
			}
			line = fmt.Appendf(line, " %d %s %s", w.k, w.action, after)
		}
		out.say("%s\n", line)
		txn, err := b.Commit(ctx, func(tx *Tx) error {
			for _, w := range plan {
				ref := crashRef(c, w.k)
				var err error
				switch w.op {
				case "create":
					err = tx.Create(ref, w.arg)
				case "upsert":
					err = tx.Upsert(ref, w.arg)
				case "replace":
					err = tx.Replace(ref, w.arg)
				case "update":
					err = tx.Update(ref, w.arg)
				case "delete":
					err = tx.Delete(ref)
				}
				if err != nil {
					return err
				}
			}
			// The announced data must be what the broker makes of the
			// writes, or the parent would check against the wrong thing.
			for _, w := range plan {
				d, ok := tx.Get(crashRef(c, w.k))
				if ok != (w.after != nil) || !bytes.Equal(d.Data, w.after) {
					return fmt.Errorf("%s of doc %d made %s (exists %v), the plan says %s", w.op, w.k, d.Data, ok, w.after)
				}
			}
			return nil
		})
		if err != nil {
			crashFail("committer %d seq %d: %v", c, seq, err)
		}
		out.say("ack %d %d %d\n", c, seq, txn)
		for _, w := range plan {
			pads[w.k] = w.pad
		}
	}
}
