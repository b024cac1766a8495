package broker

// Benchmarks of restarts: restart time and memory for a state of 1M
// documents with 2 indexes, from a checkpoint and by replaying the log,
// and the time to write that checkpoint. Run them with
//
//	go test -run '^$' -bench 'Restart|CheckpointWrite' -benchtime 2x -count 3 -timeout 30m ./broker/
//
// in about 5 minutes on two quiet cores, at a peak of about 1.5 GB of
// memory and 1.3 GB of disk; -bench 'Restart$|CheckpointWrite' leaves out
// the variants with history.
//
// Each top-level benchmark builds its state once, untimed (commits of 1000
// documents on a file log under SyncNever, and a checkpoint), in a
// temporary directory of its own that is deleted when it ends; its
// sub-benchmarks, and every -count run of them, share it. The restarts
// read files the build has just written, so they measure a warm page
// cache: a cold one adds the time to read MiB-log or MiB-ckpt from disk.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/txlog"
)

const (
	restartDocs  = 1_000_000
	restartBatch = 1000
)

// restartSchema: orders, indexed by region (100 values) and by customer
// (1000 values, with values: each customer's orders by date and total).
var restartSchema = index.Schema{
	Collections: []string{"orders"},
	Indexes: []index.Definition{
		{Name: "orders_by_region", Collection: "orders", Terms: []string{"region"}},
		{Name: "orders_by_customer", Collection: "orders", Terms: []string{"customer"}, Values: []string{"placed", "total"}},
	},
}

// restartEntries is the number of index entries of the state: each order
// is in its collection's set and has one entry in each index.
const restartEntries = 3 * restartDocs

var restartLogger = slog.New(slog.DiscardHandler)

var (
	orderStatuses = []string{"pending", "paid", "packed", "shipped", "delivered", "returned"}
	orderNotes    = []string{"", "leave at the door", "call before delivery", "gift wrap, no invoice in the parcel", "fragile", "deliver after 6pm on weekdays"}
)

// restartDoc returns order i at revision rev: about 260 bytes of JSON,
// the same for the same i and rev.
func restartDoc(i, rev int) (txlog.Ref, []byte) {
	r := rand.New(rand.NewPCG(uint64(i), uint64(rev)))
	ref := txlog.Ref{Collection: "orders", ID: fmt.Sprintf("o%07d", i)}
	data := fmt.Appendf(nil, `{"number":"ORD-%07d","customer":"cust-%04d","region":"region-%02d","status":%q,`+
		`"placed":"2025-%02d-%02dT%02d:%02d:%02dZ","total":%d.%02d,`+
		`"items":[{"sku":"SKU-%06d","qty":%d},{"sku":"SKU-%06d","qty":%d}],"city":"City %d","note":%q,"rev":%d}`,
		i, r.IntN(1000), r.IntN(100), orderStatuses[r.IntN(len(orderStatuses))],
		1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(2000), r.IntN(100),
		r.IntN(1_000_000), 1+r.IntN(5), r.IntN(1_000_000), 1+r.IntN(5), r.IntN(5000), orderNotes[r.IntN(len(orderNotes))], rev)
	return ref, data
}

// restartState is a file log of restartDocs orders: each created once,
// in commits of restartBatch, then replaced by rev more revisions of
// itself in the same way, with a checkpoint after each of these passes.
type restartState struct {
	dir      string
	head     txlog.Txn
	rev      int         // every document's revision at head
	ckpts    []txlog.Txn // the checkpoints, oldest first; the last at head
	logBytes int64       // the segment files
}

// buildRestartState writes the state into dir.
func buildRestartState(b *testing.B, dir string, rev int) *restartState {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	// No checkpoint but those written after each pass, all kept.
	br := openRestart(b, dir, txlog.SyncNever, CheckpointOptions{Every: 1 << 62, Interval: 1000 * time.Hour, Keep: rev + 1})
	st := &restartState{dir: dir, rev: rev}
	for r := 0; r <= rev; r++ {
		for i := 0; i < restartDocs; i += restartBatch {
			benchCommit(b, br, func(tx *Tx) error {
				for j := i; j < i+restartBatch; j++ {
					write := tx.Replace
					if r == 0 {
						write = tx.Create
					}
					if err := write(restartDoc(j, r)); err != nil {
						return err
					}
				}
				return nil
			})
		}
		st.head = br.Head()
		txn, err := br.Checkpoint(ctx)
		if err != nil || txn != st.head {
			b.Fatalf("checkpoint at txn %d (%v), want the head %d", txn, err, st.head)
		}
		st.ckpts = append(st.ckpts, txn)
	}
	if err := br.Close(); err != nil {
		b.Fatal(err)
	}
	st.logBytes = dirBytes(b, dir)
	b.Logf("built %d documents × %d revisions in %s: log %.0f MiB, checkpoint %.0f MiB", restartDocs, rev+1,
		time.Since(start).Round(time.Millisecond), mib(st.logBytes), mib(fileBytes(b, st.ckptFile(len(st.ckpts)-1))))
	return st
}

