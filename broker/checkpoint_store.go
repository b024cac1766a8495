package broker

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/txlog"
)

// CheckpointStore keeps checkpoints elsewhere than in a local directory:
// in a store that the nodes of a replicated broker share (such as
// txlog/jetstream's object store), so that a new node starts from a
// checkpoint another node wrote, and replays only the log after it.
// Every node at a txn holds the same state, so any node's checkpoint of a
// txn is every node's.
//
// Concurrency: methods may be called from several goroutines, and by
// several nodes at once; a checkpoint Put twice at one txn holds the same
// bytes either way.
type CheckpointStore interface {
	// List returns the txns of the checkpoints held, newest first.
	List(ctx context.Context) ([]txlog.Txn, error)
	// Open returns the checkpoint at txn, and its size in bytes.
	Open(ctx context.Context, txn txlog.Txn) (io.ReadCloser, int64, error)
	// Put stores the bytes that write writes as the checkpoint at txn. It
	// is listed only once whole: if write or the store fails, nothing is.
	Put(ctx context.Context, txn txlog.Txn, write func(io.Writer) error) error
	// Delete removes the checkpoint at txn.
	Delete(ctx context.Context, txn txlog.Txn) error
}

// dirStore is the CheckpointStore of CheckpointOptions.Dir: a file per
// checkpoint, written atomically (checkpoint.WriteFile).
type dirStore struct{ dir string }

func (d dirStore) List(context.Context) ([]txlog.Txn, error) { return checkpoint.List(d.dir) }

func (d dirStore) Open(_ context.Context, txn txlog.Txn) (io.ReadCloser, int64, error) {
	f, err := os.Open(filepath.Join(d.dir, checkpoint.Name(txn)))
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func (d dirStore) Put(_ context.Context, txn txlog.Txn, write func(io.Writer) error) error {
	_, err := checkpoint.WriteFile(d.dir, txn, write)
	return err
}

func (d dirStore) Delete(_ context.Context, txn txlog.Txn) error {
	if err := os.Remove(filepath.Join(d.dir, checkpoint.Name(txn))); err != nil {
		return err
	}
	return checkpoint.SyncDir(d.dir)
}

// readStored reads and verifies the checkpoint at txn from a store.
func readStored(ctx context.Context, store CheckpointStore, txn txlog.Txn) (*ckptFile, error) {
	r, size, err := store.Open(ctx, txn)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var docs []*version
	h, err := checkpoint.Decode(bufio.NewReaderSize(r, 1<<20), size, func(d checkpoint.Doc) {
		docs = append(docs, &version{ref: d.Ref, ts: d.TS, data: d.Data})
	})
	if err != nil {
		return nil, err
	}
	return &ckptFile{log: h.Log, txn: h.Txn, docs: docs}, nil
}

// countingWriter counts what goes through it, for the log line of a
// checkpoint written.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
