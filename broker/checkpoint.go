package broker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/txlog"
)

// CheckpointOptions configure checkpoints: files holding every document of
// the state at one txn and its index entries, so that a restart reads the
// newest checkpoint and replays only the log after it, and so that the
// log's retention may delete what a checkpoint covers.
//
// The zero value checkpoints a broker on a txlog.Durable log that has a
// directory (a *txlog.FileLog) into the subdirectory "checkpoints" of the
// log's directory, every 64 MiB of writes and every 10 minutes, keeping 2.
// A broker on any other log has no checkpoints unless Dir or Store is set.
//
// The writes count across restarts: New counts those it replays (the log
// after the newest checkpoint) towards Every, and writes a checkpoint as
// it returns if they add up to it already. So a process restarted, or
// killed, before it writes Every bytes still checkpoints, and the log's
// retention still reclaims what the checkpoints cover.
//
// Close writes a checkpoint of the final state if anything was written
// since the newest one, so that a restart after Close replays nothing.
// Close returns once it is written, which takes as long as any checkpoint
// (every document and index entry written once: about 1.5 s for a million
// documents of 270 bytes with two indexes on two cores). A process killed
// meanwhile loses nothing; if it fails, Close logs the error and closes
// the log all the same.
type CheckpointOptions struct {
	// Disable turns checkpoints off: a restart replays the whole log, and
	// so needs the whole log (retention must keep everything).
	Disable bool
	// Dir holds the checkpoint files; see the type's doc for the default.
	Dir string
	// Store, if set, keeps the checkpoints instead of Dir: a store that
	// the nodes of a replicated broker share (see CheckpointStore).
	Store CheckpointStore
	// Every writes a checkpoint once the writes since the last one add up
	// to this many bytes (the documents written, before and after images,
	// about what the log grew by), counting those that New replayed after
	// a restart; 64 MiB by default.
	Every int64
	// Interval writes a checkpoint this long after the last one if
	// anything was committed since (or replayed by New); 10 minutes by
	// default.
	Interval time.Duration
	// Keep is how many checkpoints are kept, newest first; 2 by default.
	// The log keeps everything after the oldest of them, so that a damaged
	// newest checkpoint falls back to an older one with nothing lost.
	Keep int
}

// Defaults of CheckpointOptions.
const (
	DefaultCheckpointEvery    = 64 << 20
	DefaultCheckpointInterval = 10 * time.Minute
	DefaultCheckpointKeep     = 2
)

// ErrNoState: the state cannot be rebuilt, because the log no longer holds
// the start of its history and no usable checkpoint covers what it dropped.
// The error that wraps it names each checkpoint tried and what was wrong
// with it.
var ErrNoState = errors.New("broker: the state cannot be rebuilt")

// checkpointer writes checkpoints for one broker: from its goroutine when
// the writes add up or the interval passes, or on demand (Checkpoint).
type checkpointer struct {
	opt  CheckpointOptions
	kick chan struct{} // a commit asks for a checkpoint
	done chan struct{} // closed when the goroutine ends

	// mu lets one checkpoint run at a time. Lock order: it is taken before
	// Broker.mu, never while holding it: checkpoint holds it while it
	// takes Broker.mu (to read the head and clone the state, and to wait
	// for their delivery) and while it syncs the log, writes the file and
	// moves the log's retention floor (KeepAfter).
	mu      sync.Mutex
	lastTxn txlog.Txn // the newest checkpoint; guarded by mu

	store CheckpointStore // opt.Store, or the files of opt.Dir
}

// initCheckpoints resolves the options; it returns nil when there are none.
func initCheckpoints(opt CheckpointOptions, log txlog.Log) *checkpointer {
	if opt.Disable {
		return nil
	}
	if opt.Store == nil && opt.Dir == "" {
		d, ok := log.(txlog.Durable)
		if !ok || d.Dir() == "" {
			return nil
		}
		opt.Dir = filepath.Join(d.Dir(), "checkpoints")
	}
	if opt.Every <= 0 {
		opt.Every = DefaultCheckpointEvery
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultCheckpointInterval
	}
	if opt.Keep <= 0 {
		opt.Keep = DefaultCheckpointKeep
	}
	cp := &checkpointer{opt: opt, kick: make(chan struct{}, 1), done: make(chan struct{}), store: opt.Store}
	if cp.store == nil {
		cp.store = dirStore{opt.Dir}
	}
	return cp
}

// runCheckpoints is the checkpointer's goroutine: it writes a checkpoint
// when the commits ask for one or the interval has passed, until Close.
func (b *Broker) runCheckpoints() {
	cp := b.ckpt
	defer close(cp.done)
	t := time.NewTimer(cp.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-cp.kick:
		case <-t.C:
		}
		if _, err := b.checkpoint(); err != nil && !errors.Is(err, errCheckpointStopped) && !errors.Is(err, ErrClosed) {
			b.logger.Error("broker: writing a checkpoint", "err", err)
		}
		t.Reset(cp.opt.Interval)
	}
}

