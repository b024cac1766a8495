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
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/txlog"
)

// Close writes a checkpoint of the final state when anything was written
// since the newest one, in its own life or in an earlier one that New
// replayed, and none when nothing was; a restart after it replays nothing.
func TestCheckpointOnClose(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(11, 12))
	list := func() []txlog.Txn { return must(checkpoint.List(filepath.Join(dir, "checkpoints"))) }

	b, _ := openLogged(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	churn(t, b, r, 100)
	head, want := b.Head(), dumpState(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []txlog.Txn{head}) {
		t.Fatalf("checkpoints %v after Close, want one at the head %d", got, head)
	}

	// Nothing written since: the restart replays nothing, and Close
	// leaves the checkpoint as it is.
	b, lg := openLogged(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	if n := lg.replayed(); n != 0 || b.ckpt.lastTxn != head || dumpState(t, b) != want {
		t.Fatalf("restart after Close: %d records replayed, from the checkpoint at %d (want 0, from %d); state equal: %v",
			n, b.ckpt.lastTxn, head, dumpState(t, b) == want)
	}
	path := filepath.Join(dir, "checkpoints", checkpoint.Name(head))
	fi := must(os.Stat(path))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []txlog.Txn{head}) || !os.SameFile(fi, must(os.Stat(path))) {
		t.Fatalf("checkpoints %v after a Close with nothing written, want the one at %d untouched", got, head)
	}

	// Writes that a life without checkpoints left (as a killed life would
	// leave them) are replayed, and the next Close covers them, though
	// nothing was written in its own life.
	b = mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{Disable: true})
	churn(t, b, r, 50)
	head2, want2 := b.Head(), dumpState(t, b)
	b.Close()
	b, lg = openLogged(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	if n := lg.replayed(); n != 50 {
		t.Fatalf("%d records replayed, want the 50 after the checkpoint", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []txlog.Txn{head2, head}) {
		t.Fatalf("checkpoints %v after a Close of a life that replayed, want %v", got, []txlog.Txn{head2, head})
	}
	b, lg = openLogged(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	defer b.Close()
	if n := lg.replayed(); n != 0 || dumpState(t, b) != want2 {
		t.Fatalf("restart after Close: %d records replayed (want 0); state equal: %v", n, dumpState(t, b) == want2)
	}
	if p := lg.problems(); len(p) > 0 {
		t.Fatalf("the broker logged: %s", strings.Join(p, "; "))
	}
}

// Commits in flight when Close begins finish, and Close's checkpoint
// covers them: Commit acknowledged none that the restart must replay
// (Guarantees 6 and 7, broker package doc), under each sync policy.
func TestCheckpointOnCloseWithCommitsInFlight(t *testing.T) {
	for _, policy := range []txlog.SyncPolicy{txlog.SyncBatch, txlog.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			lopt := txlog.FileOptions{Sync: policy}
			b, _ := openLogged(t, dir, lopt, CheckpointOptions{})
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				acked []txlog.Txn
			)
			started := make(chan struct{}, 4)
			for c := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						txn, err := b.Commit(context.Background(), func(tx *Tx) error {
							return tx.Upsert(spell(fmt.Sprintf("c%d-%d", c, i%50)), fmt.Appendf(nil, `{"element":"fire","level":%d}`, i%5))
						})
						if errors.Is(err, ErrClosed) {
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						acked = append(acked, txn)
						mu.Unlock()
						if i == 20 {
							started <- struct{}{}
						}
					}
				})
			}
			for range 4 {
				<-started
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			last := slices.Max(acked)
			b, lg := openLogged(t, dir, lopt, CheckpointOptions{})
			defer b.Close()
			if n := lg.replayed(); n != 0 || b.ckpt.lastTxn != b.Head() || b.Head() < last {
				t.Fatalf("restart: %d records replayed, checkpoint at %d, head %d; last acknowledged %d", n, b.ckpt.lastTxn, b.Head(), last)
			}
		})
	}
}

// failingSyncLog is a file log whose Sync fails, as a full or failing disk
// would make it.
type failingSyncLog struct{ *txlog.FileLog }

func (failingSyncLog) Sync() error { return errors.New("no space left on device") }

