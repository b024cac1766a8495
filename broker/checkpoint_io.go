package broker

import (
	"context"
	"errors"
	"io"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/txlog"
)

// The checkpoint file format is package checkpoint's; what follows reads
// and writes the broker's state in it.

// ckptState is the state at one txn, as a checkpoint holds it: the
// documents and the index entries, under the catalog that made them.
type ckptState struct {
	txn  txlog.Txn
	docs *docTree
	cat  *entrystore.Catalog
	sets *entrystore.Snapshot
}

// stateAt returns the state, for a checkpoint. Called with mu held: the
// documents and the entries are at the same txn, made by the same
// catalog.
func (b *Broker) stateAt() ckptState {
	return ckptState{txn: b.head, docs: b.docs.Clone(), cat: b.cat.Load(), sets: b.store.Snapshot()}
}

// writeStored writes st as the checkpoint at st.txn in the store, and
// returns its size. stop is polled every few thousand documents or
// entries; when it reports true the write is abandoned with
// errCheckpointStopped.
func writeStored(store CheckpointStore, log txlog.ID, st ckptState, stop func() bool) (int64, error) {
	all := func(yield func(checkpoint.Doc) bool) {
		st.docs.Ascend(func(v *version) bool { return yield(checkpoint.Doc{Ref: v.ref, TS: v.ts, Data: v.data}) })
	}
	// The entries are saved so that a restart under the same schema loads
	// them in order instead of extracting and sorting them again.
	idx := &checkpoint.Index{Schema: st.cat.Fingerprint()}
	for i := range st.cat.Indexes() {
		n, entries := st.sets.SavedIndex(i)
		idx.Sets = append(idx.Sets, checkpoint.Set{Len: n, Entries: func(yield func(checkpoint.Entry) bool) {
			for e := range entries {
				if !yield(checkpoint.Entry(e)) {
					return
				}
			}
		}})
	}
	var size int64
	err := store.Put(context.Background(), st.txn, func(w io.Writer) error {
		cw := &countingWriter{w: w}
		err := checkpoint.Encode(cw, log, st.txn, all, idx, stop)
		size = cw.n
		return err
	})
	if errors.Is(err, checkpoint.ErrStopped) {
		return 0, errCheckpointStopped
	}
	return size, err
}

var errCheckpointStopped = errors.New("broker: checkpoint abandoned: the broker is closing")
