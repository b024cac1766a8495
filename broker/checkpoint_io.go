package broker

import (
	"errors"

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

// readCheckpoint reads and verifies the checkpoint at path. Any defect,
// down to a flipped bit, is an error wrapping checkpoint.ErrDamaged.
func readCheckpoint(path string) (*ckptFile, error) {
	var docs []*version
	h, err := checkpoint.Read(path, func(d checkpoint.Doc) {
		docs = append(docs, &version{ref: d.Ref, ts: d.TS, data: d.Data})
	})
	if err != nil {
		return nil, err
	}
	return &ckptFile{log: h.Log, txn: h.Txn, docs: docs}, nil
}

// writeCheckpointFile writes docs as the checkpoint at txn in dir,
// atomically (see checkpoint.WriteFile). stop is polled between documents;
// when it reports true the write is abandoned with errCheckpointStopped.
func writeCheckpointFile(dir string, log txlog.ID, txn txlog.Txn, docs *docTree, stop func() bool) (int64, error) {
	all := func(yield func(checkpoint.Doc) bool) {
		docs.Ascend(func(v *version) bool { return yield(checkpoint.Doc{Ref: v.ref, TS: v.ts, Data: v.data}) })
	}
	n, err := checkpoint.WriteFile(dir, log, txn, all, stop)
	if errors.Is(err, checkpoint.ErrStopped) {
		return 0, errCheckpointStopped
	}
	return n, err
}

var errCheckpointStopped = errors.New("broker: checkpoint abandoned: the broker is closing")
