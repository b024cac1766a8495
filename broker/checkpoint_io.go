package broker

import (
	"context"
	"errors"
	"io"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/txlog"
)

// The checkpoint file format is package checkpoint's; what follows reads
// and writes the broker's documents in it.

// ckptFile is a checkpoint read back: its documents, in ref order.
type ckptFile struct {
	log  txlog.ID
	txn  txlog.Txn
	docs []*version
}

// writeStored writes docs as the checkpoint at txn in the store, and
// returns its size. stop is polled between documents; when it reports
// true the write is abandoned with errCheckpointStopped.
func writeStored(store CheckpointStore, log txlog.ID, txn txlog.Txn, docs *docTree, stop func() bool) (int64, error) {
	all := func(yield func(checkpoint.Doc) bool) {
		docs.Ascend(func(v *version) bool { return yield(checkpoint.Doc{Ref: v.ref, TS: v.ts, Data: v.data}) })
	}
	var size int64
	err := store.Put(context.Background(), txn, func(w io.Writer) error {
		cw := &countingWriter{w: w}
		err := checkpoint.Encode(cw, log, txn, all, stop)
		size = cw.n
		return err
	})
	if errors.Is(err, checkpoint.ErrStopped) {
		return 0, errCheckpointStopped
	}
	return size, err
}

var errCheckpointStopped = errors.New("broker: checkpoint abandoned: the broker is closing")
