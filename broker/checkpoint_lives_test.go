package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/internal/crashtest"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// TestCheckpointManyLives runs many short process lives on one directory,
// each writing less than half of CheckpointOptions.Every, half of them
// ended by SIGKILL and half by Close. The log must stay bounded (retention
// reclaims what the checkpoints cover) and so must what each restart
// replays, however the lives end; and every restart rebuilds exactly the
// acknowledged writes (Guarantee 6, broker package doc).
//
// Each life is a child process (internal/crashtest): this test run alone
// with livesChildEnv set. It reports its restart and its state after New,
// then every commit it acknowledges; the parent keeps the model.
func TestCheckpointManyLives(t *testing.T) {
	if dir := os.Getenv(livesChildEnv); dir != "" {
		livesChild(dir) // never returns
		return
	}
	if len(livesPattern) < 30 || strings.Count(livesPattern, "K")*2 != len(livesPattern) {
		t.Fatalf("the pattern %q wants at least 30 lives, half of them killed", livesPattern)
	}

	// The bounds, in bytes as Every counts them (before and after images),
	// assuming that a checkpoint asked for as a life starts is written
	// before the life's writes end (a few documents, against livesCommits
	// fsynced commits).
	//
	// A life writes at most L (a replace per commit). Reaching Every asks
	// for a checkpoint, and Close writes one, so a life ends with less than
	// Every + L written since the newest checkpoint (Every reached in a
	// life killed before the checkpoint was written: the next life asks
	// for it as it starts); that is what a restart replays. At any moment
	// there are at most I = Every + 2L since the newest checkpoint (that
	// replay, then a life's writes until the checkpoint asked for at its
	// start takes its clone), and so between two checkpoints.
	const (
		lifeBytes     = livesCommits * 2 * livesDocSize
		sinceBytes    = livesEvery + lifeBytes
		intervalBytes = livesEvery + 2*lifeBytes
	)
	// A record counts at least one image (livesDocSize).
	const maxReplayed = sinceBytes / livesDocSize
	// On disk a record is its images plus at most livesOverhead. Retention
	// runs when a segment fills, with the floor at the older of the 2 kept
	// checkpoints: it keeps MaxBytes at most, or else the segment holding
	// the floor and the 2I after it; the log then grows by less than a
	// segment before retention runs again. Every segment has a header.
	toLog := func(counted int) int { return counted + counted/livesDocSize*livesOverhead }
	maxLogBytes := max(livesMaxBytes, livesSegment+toLog(2*intervalBytes)) + livesSegment
	maxLogBytes += (maxLogBytes/(livesSegment-toLog(2*livesDocSize)) + 1) * 56
	t.Logf("bounds: %d records replayed, %d bytes of log (Every %d, segments %d, MaxBytes %d; a life writes at most %d)",
		maxReplayed, maxLogBytes, livesEvery, livesSegment, livesMaxBytes, lifeBytes)

	dir := t.TempDir()
	model := map[string]livesDoc{}
	var head txlog.Txn
	var figs []livesFigures
	var overReplay, overLog []string
	for life, end := range livesPattern {
		f, acks, err := runLife(dir, life, end == 'K')
		if err != nil {
			t.Fatalf("life %d: %v", life, err)
		}
		// The restart rebuilt exactly what the earlier lives acknowledged.
		if f.head != head {
			t.Fatalf("life %d started at txn %d, the last acknowledged is %d", life, f.head, head)
		}
		if want := livesModelState(model); !slices.Equal(f.state, want) {
			t.Fatalf("life %d: the state after New differs from the model:\n%s\nwant:\n%s",
				life, strings.Join(f.state, "\n"), strings.Join(want, "\n"))
		}
		for _, a := range acks {
			if a.txn <= head {
				t.Fatalf("life %d: txn %d acknowledged after %d", life, a.txn, head)
			}
			head = a.txn
			if a.data == nil {
				delete(model, a.id)
			} else {
				model[a.id] = livesDoc{data: a.data, ts: a.txn}
			}
		}
		f.logBytes, f.segments = livesLogSize(t, dir)
		f.ckpts = len(must(checkpoint.List(filepath.Join(dir, "checkpoints"))))
		figs = append(figs, f)
		t.Logf("life %2d (%s): New took %8v, %4d records replayed; after it: log %7d bytes in %2d segments, %d checkpoints on disk, %d written",
			life, f.end, f.took, f.replayed, f.logBytes, f.segments, f.ckpts, f.written)

		if f.replayed > maxReplayed {
			overReplay = append(overReplay, fmt.Sprintf("life %d: %d", life, f.replayed))
		}
		if life > 0 && figs[life-1].end == "close" && f.replayed != 0 {
			overReplay = append(overReplay, fmt.Sprintf("life %d: %d after a Close", life, f.replayed))
		}
		if f.logBytes > int64(maxLogBytes) {
			overLog = append(overLog, fmt.Sprintf("life %d: %d", life, f.logBytes))
		}
	}

	// The last life's writes, rebuilt by a last restart here.
	l, err := txlog.OpenFile(dir, livesLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Log: l, Schema: ckptSchema, Checkpoint: livesCheckpoints, Logger: quietLogger})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	got := livesState(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if want := livesModelState(model); b.Head() != head || !slices.Equal(got, want) {
		t.Fatalf("after the last life, head %d (want %d) and state:\n%s\nwant:\n%s", b.Head(), head, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	first, last := figs[0], figs[len(figs)-1]
	var maxLog int64
	var maxTook time.Duration
	maxRep, written := 0, 0
	for _, f := range figs {
		maxLog, maxTook, maxRep = max(maxLog, f.logBytes), max(maxTook, f.took), max(maxRep, f.replayed)
		written += f.written
	}
	t.Logf("%d lives: log %d bytes after the first, %d after the last, at most %d (bound %d); New took %v in the first, %v in the last, at most %v; "+
		"at most %d records replayed (bound %d), %d in the last; %d checkpoints written",
		len(figs), first.logBytes, last.logBytes, maxLog, maxLogBytes, first.took, last.took, maxTook, maxRep, maxReplayed, last.replayed, written)
	if len(overReplay) > 0 {
		t.Errorf("restarts replayed more than the bound of %d records (or anything after a Close): %s", maxReplayed, strings.Join(overReplay, "; "))
	}
	if len(overLog) > 0 {
		t.Errorf("the log outgrew the bound of %d bytes: %s", maxLogBytes, strings.Join(overLog, "; "))
	}
}

const (
	livesChildEnv = "TIDINGS_BROKER_LIVES_CHILD" // the directory
	livesLifeEnv  = "TIDINGS_BROKER_LIVES_LIFE"  // the life's number, which seeds its writes

	livesCommits  = 32   // commits per life, of one write each
	livesDocs     = 60   // documents written to
	livesDocSize  = 1000 // bytes of every document's data
	livesOverhead = 128  // a one-write record's bytes in the log besides its images, at most
	livesEvery    = 128 << 10
	livesSegment  = 32 << 10
	livesMaxBytes = 128 << 10
)

// livesPattern says how each life ends: K by SIGKILL, C by Close. Runs of
// kills longer than Every takes to fill, and lives of each kind after the
// other.
const livesPattern = "KKKKKKKCKCCKKCCKCCCKKKKCKCCCKKCKCCCCKCCC"

func livesLogOptions() txlog.FileOptions {
	return txlog.FileOptions{SegmentSize: livesSegment, MaxBytes: livesMaxBytes}
}

// livesCheckpoints: Keep and Interval are the defaults (2, and 10 minutes,
// which no life reaches).
var livesCheckpoints = CheckpointOptions{Every: livesEvery}

type livesDoc struct {
	data []byte
	ts   txlog.Txn
}

type livesAck struct {
	txn  txlog.Txn
	id   string
	data []byte // nil: deleted
}

// livesFigures: one life, as its child reported it and as it left the
// directory.
type livesFigures struct {
	end      string
	head     txlog.Txn
	replayed int
	took     time.Duration
	state    []string
	written  int // checkpoints the life wrote (that it reported before it died)
	logBytes int64
	segments int
	ckpts    int
}

// runLife runs one life in a child, ending it by SIGKILL (kill) or by
// Close once its writes are acknowledged, and returns what it reported.
func runLife(dir string, life int, kill bool) (livesFigures, []livesAck, error) {
	f := livesFigures{end: "close", replayed: -1}
	if kill {
		f.end = "kill"
	}
	var acks []livesAck
	c, err := crashtest.Start(crashtest.Options{
		Run: "^TestCheckpointManyLives$",
		Env: []string{livesChildEnv + "=" + dir, livesLifeEnv + "=" + strconv.Itoa(life)},
	})
	if err != nil {
		return f, nil, err
	}
	ready := false
	res, err := c.Watch(func(line string) error {
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "ready": // head, records replayed, New's time in µs
			var us int64
			if _, err := fmt.Sscan(rest, &f.head, &f.replayed, &us); err != nil || ready {
				return fmt.Errorf("bad line %q", line)
			}
			ready, f.took = true, time.Duration(us)*time.Microsecond
		case "doc", "set":
			f.state = append(f.state, line)
		case "ack": // txn, id, data or -
			p := strings.SplitN(rest, " ", 3)
			txn, err := strconv.ParseUint(p[0], 10, 64)
			if len(p) != 3 || err != nil {
				return fmt.Errorf("bad line %q", line)
			}
			a := livesAck{txn: txlog.Txn(txn), id: p[1]}
			if p[2] != "-" {
				a.data = []byte(p[2])
			}
			acks = append(acks, a)
		case "ckpt":
			f.written++
		case "done":
			if len(acks) != livesCommits {
				return fmt.Errorf("done after %d acks", len(acks))
			}
			if kill {
				c.Kill()
			}
		case "closed":
			c.Kill() // it has nothing left to do
		default:
			return fmt.Errorf("bad line %q", line)
		}
		return nil
	})
	if err == nil && res.Stderr != "" {
		err = errors.New("the child wrote to stderr")
	}
	if err == nil && (!ready || len(acks) != livesCommits) {
		err = fmt.Errorf("the child reported ready %v and %d acks", ready, len(acks))
	}
	if err != nil {
		return f, nil, fmt.Errorf("%w\nchild stderr:\n%s", err, res.Stderr)
	}
	return f, acks, nil
}

// livesChild is one life: New on dir, its state reported, livesCommits
// commits of one write each, then Close if the parent does not kill it
// first. Anything wrong goes to stderr, which fails the parent.
func livesChild(dir string) {
	out := &livesOut{}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(2)
	}
	life, err := strconv.Atoi(os.Getenv(livesLifeEnv))
	if err != nil {
		fail("bad life: %v", err)
	}
	// What the broker logs: the checkpoints it writes are told to the
	// parent, warnings and errors go to stderr (and fail the parent).
	lg := &ckptLog{
		onWritten: func() { out.say("ckpt") },
		onProblem: func(p string) { fmt.Fprintln(os.Stderr, p) },
	}
	l, err := txlog.OpenFile(dir, livesLogOptions())
	if err != nil {
		fail("open the log: %v", err)
	}
	start := time.Now()
	b, err := New(Options{Log: l, Schema: ckptSchema, Checkpoint: livesCheckpoints, Logger: slog.New(lg)})
	took := time.Since(start)
	if err != nil {
		fail("open the broker: %v", err)
	}
	out.say("ready %d %d %d", b.Head(), lg.replayed(), took.Microseconds())
	for _, line := range livesState(b) {
		out.say("%s", line)
	}

	r := rand.New(rand.NewPCG(uint64(life), 1))
	for seq := range livesCommits {
		id := strconv.Itoa(r.IntN(livesDocs))
		_, exists := b.Get(spell(id))
		data := livesData(elements[r.IntN(len(elements))], r.IntN(5), life, seq)
		del := exists && r.IntN(8) == 0
		txn, err := b.Commit(context.Background(), func(tx *Tx) error {
			switch {
			case del:
				return tx.Delete(spell(id))
			case exists:
				return tx.Replace(spell(id), data)
			default:
				return tx.Create(spell(id), data)
			}
		})
		if err != nil {
			fail("commit: %v", err)
		}
		if del {
			out.say("ack %d %s -", txn, id)
		} else {
			out.say("ack %d %s %s", txn, id, data)
		}
	}
	out.say("done")
	if livesPattern[life] == 'C' {
		if err := b.Close(); err != nil {
			fail("close: %v", err)
		}
		out.say("closed")
	}
	time.Sleep(time.Minute) // the parent kills it well before
	fail("not killed")
}

