package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// CheckpointOptions configure checkpoints: files holding every document of
// the state at one txn, so that a restart reads the newest checkpoint and
// replays only the log after it, and so that the log's retention may delete
// what a checkpoint covers.
//
// The zero value checkpoints a broker on a *txlog.FileLog into the
// subdirectory "checkpoints" of the log's directory, every 64 MiB of
// writes and every 10 minutes, keeping 2. A broker on any other log has no
// checkpoints unless Dir is set.
type CheckpointOptions struct {
	// Disable turns checkpoints off: a restart replays the whole log, and
	// so needs the whole log (retention must keep everything).
	Disable bool
	// Dir holds the checkpoint files; see the type's doc for the default.
	Dir string
	// Every writes a checkpoint once the writes since the last one add up
	// to this many bytes (the documents written, before and after images,
	// about what the log grew by); 64 MiB by default.
	Every int64
	// Interval writes a checkpoint this long after the last one if
	// anything was committed since; 10 minutes by default.
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

// logSyncer is a log that can make everything appended durable on demand
// (txlog.FileLog), so that a checkpoint is never ahead of the log.
type logSyncer interface{ Sync() error }

// logPinner is a log whose retention can be held back (txlog.FileLog).
type logPinner interface{ KeepAfter(txlog.Txn) }

// checkpointer writes checkpoints for one broker: from its goroutine when
// the writes add up or the interval passes, or on demand (Checkpoint).
type checkpointer struct {
	opt  CheckpointOptions
	kick chan struct{} // a commit asks for a checkpoint
	done chan struct{} // closed when the goroutine ends

	mu      sync.Mutex // one checkpoint at a time
	lastTxn txlog.Txn  // the newest checkpoint; guarded by mu
}

// initCheckpoints resolves the options; it returns nil when there are none.
func initCheckpoints(opt CheckpointOptions, log txlog.Log) *checkpointer {
	if opt.Disable {
		return nil
	}
	if opt.Dir == "" {
		fl, ok := log.(*txlog.FileLog)
		if !ok {
			return nil
		}
		opt.Dir = filepath.Join(fl.Dir(), "checkpoints")
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
	return &checkpointer{opt: opt, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// loadState rebuilds the documents and indexes: from the newest usable
// checkpoint and the log after it, or from the whole log. Called by New.
func (b *Broker) loadState() error {
	cp := b.ckpt
	var tried []string
	if cp != nil {
		// A checkpoint write that a crash interrupted left a temporary file.
		if tmps, _ := filepath.Glob(filepath.Join(cp.opt.Dir, ckptPrefix+"*"+ckptTemp)); len(tmps) > 0 {
			for _, t := range tmps {
				os.Remove(t)
			}
		}
		txns, err := listCheckpoints(cp.opt.Dir)
		if err != nil {
			return fmt.Errorf("broker: listing checkpoints: %w", err)
		}
		for _, txn := range txns {
			err := b.loadCheckpoint(txn)
			if err == nil {
				cp.lastTxn = txn
				break
			}
			if errors.Is(err, index.ErrUnknownCollection) {
				return err // the schema, not the file: an older one would fail too
			}
			b.logger.Warn("broker: skipping a checkpoint", "checkpoint", ckptName(txn), "err", err)
			tried = append(tried, fmt.Sprintf("%s: %v", ckptName(txn), err))
		}
		if p, ok := b.log.(logPinner); ok {
			keep := txlog.Txn(0)
			if len(txns) > 0 {
				keep = min(txns[len(txns)-1], cp.lastTxn)
			}
			p.KeepAfter(keep)
		}
	}
	if b.head == 0 && b.log.Oldest() != (txlog.Pos{}) {
		why := "no checkpoint"
		if cp == nil {
			why = "checkpoints are off"
		} else if len(tried) > 0 {
			why = strings.Join(tried, "; ")
		}
		return fmt.Errorf("%w: the log has dropped the records up to txn %d, and nothing covers them (%s)",
			ErrNoState, b.log.Oldest().Txn, why)
	}
	return b.replay()
}

// loadCheckpoint makes the checkpoint at txn the state, if it is whole and
// fits the log: of this log, not ahead of its head, and not older than
// what the log still holds.
func (b *Broker) loadCheckpoint(txn txlog.Txn) error {
	c, err := readCheckpoint(filepath.Join(b.ckpt.opt.Dir, ckptName(txn)))
	if err != nil {
		return err
	}
	switch {
	case c.txn != txn:
		return fmt.Errorf("%w: the file holds txn %d", errCheckpointDamaged, c.txn)
	case c.log != b.log.ID():
		return fmt.Errorf("a checkpoint of another log (%s, this one is %s)", c.log, b.log.ID())
	case txn > b.log.Head().Txn:
		return fmt.Errorf("ahead of the log, whose head is txn %d: the log lost records the checkpoint saw", b.log.Head().Txn)
	case b.log.Oldest().Txn > txn:
		return fmt.Errorf("older than the log, which has dropped the records up to txn %d", b.log.Oldest().Txn)
	}
	cat := b.cat.Load()
	store, docs := index.NewStore(cat), newDocTree()
	var d index.Diff
	for _, v := range c.docs {
		if err := cat.Diff(&d, v.ref, nil, v.data); err != nil {
			return fmt.Errorf("broker: checkpoint %s: document %s: %w", ckptName(txn), v.ref, err)
		}
		if err := store.Apply(txn, &d); err != nil {
			return fmt.Errorf("broker: checkpoint %s: document %s: %w", ckptName(txn), v.ref, err)
		}
		docs.ReplaceOrInsert(v)
	}
	b.store, b.docs, b.head = store, docs, txn
	b.logger.Info("broker: state loaded from a checkpoint", "checkpoint", ckptName(txn), "documents", len(c.docs))
	return nil
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
	txn, docs := b.head, b.docs.Clone()
	b.sinceCkpt = 0
	b.mu.Unlock()
	if txn == cp.lastTxn {
		return txn, nil
	}
	// The clone may hold pending commits: write it once they are durable.
	if err := b.awaitPublished(txn, b.closing); err != nil {
		return 0, err
	}
	// The state at txn is in the log; under SyncInterval and SyncNever it
	// may not be on disk yet, and a checkpoint must never be ahead of the
	// log it will be replayed against.
	if s, ok := b.log.(logSyncer); ok {
		if err := s.Sync(); err != nil {
			return 0, fmt.Errorf("broker: syncing the log for a checkpoint: %w", err)
		}
	}
	start := time.Now()
	stop := func() bool {
		select {
		case <-b.closing:
			return true
		default:
			return false
		}
	}
	size, err := writeCheckpointFile(cp.opt.Dir, b.log.ID(), txn, docs, stop)
	if err != nil {
		return 0, err
	}
	cp.lastTxn = txn
	b.logger.Info("broker: checkpoint written", "txn", txn, "documents", docs.Len(), "bytes", size, "took", time.Since(start))
	cp.prune(b)
	return txn, nil
}

// prune deletes all but the newest Keep checkpoints, and lets the log's
// retention go up to the oldest one kept. Called with cp.mu held.
func (cp *checkpointer) prune(b *Broker) {
	txns, err := listCheckpoints(cp.opt.Dir)
	if err != nil {
		b.logger.Warn("broker: listing checkpoints", "err", err)
		return
	}
	if len(txns) > cp.opt.Keep {
		for _, txn := range txns[cp.opt.Keep:] {
			if err := os.Remove(filepath.Join(cp.opt.Dir, ckptName(txn))); err != nil {
				b.logger.Warn("broker: removing an old checkpoint", "checkpoint", ckptName(txn), "err", err)
			}
		}
		syncDir(cp.opt.Dir)
		txns = txns[:cp.opt.Keep]
	}
	if p, ok := b.log.(logPinner); ok && len(txns) > 0 {
		p.KeepAfter(txns[len(txns)-1])
	}
}

// wroteBytes counts a commit's bytes towards the next checkpoint. Called
// with mu held.
func (b *Broker) wroteBytes(ws []txlog.Write) {
	if b.ckpt == nil {
		return
	}
	for i := range ws {
		b.sinceCkpt += int64(len(ws[i].Before) + len(ws[i].After))
	}
	if b.sinceCkpt >= b.ckpt.opt.Every {
		b.sinceCkpt = 0
		select {
		case b.ckpt.kick <- struct{}{}:
		default: // one is asked for already
		}
	}
}
