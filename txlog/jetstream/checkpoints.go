package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/txlog"
)

// Checkpoints is a broker.CheckpointStore in a JetStream object store,
// shared by the nodes of a replicated broker: a node started on the
// stream loads the newest checkpoint any node wrote, and replays only the
// stream after it.
//
//	cps, err := tjs.OpenCheckpoints(ctx, js, "spells-checkpoints", log, 3)
//	b, err := broker.New(broker.Options{Log: log, Schema: schema,
//		Checkpoint: broker.CheckpointOptions{Store: cps}})
//
// Each checkpoint records the stream sequence of its txn (object metadata
// seqMeta), which a node loading it hands to its log, so that the replay
// after it starts there without searching the stream. And the checkpoints
// hold the stream's retention back, in the other direction: when a
// checkpoint is deleted (the broker keeps CheckpointOptions.Keep), the
// stream is purged below the oldest one left, everything before it being
// in every checkpoint kept. So a stream with shared checkpoints needs no
// limits of its own (Options.MaxRecords and the others), which would drop
// records no checkpoint covers.
//
// Concurrency: safe for concurrent use, and by several nodes at once.
type Checkpoints struct {
	store jetstream.ObjectStore
	log   *Log
}

// seqMeta is the object metadata that holds a checkpoint's stream sequence.
const seqMeta = "tidings-seq"

// OpenCheckpoints opens the object store bucket of a log's checkpoints,
// creating it (with that many replicas) if it does not exist.
func OpenCheckpoints(ctx context.Context, js jetstream.JetStream, bucket string, log *Log, replicas int) (*Checkpoints, error) {
	store, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		store, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Replicas: max(replicas, 1), Storage: jetstream.FileStorage})
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: the checkpoints' bucket %s: %w", bucket, err)
	}
	return &Checkpoints{store: store, log: log}, nil
}

// List implements broker.CheckpointStore.
func (c *Checkpoints) List(ctx context.Context) ([]txlog.Txn, error) {
	infos, err := c.list(ctx)
	txns := make([]txlog.Txn, len(infos))
	for i, info := range infos {
		txns[i] = info.txn
	}
	return txns, err
}

// kept is a checkpoint in the store.
type kept struct {
	txn txlog.Txn
	seq uint64 // 0: not recorded
}

// list returns the checkpoints held, newest first.
func (c *Checkpoints) list(ctx context.Context) ([]kept, error) {
	infos, err := c.store.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var all []kept
	for _, info := range infos {
		txn, ok := checkpoint.ParseName(info.Name)
		if !ok || info.Deleted {
			continue
		}
		seq, _ := strconv.ParseUint(info.Metadata[seqMeta], 10, 64)
		all = append(all, kept{txn, seq})
	}
	slices.SortFunc(all, func(a, b kept) int { return cmp.Compare(b.txn, a.txn) })
	return all, nil
}

// Open implements broker.CheckpointStore. The checkpoint's stream sequence
// goes to the log, for the replay after it.
func (c *Checkpoints) Open(ctx context.Context, txn txlog.Txn) (io.ReadCloser, int64, error) {
	r, err := c.store.Get(ctx, checkpoint.Name(txn))
	if err != nil {
		return nil, 0, err
	}
	info, err := r.Info()
	if err != nil {
		r.Close()
		return nil, 0, err
	}
	if seq, err := strconv.ParseUint(info.Metadata[seqMeta], 10, 64); err == nil && c.log != nil {
		c.log.mu.Lock()
		c.log.index.add(seq, txn)
		c.log.mu.Unlock()
	}
	return r, int64(info.Size), nil
}

// Put implements broker.CheckpointStore: the object is visible once its
// last chunk is in (JetStream's object store publishes its description
// last), with the stream sequence of txn when the log knows it.
func (c *Checkpoints) Put(ctx context.Context, txn txlog.Txn, write func(io.Writer) error) error {
	meta := jetstream.ObjectMeta{Name: checkpoint.Name(txn)}
	if seq, ok := c.log.seqOf(txn); ok {
		meta.Metadata = map[string]string{seqMeta: strconv.FormatUint(seq, 10)}
	}
	pr, pw := io.Pipe()
	wrote := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		wrote <- err
	}()
	_, err := c.store.Put(ctx, meta, pr)
	pr.CloseWithError(errors.New("jetstream: the object store stopped reading")) // unblocks the writer
	if werr := <-wrote; werr != nil {
		return werr
	}
	return err
}

// Delete implements broker.CheckpointStore, then purges the stream below
// the oldest checkpoint left (see Checkpoints).
func (c *Checkpoints) Delete(ctx context.Context, txn txlog.Txn) error {
	if err := c.store.Delete(ctx, checkpoint.Name(txn)); err != nil {
		return err
	}
	left, err := c.list(ctx)
	if err != nil || len(left) == 0 || c.log == nil {
		return err
	}
	oldest := left[len(left)-1]
	if oldest.seq == 0 {
		return nil
	}
	// Below the record of the oldest checkpoint's txn: that record stays,
	// so that Oldest, read from its header, is where the checkpoint is.
	return c.log.stream.Purge(ctx, jetstream.WithPurgeSequence(oldest.seq))
}

// seqOf is the stream sequence of txn's record (its first part), if the
// log has seen it.
func (l *Log) seqOf(txn txlog.Txn) (uint64, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	x := &l.index
	i, ok := slices.BinarySearch(x.txns, txn)
	if !ok {
		return 0, false
	}
	return x.seqs[i], true
}