// ckptFile is the path of the k-th checkpoint.
func (st *restartState) ckptFile(k int) string {
	return filepath.Join(st.dir, "checkpoints", checkpoint.Name(st.ckpts[k]))
}

// openRestart opens the log in dir and a broker on it.
func openRestart(b *testing.B, dir string, sync txlog.SyncPolicy, ckpt CheckpointOptions) *Broker {
	b.Helper()
	l, err := txlog.OpenFile(dir, txlog.FileOptions{Sync: sync, Logger: restartLogger})
	if err != nil {
		b.Fatal(err)
	}
	br, err := New(Options{Log: l, Schema: restartSchema, Checkpoint: ckpt, Logger: restartLogger})
	if err != nil {
		l.Close()
		b.Fatal(err)
	}
	return br
}

// checkRestored fails b unless br holds the whole state of st.
func checkRestored(b *testing.B, br *Broker, st *restartState) {
	b.Helper()
	br.mu.Lock()
	head, docs, entries := br.head, br.docs.Len(), br.store.Len()
	br.mu.Unlock()
	if head != st.head || docs != restartDocs || entries != restartEntries {
		b.Fatalf("restored head %d, %d documents, %d index entries; want %d, %d, %d",
			head, docs, entries, st.head, restartDocs, restartEntries)
	}
	for _, i := range []int{0, restartDocs / 3, restartDocs - 1} {
		ref, want := restartDoc(i, st.rev)
		if d, ok := br.Get(ref); !ok || !bytes.Equal(d.Data, want) {
			b.Fatalf("restored %s: %s (%v), want %s", ref, d.Data, ok, want)
		}
	}
}

