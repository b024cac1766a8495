package broker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/internal/entrystore"
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

// ckptFile is a checkpoint read back: its documents, and its index
// entries ready to be built into a store (nil when they cannot be used:
// noEntries says why).
type ckptFile struct {
	docs      *docTree
	entries   *entrystore.Loader
	noEntries string
}

// readStored reads and verifies the checkpoint at txn from a store. check
// refuses it from its header, before the rest is read. The entries are
// kept only if they were made under cat's schema and skip, given the
// number of documents, has no reason ("") to leave them.
func readStored(ctx context.Context, store CheckpointStore, txn txlog.Txn, cat *entrystore.Catalog,
	check func(checkpoint.Header) error, skip func(docs int) string) (*ckptFile, error) {
	r, size, err := store.Open(ctx, txn)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	d, err := checkpoint.NewDecoder(r, size)
	if err != nil {
		return nil, err
	}
	if err := check(d.Header()); err != nil {
		return nil, err
	}
	var docs []*version
	if err := d.Docs(func(doc checkpoint.Doc) {
		docs = append(docs, &version{ref: doc.Ref, ts: doc.TS, data: doc.Data})
	}); err != nil {
		return nil, err
	}
	// The documents' tree fills on another goroutine while this one reads
	// the entries.
	c := &ckptFile{}
	filled := make(chan struct{})
	go func() {
		defer close(filled)
		c.docs = fillDocTree(docs)
	}()
	fp, _ := d.Schema()
	switch {
	case d.Header().Version < 2:
		c.noEntries = fmt.Sprintf("the checkpoint is of format version %d, which has none", d.Header().Version)
	case fp != cat.Fingerprint():
		c.noEntries = "the checkpoint was written under other index definitions"
	default:
		if c.noEntries = skip(len(docs)); c.noEntries != "" {
			break
		}
		c.entries = entrystore.NewLoader(cat, len(docs))
		for _, v := range docs {
			if err := c.entries.AddDoc(v.ref); err != nil {
				// Rebuilding says what is wrong with it.
				c.entries.Discard()
				c.entries, c.noEntries = nil, err.Error()
				break
			}
		}
	}
	if c.entries != nil {
		err = loadEntries(d, c.entries)
	}
	if err == nil {
		err = d.Finish()
	}
	<-filled
	if err != nil {
		if c.entries != nil {
			c.entries.Discard()
		}
		return nil, err
	}
	return c, nil
}

// loadEntries reads the index entries of a checkpoint into l.
func loadEntries(d *checkpoint.Decoder, l *entrystore.Loader) error {
	for i := 0; ; i++ {
		n, ok, err := d.NextSet()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := l.StartIndex(i, n); err != nil {
			return fmt.Errorf("%w: %w", checkpoint.ErrDamaged, err)
		}
		for range n {
			key, terms, values, err := d.Entry()
			if err != nil {
				return err
			}
			if err := l.AddEntry(key, terms, values); err != nil {
				return fmt.Errorf("%w: %w", checkpoint.ErrDamaged, err)
			}
		}
	}
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