// livesData is a document's data of exactly livesDocSize bytes.
func livesData(element string, level, life, seq int) []byte {
	head := fmt.Sprintf(`{"element":%q,"level":%d,"life":%d,"seq":%d,"pad":"`, element, level, life, seq)
	return []byte(head + strings.Repeat("x", livesDocSize-len(head)-2) + `"}`)
}

// livesOut writes whole lines to stdout, for the parent.
type livesOut struct{ mu sync.Mutex }

func (o *livesOut) say(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// livesState is the state of b as lines: each document with its ts, then
// the entries of each set of the two indexes (ids with their values), in
// an order that the model can reproduce.
func livesState(b *Broker) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []string
	b.docs.Ascend(func(v *version) bool {
		lines = append(lines, fmt.Sprintf("doc %s %d %s", v.ref.ID, v.ts, v.data))
		return true
	})
	slices.Sort(lines)
	cat := b.cat.Load()
	for _, tg := range livesTargets() {
		key, err := setOf(cat, tg.target)
		if err != nil {
			panic(err)
		}
		entries, _, err := b.store.Page(nil, key, entrystore.Position{}, 1<<20)
		if err != nil {
			panic(err)
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.Ref.ID+e.Values.String())
		}
		slices.Sort(ids)
		lines = append(lines, fmt.Sprintf("set %s %s", tg.name, strings.Join(ids, " ")))
	}
	return lines
}

