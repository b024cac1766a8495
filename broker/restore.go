package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/txlog"
)

// loadState rebuilds the documents and indexes when New opens a log that
// holds records, in three steps:
//
//  1. the documents of the newest usable checkpoint, if any, and its index
//     entries if it was written under the same index definitions: saved
//     in order, they are loaded into the trees as they come, with nothing
//     to extract or sort;
//  2. the log after it (or the whole log), applied to the documents only:
//     index entries of versions that a later write replaces would be built
//     only to be torn down;
//  3. the index entries: with the checkpoint's, the diff of each document
//     the log changed since, from its checkpoint version to its final one;
//     otherwise, or when the log changed too many documents for that to
//     be quicker, the entries of the final documents, built in bulk
//     (sorted, then inserted in order) by as many goroutines as there are
//     processors.
func (b *Broker) loadState() error {
	start := time.Now()
	cp := b.ckpt
	var tried []string
	indexed := false // the store holds the checkpoint's entries
	if cp != nil {
		// A checkpoint write that a crash interrupted left a temporary file.
		if d, ok := cp.store.(dirStore); ok {
			if tmps, _ := filepath.Glob(filepath.Join(d.dir, checkpoint.Prefix+"*"+checkpoint.TempSuffix)); len(tmps) > 0 {
				for _, t := range tmps {
					os.Remove(t)
				}
			}
		}
		txns, err := cp.store.List(context.Background())
		if err != nil {
			return fmt.Errorf("broker: listing checkpoints: %w", err)
		}
		for _, txn := range txns {
			var err error
			indexed, err = b.loadCheckpoint(txn)
			if err == nil {
				cp.lastTxn = txn
				break
			}
			b.logger.Warn("broker: skipping a checkpoint", "checkpoint", checkpoint.Name(txn), "err", err)
			tried = append(tried, fmt.Sprintf("%s: %v", checkpoint.Name(txn), err))
			if errors.Is(err, errAheadOfLog) {
				// Set it aside: once the log's head passes its txn it would
				// look usable, though the log's history no longer matches it.
				if err := cp.setAside(txn); err != nil {
					return fmt.Errorf("broker: setting aside a checkpoint ahead of the log: %w", err)
				}
			}
		}
		if d, ok := b.log.(txlog.Durable); ok {
			keep := txlog.Txn(0)
			if len(txns) > 0 {
				keep = min(txns[len(txns)-1], cp.lastTxn)
			}
			d.KeepAfter(keep)
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
	fromCkpt := b.head
	var touched map[txlog.Ref]*version
	if indexed {
		touched = map[txlog.Ref]*version{}
	}
	replayed, replayedBytes, touched, err := b.replay(touched)
	if err != nil {
		return err
	}
	if cp != nil {
		// What was written since the checkpoint counts towards the next
		// (one is written as New returns if it adds up to Every already),
		// so that processes that each end, by Close or by a kill, before
		// writing Every bytes still checkpoint, and retention reclaims the
		// log.
		b.countBytes(replayedBytes)
	}
	if b.docs.Len() == 0 && b.head == 0 {
		return nil
	}
	entriesFrom := "the documents"
	if touched != nil {
		if err := b.indexTouched(touched); err != nil {
			return err
		}
		entriesFrom = fmt.Sprintf("the checkpoint, %d documents changed since", len(touched))
	} else if err := b.buildIndexes(); err != nil {
		return err
	}
	b.logger.Info("broker: state rebuilt", "txn", b.head, "documents", b.docs.Len(), "entries", b.store.Len(), "entries from", entriesFrom,
		"checkpoint", fromCkpt, "records replayed", replayed, "bytes replayed", replayedBytes, "took", time.Since(start))
	return nil
}

// setAside takes a checkpoint ahead of the log out of the store: renamed
// in a directory (for whoever wants to look at it), deleted elsewhere.
func (cp *checkpointer) setAside(txn txlog.Txn) error {
	if d, ok := cp.store.(dirStore); ok {
		path := filepath.Join(d.dir, checkpoint.Name(txn))
		return os.Rename(path, path+ckptAside)
	}
	return cp.store.Delete(context.Background(), txn)
}

// errAheadOfLog: a checkpoint of a txn the log does not have.
var errAheadOfLog = errors.New("ahead of the log")

// ckptAside is the suffix of a checkpoint set aside as unusable for good.
const ckptAside = ".ahead"

// loadCheckpoint makes the documents of the checkpoint at txn the state,
// if it is whole and fits the log: of this log, not ahead of its head, and
// not older than what the log still holds. indexed reports whether the
// store now holds its index entries; if not, they are to be rebuilt.
func (b *Broker) loadCheckpoint(txn txlog.Txn) (indexed bool, err error) {
	if _, shared := b.log.(txlog.Shared); shared && txn > b.log.Head().Txn {
		// Another node wrote it after this one read where the log ends:
		// the log moved on, it did not lose anything. An older one does.
		return false, fmt.Errorf("newer than this node's head, txn %d: another node wrote it since", b.log.Head().Txn)
	}
	cat := b.cat.Load()
	c, err := readStored(context.Background(), b.ckpt.store, txn, cat, func(h checkpoint.Header) error {
		switch {
		case h.Txn != txn:
			return fmt.Errorf("%w: the file holds txn %d", checkpoint.ErrDamaged, h.Txn)
		case h.Log != b.log.ID():
			return fmt.Errorf("a checkpoint of another log (%s, this one is %s)", h.Log, b.log.ID())
		case txn > b.log.Head().Txn:
			return fmt.Errorf("%w, whose head is txn %d: the log lost records the checkpoint saw (set aside as %s)",
				errAheadOfLog, b.log.Head().Txn, checkpoint.Name(txn)+ckptAside)
		case b.log.Oldest().Txn > txn:
			return fmt.Errorf("older than the log, which has dropped the records up to txn %d", b.log.Oldest().Txn)
		}
		return nil
	}, func(docs int) string {
		if !b.tailWithin(txn, tailLimit(docs)) {
			return "the log after it changes too many documents: rebuilding is quicker"
		}
		return ""
	})
	if err != nil {
		return false, err
	}
	var store *entrystore.Store
	if c.entries != nil {
		if store, err = c.entries.Store(txn); err != nil {
			return false, fmt.Errorf("%w: %w", checkpoint.ErrDamaged, err)
		}
	}
	b.docs, b.head = c.docs, txn
	if store != nil {
		b.store = store
		b.logger.Info("broker: state loaded from a checkpoint", "checkpoint", checkpoint.Name(txn), "documents", c.docs.Len(), "entries", store.Len())
	} else {
		b.logger.Info("broker: state loaded from a checkpoint; its index entries are to be rebuilt", "checkpoint", checkpoint.Name(txn),
			"documents", c.docs.Len(), "why", c.noEntries)
	}
	return store != nil, nil
}

// replay applies the log after the state's head (zero: the whole log) to
// the documents, and returns how many records it read and their bytes as
// CheckpointOptions.Every counts them. Unless touched is nil, it records
// there the version each document it changes had before (nil if none),
// for indexTouched, and returns it; or nil once the documents changed are
// too many for that to be quicker than rebuilding every entry.
func (b *Broker) replay(touched map[txlog.Ref]*version) (n int, nbytes int64, _ map[txlog.Ref]*version, err error) {
	if b.log.Head().Txn <= b.head {
		return 0, 0, touched, nil
	}
	cat := b.cat.Load()
	from := txlog.Pos{}
	if b.head > 0 {
		from = txlog.AfterTxn(b.head)
	}
	limit := tailLimit(b.docs.Len())
	for rec, err := range b.log.Read(txlog.Cursor{Log: b.log.ID(), Pos: from}) {
		if err != nil {
			return n, nbytes, nil, fmt.Errorf("broker: replaying the log: %w", err)
		}
		for i := range rec.Writes {
			w := &rec.Writes[i]
			if w.Action == txlog.ActionRewrite {
				continue
			}
			if _, err := cat.CollectionSet(w.Ref.Collection); err != nil {
				return n, nbytes, nil, fmt.Errorf("broker: replaying txn %d: %s: %w (declare it in Options.Schema)", rec.Txn, w.Ref, err)
			}
			if touched != nil {
				if _, ok := touched[w.Ref]; !ok {
					if len(touched) >= limit {
						// The checkpoint's entries are no use now: let
						// them go before the rest of the log is read.
						touched, b.store = nil, entrystore.NewStore(cat)
					} else {
						touched[w.Ref] = getVersion(b.docs, w.Ref)
					}
				}
			}
			// A copy: w.After shares the record's buffer, before images
			// included, which the state must not keep alive.
			var data []byte
			if w.After != nil {
				data = bytes.Clone(w.After)
			}
			b.setVersion(w.Ref, rec.Txn, data)
		}
		b.head = rec.Txn
		n++
		nbytes += writesBytes(rec.Writes)
	}
	return n, nbytes, touched, nil
}

// tailLimit is how many documents of docs the log after a checkpoint may
// change for its entries to be worth loading and diffing: past a quarter
// of them, diffing each (two documents to read, entries inserted at
// random) costs more than the bulk build.
func tailLimit(docs int) int { return docs/4 + 1000 }

// tailWithin reports whether the log after txn holds at most limit
// writes, reading no more of it than that. Writes, not documents: it is
// the cheap bound, which replay's count of documents then refines.
func (b *Broker) tailWithin(txn txlog.Txn, limit int) bool {
	if b.log.Head().Txn <= txn {
		return true
	}
	n := 0
	for rec, err := range b.log.Read(txlog.Cursor{Log: b.log.ID(), Pos: txlog.AfterTxn(txn)}) {
		if err != nil {
			return false // replay will say what is wrong
		}
		if n += len(rec.Writes); n > limit {
			return false
		}
	}
	return true
}

// indexTouched brings the entries of a checkpoint up to the head: for
// each document the log changed after it, the diff from its version in
// the checkpoint (before, nil if none) to its current one.
func (b *Broker) indexTouched(touched map[txlog.Ref]*version) error {
	cat := b.cat.Load()
	var d entrystore.Diff
	for ref, old := range touched {
		var before, after []byte
		if old != nil {
			before = old.data
		}
		if v := getVersion(b.docs, ref); v != nil {
			after = v.data
		}
		err := cat.Diff(&d, ref, before, after)
		if err == nil {
			err = b.store.Apply(b.head, &d)
		}
		if err != nil {
			return fmt.Errorf("broker: indexing %s: %w", ref, err)
		}
	}
	return nil
}

// buildIndexes builds the index store of the documents, at the head:
// diffs computed in parallel over slices of the documents, entries sorted
// and inserted in order (entrystore.Bulk).
func (b *Broker) buildIndexes() error {
	cat := b.cat.Load()
	vs := make([]*version, 0, b.docs.Len())
	b.docs.Ascend(func(v *version) bool {
		vs = append(vs, v)
		return true
	})
	workers := max(1, min(runtime.GOMAXPROCS(0), len(vs)/8192))
	bulks := make([]*entrystore.Bulk, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := vs[w*len(vs)/workers : (w+1)*len(vs)/workers]
		bulks[w] = entrystore.NewBulk(cat)
		wg.Go(func() {
			var d entrystore.Diff
			for _, v := range part {
				err := cat.Diff(&d, v.ref, nil, v.data)
				if err == nil {
					err = bulks[w].Add(&d)
				}
				if err != nil {
					errs[w] = fmt.Errorf("broker: indexing %s: %w", v.ref, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := bulks[0].Merge(bulks[1:]...); err != nil {
		return err
	}
	store, err := bulks[0].Store(b.head)
	if err != nil {
		return fmt.Errorf("broker: indexing: %w", err)
	}
	b.store = store
	return nil
}