// A checkpoint that fails on Close is logged, and Close still closes the
// log and returns its error, none here; the restart replays the log.
func TestCheckpointOnCloseFails(t *testing.T) {
	dir := t.TempDir()
	fl, err := txlog.OpenFile(dir, txlog.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lg := &ckptLog{}
	b, err := New(Options{Log: failingSyncLog{fl}, Schema: ckptSchema, Logger: slog.New(lg)})
	if err != nil {
		t.Fatal(err)
	}
	churn(t, b, rand.New(rand.NewPCG(13, 14)), 30)
	want := dumpState(t, b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if p := lg.problems(); len(p) != 1 || !strings.Contains(p[0], "checkpoint on Close") || !strings.Contains(p[0], "no space left") {
		t.Fatalf("the broker logged %q, want the failed checkpoint", p)
	}
	// The log is closed: its directory opens again.
	b, lg = openLogged(t, dir, txlog.FileOptions{}, CheckpointOptions{})
	defer b.Close()
	if n := lg.replayed(); n != 30 || dumpState(t, b) != want {
		t.Fatalf("restart: %d records replayed, want 30; state equal: %v", n, dumpState(t, b) == want)
	}
}

// What New replays counts towards Every: lives that each write less than
// Every, ended by kills, still checkpoint once their writes add up to it;
// and a restart that replays Every or more writes one as it starts.
func TestCheckpointCountsReplay(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		const every = 64 << 10
		copt := CheckpointOptions{Every: every}
		list := func() []txlog.Txn { return must(checkpoint.List(filepath.Join(dir, "checkpoints"))) }
		// Each commit creates a document of 1000 bytes: it counts 1000.
		var txns []txlog.Txn
		write := func(b *Broker, n int) {
			for range n {
				data := fmt.Sprintf(`{"element":"air","pad":%q}`, strings.Repeat("x", 1000-len(`{"element":"air","pad":""}`)))
				id := fmt.Sprint(len(txns))
				txns = append(txns, mustCommit(t, b, func(tx *Tx) error { return tx.Create(spell(id), []byte(data)) }))
			}
		}

		// Every broker is closed before the bubble ends, also when the
		// test fails early (a second Close does nothing).
		b, _ := openLogged(t, dir, txlog.FileOptions{}, copt)
		defer b.Close()
		write(b, 40)
		synctest.Wait()
		closeAsKilled(t, b)
		b, lg := openLogged(t, dir, txlog.FileOptions{}, copt)
		defer b.Close()
		synctest.Wait()
		if n, got := lg.replayed(), list(); n != 40 || len(got) != 0 {
			t.Fatalf("restart: %d records replayed (want 40), checkpoints %v (want none, 40000 bytes < Every)", n, got)
		}
		write(b, 30)
		synctest.Wait()
		// The 66th commit brings the two lives' writes to 66000 bytes.
		got := list()
		if len(got) != 1 || got[0] < txns[65] || got[0] > b.Head() {
			t.Fatalf("checkpoints %v after two lives of 40000 and 30000 bytes with Every %d, want one from txn %d on", got, every, txns[65])
		}
		closeAsKilled(t, b)
		ck := got[0]

		// A life without checkpoints writes more than Every; the next
		// one checkpoints as it starts.
		b = mustCkptBroker(t, dir, txlog.FileOptions{}, CheckpointOptions{Disable: true})
		defer b.Close()
		write(b, 70)
		b.Close()
		b, lg = openLogged(t, dir, txlog.FileOptions{}, copt)
		defer b.Close()
		synctest.Wait()
		after := len(txns) - 1 - slices.Index(txns, ck) // 70, and the second life's after its checkpoint
		if n, got := lg.replayed(), list(); n != int64(after) || len(got) != 2 || got[0] != b.Head() {
			t.Fatalf("restart: %d records replayed (want %d), checkpoints %v (want the newest at the head %d, before any commit)", n, after, got, b.Head())
		}
	})
}

// openLogged opens a broker on a file log in dir, as ckptBroker does, with
// a ckptLog to read what it logged.
func openLogged(t *testing.T, dir string, lopt txlog.FileOptions, copt CheckpointOptions) (*Broker, *ckptLog) {
	t.Helper()
	if lopt.SegmentSize == 0 {
		lopt.SegmentSize = 8 << 10
	}
	lopt.Logger = quietLogger
	l, err := txlog.OpenFile(dir, lopt)
	if err != nil {
		t.Fatal(err)
	}
	lg := &ckptLog{}
	b, err := New(Options{Log: l, Schema: ckptSchema, Checkpoint: copt, Logger: slog.New(lg)})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return b, lg
}

// ckptLog is a slog.Handler that keeps what the checkpoint tests read of a
// broker's log: the records New replayed, and what it logged at warning
// level and above. onWritten, if set, is called for each checkpoint
// written, and onProblem for each warning or error.
type ckptLog struct {
	onWritten func()
	onProblem func(string)

	mu    sync.Mutex
	recs  int64 // records New replayed
	probs []string
}

func (h *ckptLog) replayed() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.recs
}

func (h *ckptLog) problems() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.probs)
}

func (h *ckptLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *ckptLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *ckptLog) WithGroup(string) slog.Handler            { return h }

func (h *ckptLog) Handle(_ context.Context, r slog.Record) error {
	switch {
	case r.Level >= slog.LevelWarn:
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s: %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&sb, " %s", a)
			return true
		})
		h.mu.Lock()
		h.probs = append(h.probs, sb.String())
		h.mu.Unlock()
		if h.onProblem != nil {
			h.onProblem(sb.String())
		}
	case r.Message == "broker: state rebuilt":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "records replayed" {
				h.mu.Lock()
				h.recs = a.Value.Int64()
				h.mu.Unlock()
			}
			return true
		})
	case r.Message == "broker: checkpoint written" && h.onWritten != nil:
		h.onWritten()
	}
	return nil
}
