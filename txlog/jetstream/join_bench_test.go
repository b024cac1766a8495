package jetstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// readOnly is a CheckpointStore that loads but does not write: a node
// that joins in a benchmark leaves the store as it found it.
type readOnly struct{ broker.CheckpointStore }

func (readOnly) Put(context.Context, txlog.Txn, func(io.Writer) error) error {
	return errors.New("read-only in this benchmark")
}

// BenchmarkJoin: the time a new node takes to join a stream (R1, file
// storage) from the shared checkpoint of docs documents in the object
// store, with two indexes, and the 10,000 documents written after it:
// broker.New, which reads the checkpoint, replays the stream after it and
// builds the index entries.
func BenchmarkJoin(b *testing.B) {
	for _, docs := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("docs=%d", docs), func(b *testing.B) {
			schema := index.Schema{
				Collections: []string{"spells"},
				Indexes: []index.Definition{
					{Name: "by_element", Collection: "spells", Terms: []string{"element"}},
					{Name: "by_school", Collection: "spells", Terms: []string{"school"}, Values: []string{"name"}},
				},
			}
			js := connect(b, runServer(b).ClientURL())
			ctx := context.Background()
			name := newStreamName()
			open := func() (*Log, *Checkpoints) {
				l := openLog(b, js, Options{Stream: name})
				cps, err := OpenCheckpoints(ctx, js, name+"-checkpoints", l, 1)
				if err != nil {
					b.Fatal(err)
				}
				return l, cps
			}
			l, cps := open()
			first, err := broker.New(broker.Options{Log: l, Schema: schema, Checkpoint: broker.CheckpointOptions{Store: cps}})
			if err != nil {
				b.Fatal(err)
			}
			write := func(from, to int) {
				for i := from; i < to; i += 1000 {
					if _, err := first.Commit(ctx, func(tx *broker.Tx) error {
						for j := i; j < min(i+1000, to); j++ {
							data := fmt.Appendf(nil, `{"name":"spell %d","element":%q,"school":"s%d","cost":%d}`, j, []string{"fire", "water", "earth", "air"}[j%4], j%100, j%1000)
							if err := tx.Create(txlog.Ref{Collection: "spells", ID: fmt.Sprint(j)}, data); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
			}
			start := time.Now()
			write(0, docs)
			written := time.Since(start)
			start = time.Now()
			if _, err := first.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			b.Logf("%d documents committed in %v, checkpointed in %v", docs, written.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			write(docs, docs+10_000)
			head := first.Head()
			// Open until the end: its Close checkpoints the head, which a
			// joining node would load instead of replaying the stream.
			defer first.Close()

			b.ResetTimer()
			for b.Loop() {
				l, cps := open()
				n, err := broker.New(broker.Options{Log: l, Schema: schema, Checkpoint: broker.CheckpointOptions{Store: readOnly{cps}}})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n.Head() != head {
					b.Fatalf("joined at %d, the stream is at %d", n.Head(), head)
				}
				if _, ok := n.Get(txlog.Ref{Collection: "spells", ID: fmt.Sprint(docs + 9_999)}); !ok {
					b.Fatal("the last document written is missing")
				}
				n.Close()
				b.StartTimer()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/join")
		})
	}
}