// Checkpoint writes a checkpoint of the state now, unless the newest one
// is already at the head, and returns its txn. It returns once the file is
// durable. Commits go on meanwhile: the state is read from a copy-on-write
// clone taken at one txn.
func (b *Broker) Checkpoint(ctx context.Context) (txlog.Txn, error) {
	if b.ckpt == nil {
		return 0, errors.New("broker: checkpoints are off (see CheckpointOptions)")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return b.checkpoint()
}

func (b *Broker) checkpoint() (txlog.Txn, error) {
	cp := b.ckpt
	cp.mu.Lock()
	defer cp.mu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, ErrClosed
	}
	st := b.stateAt()
	txn := st.txn
	b.sinceCkpt = 0
	b.mu.Unlock()
	if txn == cp.lastTxn {
		return txn, nil
	}
	// The clone may hold pending commits: write it once they are durable.
	if err := b.awaitPublished(txn, b.closing); err != nil {
		return 0, err
	}
	stop := func() bool {
		select {
		case <-b.closing:
			return true
		default:
			return false
		}
	}
	if err := b.writeCheckpoint(st, stop); err != nil {
		return 0, err
	}
	return txn, nil
}

// closeCheckpoint is Close's checkpoint of the final state, written if
// anything was written since the newest one (in this process, or in an
// earlier one and replayed by New), so that a clean restart replays
// nothing. Commits have stopped, so the state is final. Unlike the
// checkpoints that Close abandons, it runs to the end: it costs what any
// checkpoint costs, every document and entry written once. A failure is
// only logged: the log holds every commit, so nothing is lost, and Close
// goes on to close the log.
func (b *Broker) closeCheckpoint() {
	cp := b.ckpt
	<-cp.done    // the goroutine's checkpoint, if any, is abandoned
	cp.mu.Lock() // and so is one that Checkpoint was writing
	defer cp.mu.Unlock()
	b.mu.Lock()
	st, failed := b.stateAt(), b.failed
	txn := st.txn
	b.mu.Unlock()
	if failed != nil || txn == cp.lastTxn {
		// After a log failure the state holds commits of unknown fate.
		return
	}
	// The commits in flight staged their records before Close stopped
	// commits, so the head is final. A Durable log makes them durable in
	// writeCheckpoint's Sync; on any other log, wait for them.
	if _, ok := b.log.(txlog.Durable); !ok {
		if err := b.awaitPublished(txn, nil); err != nil {
			return // the log failed
		}
	}
	if err := b.writeCheckpoint(st, func() bool { return false }); err != nil {
		b.logger.Error("broker: writing a checkpoint on Close; the next start replays the log after the last one", "err", err)
	}
}

// writeCheckpoint writes st, the state at its txn, as a checkpoint, then
// prunes. Called with cp.mu held, once the commits up to the txn are
// delivered, or, on a Durable log, staged (its Sync makes them durable).
func (b *Broker) writeCheckpoint(st ckptState, stop func() bool) error {
	cp, txn := b.ckpt, st.txn
	// The state at txn is in the log; under SyncInterval and SyncNever it
	// may not be on disk yet, and a checkpoint must never be ahead of the
	// log it will be replayed against. A log that is not Durable loses
	// its records with the process, so it has nothing to sync.
	if d, ok := b.log.(txlog.Durable); ok {
		if err := d.Sync(); err != nil {
			return fmt.Errorf("broker: syncing the log for a checkpoint: %w", err)
		}
	}
	start := time.Now()
	size, err := writeStored(cp.store, b.log.ID(), st, stop)
	if err != nil {
		return err
	}
	cp.lastTxn = txn
	b.logger.Info("broker: checkpoint written", "txn", txn, "documents", st.docs.Len(), "bytes", size, "took", time.Since(start))
	cp.prune(b)
	return nil
}

// prune deletes all but the newest Keep checkpoints, and lets the log's
// retention go up to the oldest one kept. Called with cp.mu held.
func (cp *checkpointer) prune(b *Broker) {
	ctx := context.Background()
	txns, err := cp.store.List(ctx)
	if err != nil {
		b.logger.Warn("broker: listing checkpoints", "err", err)
		return
	}
	if len(txns) > cp.opt.Keep {
		for _, txn := range txns[cp.opt.Keep:] {
			if err := cp.store.Delete(ctx, txn); err != nil {
				b.logger.Warn("broker: removing an old checkpoint", "checkpoint", checkpoint.Name(txn), "err", err)
			}
		}
		txns = txns[:cp.opt.Keep]
	}
	if d, ok := b.log.(txlog.Durable); ok && len(txns) > 0 {
		d.KeepAfter(txns[len(txns)-1])
	}
}

// wroteBytes counts a commit's bytes towards the next checkpoint. Called
// with mu held.
func (b *Broker) wroteBytes(ws []txlog.Write) {
	if b.ckpt != nil {
		b.countBytes(writesBytes(ws))
	}
}

// countBytes adds n bytes written since the last checkpoint, and asks for
// a checkpoint once they add up to Every. Called with mu held, or by New
// for the writes it replayed, so that the count goes on across restarts.
func (b *Broker) countBytes(n int64) {
	b.sinceCkpt += n
	if b.sinceCkpt >= b.ckpt.opt.Every {
		b.sinceCkpt = 0
		select {
		case b.ckpt.kick <- struct{}{}:
		default: // one is asked for already
		}
	}
}

// writesBytes is what writes count towards Every: their before and after
// images, about what they add to the log.
func writesBytes(ws []txlog.Write) int64 {
	var n int64
	for i := range ws {
		n += int64(len(ws[i].Before) + len(ws[i].After))
	}
	return n
}