// dirBytes is the size of the regular files directly in dir.
func dirBytes(b *testing.B, dir string) int64 {
	b.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			b.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func fileBytes(b *testing.B, path string) int64 {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// heapWatch samples the bytes of heap objects (live and not yet
// collected) every few milliseconds, keeping the highest.
type heapWatch struct {
	stop, done chan struct{}
	peak       uint64
}

func watchHeap() *heapWatch {
	w := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			w.peak = max(w.peak, s[0].Value.Uint64())
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// end stops the sampling and returns the peak.
func (w *heapWatch) end() uint64 {
	close(w.stop)
	<-w.done
	return w.peak
}

// restartVariant is one way to restart: its options, and the checkpoint
// file it loads ("" for none).
type restartVariant struct {
	name string
	ckpt CheckpointOptions
	file string
}

// BenchmarkRestart measures a restart of a broker on a file log of 1M
// documents (about 260 bytes of JSON each) with 2 indexes: txlog.OpenFile
// and New, until the documents and every index entry are rebuilt. Each
// restart is checked (head, document count, index entry count and a few
// documents) before the broker is closed.
//
//   - checkpoint: from the checkpoint at the log's head (the default
//     CheckpointOptions); nothing is left to replay.
//   - log-replay: checkpoints disabled, the whole log is replayed (the
//     same directory: with Disable the checkpoint is not looked at).
//
// Metrics: s/restart; MiB-live, the live heap the restarted broker holds
// (after a GC, over the live heap before opening); MiB-peak-heap, the
// highest heap (live and garbage) sampled during the restart over that
// same base, which depends on GOGC; MiB-alloc, the bytes allocated by a
// restart; MiB-log, the log's segments on disk, and MiB-ckpt, the
// checkpoint file read.
func BenchmarkRestart(b *testing.B) {
	st := buildRestartState(b, b.TempDir(), 0)
	for _, v := range []restartVariant{
		{"checkpoint", CheckpointOptions{}, st.ckptFile(0)},
		{"log-replay", CheckpointOptions{Disable: true}, ""},
	} {
		b.Run(v.name, func(b *testing.B) { benchRestart(b, st, v) })
	}
}

// BenchmarkRestartHistory is BenchmarkRestart on a log with history: the
// 1M documents created, then each replaced once (a log of 2M writes, the
// replacements with their before images), with checkpoints after the
// creates and at the head.
//
//   - checkpoint: from the checkpoint at the head.
//   - checkpoint+tail: from the checkpoint after the creates (alone in a
//     directory of its own, CheckpointOptions.Dir), then the 1M
//     replacements after it replayed.
//   - log-replay: the 2M writes replayed.
func BenchmarkRestartHistory(b *testing.B) {
	st := buildRestartState(b, b.TempDir(), 1)
	older := filepath.Join(st.dir, "older-checkpoint")
	if err := os.Mkdir(older, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Link(st.ckptFile(0), filepath.Join(older, checkpoint.Name(st.ckpts[0]))); err != nil {
		b.Fatal(err)
	}
	for _, v := range []restartVariant{
		{"checkpoint", CheckpointOptions{}, st.ckptFile(1)},
		{"checkpoint+tail", CheckpointOptions{Dir: older}, st.ckptFile(0)},
		{"log-replay", CheckpointOptions{Disable: true}, ""},
	} {
		b.Run(v.name, func(b *testing.B) { benchRestart(b, st, v) })
	}
}

func benchRestart(b *testing.B, st *restartState, v restartVariant) {
	var (
		took               time.Duration
		live, peak, allocd float64
		n                  int
	)
	for b.Loop() {
		b.StopTimer()
		base := liveHeap()
		alloc0 := totalAlloc()
		w := watchHeap()
		b.StartTimer()

		start := time.Now()
		br := openRestart(b, st.dir, txlog.SyncBatch, v.ckpt)
		took += time.Since(start)

		b.StopTimer()
		peak += float64(w.end()) - float64(base)
		allocd += float64(totalAlloc() - alloc0)
		checkRestored(b, br, st)
		live += float64(liveHeap()) - float64(base)
		if err := br.Close(); err != nil { // br is live until here
			b.Fatal(err)
		}
		n++
		b.StartTimer()
	}
	b.ReportMetric(took.Seconds()/float64(n), "s/restart")
	b.ReportMetric(live/float64(n)/(1<<20), "MiB-live")
	b.ReportMetric(peak/float64(n)/(1<<20), "MiB-peak-heap")
	b.ReportMetric(allocd/float64(n)/(1<<20), "MiB-alloc")
	b.ReportMetric(mib(st.logBytes), "MiB-log")
	if v.file != "" {
		b.ReportMetric(mib(fileBytes(b, v.file)), "MiB-ckpt")
	}
}

// BenchmarkCheckpointWrite measures Checkpoint on a broker of the 1M
// documents of BenchmarkRestart, opened from its checkpoint. Each
// iteration first commits one replacement (untimed), so that the
// checkpoint is at a new head and is written, not skipped; the time is
// Checkpoint's whole call: the log's fsync, writing and fsyncing the file,
// the rename, and pruning to the two newest. Metrics: s/checkpoint,
// MiB-alloc per checkpoint, and MiB-ckpt, the size of the file written.
func BenchmarkCheckpointWrite(b *testing.B) {
	st := buildRestartState(b, b.TempDir(), 0)
	// Written only when asked, never by the broker's own goroutine.
	br := openRestart(b, st.dir, txlog.SyncNever, CheckpointOptions{Every: 1 << 62, Interval: 1000 * time.Hour})
	defer br.Close()
	checkRestored(b, br, st)
	rev := 0
	b.Run("docs=1M", func(b *testing.B) {
		ctx := context.Background()
		var (
			took   time.Duration
			allocd float64
			n      int
		)
		for b.Loop() {
			b.StopTimer()
			rev++
			txn := benchCommit(b, br, func(tx *Tx) error { return tx.Replace(restartDoc(rev%restartDocs, rev)) })
			alloc0 := totalAlloc()
			b.StartTimer()

			start := time.Now()
			got, err := br.Checkpoint(ctx)
			took += time.Since(start)

			b.StopTimer()
			allocd += float64(totalAlloc() - alloc0)
			if err != nil || got != txn {
				b.Fatalf("checkpoint at txn %d (%v), want %d", got, err, txn)
			}
			n++
			b.StartTimer()
		}
		b.ReportMetric(took.Seconds()/float64(n), "s/checkpoint")
		b.ReportMetric(allocd/float64(n)/(1<<20), "MiB-alloc")
		b.ReportMetric(mib(fileBytes(b, filepath.Join(st.dir, "checkpoints", checkpoint.Name(br.Head())))), "MiB-ckpt")
	})
}
