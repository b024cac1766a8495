package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

var elements = []string{"fire", "water", "earth", "air"}

// ckptBroker opens a broker on a file log in dir with small segments.
func ckptBroker(t *testing.T, dir string, lopt txlog.FileOptions, copt CheckpointOptions) (*Broker, error) {
	t.Helper()
	if lopt.SegmentSize == 0 {
		lopt.SegmentSize = 8 << 10
	}
	l, err := txlog.OpenFile(dir, lopt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Log: l, Schema: ckptSchema, Checkpoint: copt, Logger: quietLogger})
	if err != nil {
		l.Close()
	}
	return b, err
}

func mustCkptBroker(t *testing.T, dir string, lopt txlog.FileOptions, copt CheckpointOptions) *Broker {
	t.Helper()
	b, err := ckptBroker(t, dir, lopt, copt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// closeAsKilled closes b as a kill would leave its directory: with no
// checkpoint on Close. It closes the log first, so that Close's checkpoint
// fails (and is only logged, to quietLogger).
func closeAsKilled(t *testing.T, b *Broker) {
	t.Helper()
	if err := b.log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// churn commits n random transactions: creates, updates that move
// documents between sets, deletes.
func churn(t *testing.T, b *Broker, r *rand.Rand, n int) {
	t.Helper()
	for range n {
		mustCommit(t, b, func(tx *Tx) error {
			for range 1 + r.IntN(3) {
				ref := spell(fmt.Sprint(r.IntN(200)))
				data := fmt.Sprintf(`{"element":%q,"level":%d,"pad":%q}`, elements[r.IntN(4)], r.IntN(5), strings.Repeat("x", r.IntN(200)))
				if _, ok := tx.Get(ref); ok && r.IntN(5) == 0 {
					if err := tx.Delete(ref); err != nil {
						return err
					}
					continue
				}
				if err := tx.Upsert(ref, []byte(data)); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// dumpState prints every document and every set of the test schema in
// order: two brokers with the same dump have the same state.
func dumpState(t *testing.T, b *Broker) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	writeDocs(&sb, b)
	cat := b.cat.Load()
	var targets []subscription.Target
	targets = append(targets, subscription.Collection("spells"))
	for _, e := range elements {
		targets = append(targets, must(subscription.Match("spells_by_element", e)))
	}
	for l := range 5 {
		targets = append(targets, must(subscription.Match("spells_by_level", l)))
	}
	for _, tg := range targets {
		key := must(setOf(cat, tg))
		entries, _, err := b.store.Page(nil, key, entrystore.Position{}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sb, "set %v:", tg)
		for _, e := range entries {
			fmt.Fprintf(&sb, " %s%s", e.Ref.ID, e.Values.String())
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// writeDocs writes the head and every document, for dumpState and
// dumpDocs. Called with b.mu held.
func writeDocs(sb *strings.Builder, b *Broker) {
	fmt.Fprintf(sb, "head %d\n", b.head)
	b.docs.Ascend(func(v *version) bool {
		fmt.Fprintf(sb, "%s ts %d %s\n", v.ref, v.ts, v.data)
		return true
	})
}

// A restart from a checkpoint and the log after it rebuilds exactly the
// state that replaying everything would, lets retention delete what the
// checkpoint covers, and resumes subscribers across it (Guarantees 3 and 6,
// broker package doc).
func TestCheckpointRestart(t *testing.T) {
	dir := t.TempDir()
	lopt := txlog.FileOptions{MaxBytes: 32 << 10}
	r := rand.New(rand.NewPCG(1, 2))
	b := mustCkptBroker(t, dir, lopt, CheckpointOptions{})
	churn(t, b, r, 200)
	// Without a checkpoint, retention keeps everything despite MaxBytes.
	if o := b.log.Oldest(); o != (txlog.Pos{}) {
		t.Fatalf("retention dropped up to %d with no checkpoint to cover it", o.Txn)
	}
	ck, err := b.Checkpoint(context.Background())
	if err != nil || ck != b.Head() {
		t.Fatalf("checkpoint at %d (head %d): %v", ck, b.Head(), err)
	}
	fire := must(subscription.Match("spells_by_element", "fire"))
	s := mustSubscribe(t, b, fire, subscription.Options{})
	churn(t, b, r, 300)
	evs := take(t, s, 5)
	resumeAt := evs[len(evs)-1].Cursor
	ck2 := must(b.Checkpoint(context.Background()))
	churn(t, b, r, 300)
	// Retention may now drop up to the older checkpoint, not beyond.
	if o := b.log.Oldest().Txn; o == 0 || o > ck {
		t.Fatalf("oldest %d: retention should have dropped up to the first checkpoint %d", o, ck)
	}
	want := dumpState(t, b)
	var wantEvents []string
	for _, e := range pageAfter(t, b, fire, resumeAt) {
		wantEvents = append(wantEvents, string(e.JSON))
	}
	// Ended as by a kill, so that the restart replays the log after ck2.
	closeAsKilled(t, b)

	b = mustCkptBroker(t, dir, lopt, CheckpointOptions{})
	defer b.Close()
	if b.ckpt.lastTxn != ck2 {
		t.Fatalf("loaded checkpoint %d, want the newest %d", b.ckpt.lastTxn, ck2)
	}
	if got := dumpState(t, b); got != want {
		t.Fatalf("state after the restart differs:\n%s\nwant:\n%s", got, want)
	}
	// The cursor from before both the second checkpoint and the restart
	// resumes with exactly the same events.
	got := resumeUntil(t, b, fire, resumeAt, func() txlog.Txn {
		return mustCommit(t, b, func(tx *Tx) error { return tx.Upsert(spell("marker"), []byte(`{"element":"fire"}`)) })
	})
	if len(got) != len(wantEvents) || len(got) < 10 {
		t.Fatalf("%d events resumed after the restart, %d before", len(got), len(wantEvents))
	}
	for i := range got {
		if string(got[i].JSON) != wantEvents[i] {
			t.Fatalf("event %d resumed after the restart:\n%s\nwant\n%s", i, got[i].JSON, wantEvents[i])
		}
	}
	if b.Head() <= ck2 {
		t.Fatalf("txn %d after the restart is not above %d", b.Head(), ck2)
	}
}

// pageAfter returns every event of target after cursor, read by the feed.
func pageAfter(t *testing.T, b *Broker, target subscription.Target, cursor txlog.Cursor) []subscription.Event {
	t.Helper()
	p, err := b.ReadPage(context.Background(), target, subscription.Options{Cursor: cursor.String()}, 1<<20, false)
	if err != nil || p.More {
		t.Fatalf("reading after %v: %v (more %v)", cursor, err, p.More)
	}
	return p.Events
}

// resumeUntil subscribes with cursor and returns its events up to the
// first of txn until (excluded): a resumed subscription, read live.
func resumeUntil(t *testing.T, b *Broker, target subscription.Target, cursor txlog.Cursor, commit func() txlog.Txn) []subscription.Event {
	t.Helper()
	s := mustSubscribe(t, b, target, subscription.Options{Cursor: cursor.String()})
	until := commit()
	var evs []subscription.Event
	for e := range s.Events() {
		if e.Type == subscription.TypeStart {
			continue
		}
		if e.Txn >= until {
			break
		}
		evs = append(evs, e)
	}
	return evs
}

// A damaged newest checkpoint falls back to the older one; with both
// damaged, the whole log rebuilds the state if it is all there, and if it
// is not, New fails with ErrNoState naming each checkpoint and its defect.
func TestCheckpointFallback(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	build := func(t *testing.T, lopt txlog.FileOptions) (dir, want string, cks []txlog.Txn) {
		dir = t.TempDir()
		b := mustCkptBroker(t, dir, lopt, CheckpointOptions{})
		churn(t, b, r, 150)
		cks = append(cks, must(b.Checkpoint(context.Background())))
		churn(t, b, r, 150)
		cks = append(cks, must(b.Checkpoint(context.Background())))
		churn(t, b, r, 100)
		want = dumpState(t, b)
		closeAsKilled(t, b) // the log after cks[1] is replayed
		return dir, want, cks
	}
	flip := func(t *testing.T, dir string, txn txlog.Txn, at float64) {
		path := filepath.Join(dir, "checkpoints", checkpoint.Name(txn))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[int(at*float64(len(data)-1))] ^= 0x10
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("newest damaged", func(t *testing.T) {
		dir, want, cks := build(t, txlog.FileOptions{})
		flip(t, dir, cks[1], 0.5)
		b := mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{})
		defer b.Close()
		if b.ckpt.lastTxn != cks[0] {
			t.Fatalf("loaded checkpoint %d, want the older %d", b.ckpt.lastTxn, cks[0])
		}
		if got := dumpState(t, b); got != want {
			t.Fatalf("state differs after falling back:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("both damaged, whole log", func(t *testing.T) {
		dir, want, cks := build(t, txlog.FileOptions{})
		flip(t, dir, cks[1], 0)
		flip(t, dir, cks[0], 1)
		b := mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{})
		defer b.Close()
		if b.ckpt.lastTxn != 0 {
			t.Fatalf("loaded checkpoint %d from damaged files", b.ckpt.lastTxn)
		}
		if got := dumpState(t, b); got != want {
			t.Fatalf("state differs after replaying the log:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("both damaged, log retained", func(t *testing.T) {
		lopt := txlog.FileOptions{MaxBytes: 16 << 10}
		dir, _, cks := build(t, lopt)
		flip(t, dir, cks[1], 0.3)
		flip(t, dir, cks[0], 0.7)
		_, err := ckptBroker(t, dir, lopt, CheckpointOptions{})
		if !errors.Is(err, ErrNoState) {
			t.Fatalf("New with nothing to rebuild from: %v, want ErrNoState", err)
		}
		for _, txn := range cks {
			if !strings.Contains(err.Error(), checkpoint.Name(txn)) {
				t.Errorf("the error does not name %s: %v", checkpoint.Name(txn), err)
			}
		}
		if !strings.Contains(err.Error(), "checksum") {
			t.Errorf("the error does not say what was wrong: %v", err)
		}
	})
	t.Run("checkpoints off, log retained", func(t *testing.T) {
		lopt := txlog.FileOptions{MaxBytes: 16 << 10}
		dir, _, _ := build(t, lopt)
		_, err := ckptBroker(t, dir, lopt, CheckpointOptions{Disable: true})
		if !errors.Is(err, ErrNoState) || !strings.Contains(err.Error(), "checkpoints are off") {
			t.Fatalf("New with checkpoints off on a retained log: %v", err)
		}
	})
}

// A checkpoint the log cannot back (the log lost its tail, as SyncNever
// allows on a power failure) or of another log is skipped.
func TestCheckpointNotBackedByLog(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	dir, early := t.TempDir(), t.TempDir()
	b := mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	churn(t, b, r, 50)
	// Ended as by kills, here and below, so that no checkpoint of Close's
	// stands in for the whole log.
	closeAsKilled(t, b)
	copyDir(t, dir, early) // the log as a power failure might leave it
	b = mustCkptBroker(t, early, txlog.FileOptions{}, CheckpointOptions{})
	want := dumpState(t, b)
	closeAsKilled(t, b)
	b = mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	churn(t, b, r, 50)
	ck := must(b.Checkpoint(context.Background()))
	b.Close()
	copyDir(t, filepath.Join(dir, "checkpoints"), filepath.Join(early, "checkpoints"))

	b = mustCkptBroker(t, early, txlog.FileOptions{}, CheckpointOptions{})
	if b.ckpt.lastTxn != 0 || dumpState(t, b) != want {
		t.Fatalf("a checkpoint at %d ahead of the log was used (loaded %d)", ck, b.ckpt.lastTxn)
	}
	// It is set aside: once the log passes its txn it must not look usable.
	if _, err := os.Stat(filepath.Join(early, "checkpoints", checkpoint.Name(ck)+ckptAside)); err != nil {
		t.Fatalf("the checkpoint ahead of the log was not set aside: %v", err)
	}
	for b.Head() <= ck {
		churn(t, b, r, 10)
	}
	closeAsKilled(t, b)
	b = mustCkptBroker(t, early, txlog.FileOptions{}, CheckpointOptions{})
	if b.ckpt.lastTxn == ck {
		t.Fatalf("the set-aside checkpoint at %d was loaded once the log passed it", ck)
	}
	b.Close()

	other := t.TempDir()
	copyDir(t, filepath.Join(dir, "checkpoints"), filepath.Join(other, "checkpoints"))
	b = mustCkptBroker(t, other, txlog.FileOptions{}, CheckpointOptions{})
	defer b.Close()
	if b.ckpt.lastTxn != 0 || b.Head() != 0 {
		t.Fatalf("a checkpoint of another log was used: head %d", b.Head())
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(to, 0o755)
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Commits that add up to Every bytes make the broker write a checkpoint by
// itself, old ones are pruned to Keep, and a checkpoint write that a crash
// interrupted (a temporary file) is cleared away on restart.
func TestCheckpointEveryBytes(t *testing.T) {
	dir := t.TempDir()
	b := mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{Every: 20 << 10, Keep: 3})
	r := rand.New(rand.NewPCG(7, 8))
	for range 40 {
		churn(t, b, r, 25)
		// Let the checkpointer run: Checkpoint waits for the one in
		// progress, and returns at once if it is at the head.
		b.ckpt.mu.Lock()
		b.ckpt.mu.Unlock()
	}
	txns, err := checkpoint.List(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if len(txns) == 0 || len(txns) > 3 {
		t.Fatalf("%d checkpoints after ~250 KiB of writes with Every 20 KiB and Keep 3", len(txns))
	}
	os.WriteFile(filepath.Join(dir, "checkpoints", checkpoint.Name(b.Head()+1)+checkpoint.TempSuffix), []byte("half"), 0o644)
	want := dumpState(t, b)
	b.Close()
	b = mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	defer b.Close()
	if dumpState(t, b) != want {
		t.Fatal("state differs after the restart")
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "*"+checkpoint.TempSuffix)); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

// With no writes to trigger one, a checkpoint is written when the interval
// passes, and only if something was committed.
func TestCheckpointInterval(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{Interval: time.Minute})
		defer b.Close()
		mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell("1"), []byte(`{"element":"fire"}`)) })
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if n := len(must(checkpoint.List(filepath.Join(dir, "checkpoints")))); n != 0 {
			t.Fatalf("%d checkpoints before the interval", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		txns := must(checkpoint.List(filepath.Join(dir, "checkpoints")))
		if len(txns) != 1 || txns[0] != b.Head() {
			t.Fatalf("checkpoints %v after the interval, want one at %d", txns, b.Head())
		}
		time.Sleep(5 * time.Minute) // nothing committed: nothing written
		synctest.Wait()
		if n := len(must(checkpoint.List(filepath.Join(dir, "checkpoints")))); n != 1 {
			t.Fatalf("%d checkpoints after idle intervals, want 1", n)
		}
	})
}

// syncCountingLog is a file log that records the head at each Sync.
type syncCountingLog struct {
	*txlog.FileLog
	synced []txlog.Txn
}

func (l *syncCountingLog) Sync() error {
	l.synced = append(l.synced, l.Head().Txn)
	return l.FileLog.Sync()
}

// Under SyncNever the log may hold records only in the page cache: a
// checkpoint fsyncs the log up to its txn first, so that it is never ahead
// of the log after a power failure (Guarantee 6, broker package doc).
func TestCheckpointSyncsLogFirst(t *testing.T) {
	dir := t.TempDir()
	fl, err := txlog.OpenFile(dir, txlog.FileOptions{Sync: txlog.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	l := &syncCountingLog{FileLog: fl}
	b, err := New(Options{Log: l, Schema: ckptSchema, Logger: quietLogger,
		Checkpoint: CheckpointOptions{Dir: filepath.Join(dir, "checkpoints")}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	churn(t, b, rand.New(rand.NewPCG(9, 9)), 20)
	ck := must(b.Checkpoint(context.Background()))
	if len(l.synced) != 1 || l.synced[0] < ck {
		t.Fatalf("log synced at %v for a checkpoint at %d", l.synced, ck)
	}
}