type livesTarget struct {
	name   string
	target subscription.Target
	match  func(element string, level int) (values string, ok bool)
}

// livesTargets are the sets of ckptSchema's indexes, with what the model
// expects of each document in them.
func livesTargets() []livesTarget {
	var ts []livesTarget
	for _, e := range elements {
		ts = append(ts, livesTarget{"element:" + e, must(subscription.Match("spells_by_element", e)),
			func(element string, level int) (string, bool) { return fmt.Sprintf("[%d]", level), element == e }})
	}
	for l := range 5 {
		ts = append(ts, livesTarget{"level:" + strconv.Itoa(l), must(subscription.Match("spells_by_level", l)),
			func(_ string, level int) (string, bool) { return "[]", level == l }})
	}
	return ts
}

// livesModelState is livesState as the model has it.
func livesModelState(model map[string]livesDoc) []string {
	var lines []string
	for id, d := range model {
		lines = append(lines, fmt.Sprintf("doc %s %d %s", id, d.ts, d.data))
	}
	slices.Sort(lines)
	for _, tg := range livesTargets() {
		var ids []string
		for id, d := range model {
			var element string
			var level int
			// The data begins as livesData writes it.
			if _, err := fmt.Sscanf(string(d.data), `{"element":%q,"level":%d,`, &element, &level); err != nil {
				panic(fmt.Sprintf("%s: %v", d.data, err))
			}
			if v, ok := tg.match(element, level); ok {
				ids = append(ids, id+v)
			}
		}
		slices.Sort(ids)
		lines = append(lines, fmt.Sprintf("set %s %s", tg.name, strings.Join(ids, " ")))
	}
	return lines
}

// livesLogSize is the bytes and the number of the log's segment files.
func livesLogSize(t *testing.T, dir string) (int64, int) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range segs {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n, len(segs)
}
