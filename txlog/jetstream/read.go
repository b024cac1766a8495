package jetstream

import (
	"context"
	"fmt"
	"iter"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
)

// Reads of fewer records than this get them one by one; longer ones
// stream them through an ordered consumer, which costs a consumer on the
// server but no round trip per record.
const consumerFrom = 32

// stallAfter is how many empty fetches in a row, while records are known
// to be there, make a reader recreate its consumer: an ordered consumer
// was seen to stop delivering without an error across a failover.
const stallAfter = 3

// Read implements txlog.Log. Every record comes with its stream sequence
// checked against the one the reader expects: a consumer that starts
// later than asked (JetStream starts one asked for a dropped sequence at
// the first it has) or skips is a gap, ErrHistoryUnavailable, never
// passed over.
func (l *Log) Read(after txlog.Cursor) iter.Seq2[txlog.Record, error] {
	return func(yield func(txlog.Record, error) bool) {
		if err := txlog.CheckCursor(l, after); err != nil {
			yield(txlog.Record{}, err)
			return
		}
		if l.isClosed() {
			yield(txlog.Record{}, txlog.ErrClosed)
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start, err := l.startSeq(ctx, after.Pos)
		if err != nil {
			yield(txlog.Record{}, err)
			return
		}
		l.readFrom(ctx, start, yield)
	}
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// visible is the sequence of the last record readers may see.
func (l *Log) visible() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.headSeq
}

// startSeq finds the first sequence whose record holds a write after p:
// by txn, which grows with the sequence, from the index of sequences the
// log has seen, else by bisecting the stream.
func (l *Log) startSeq(ctx context.Context, p txlog.Pos) (uint64, error) {
	l.mu.Lock()
	lo, hi := max(l.firstSeq, 1), l.headSeq+1
	x := &l.index
	if i := sort.Search(len(x.txns), func(i int) bool { return x.txns[i] >= p.Txn }); i < len(x.seqs) {
		hi = min(hi, x.seqs[i])
		if i > 0 {
			lo = max(lo, x.seqs[i-1]+1)
		}
	} else if i > 0 {
		lo = max(lo, x.seqs[i-1]+1)
	}
	l.mu.Unlock()
	// Bisect over records: a part's record spans [first, last].
	for lo < hi {
		mid := lo + (hi-lo)/2
		st, err := l.get(ctx, mid)
		if err != nil {
			return 0, err
		}
		l.seen(st)
		if st.rec.Txn >= p.Txn {
			hi = st.first
		} else {
			lo = st.last + 1
		}
	}
	if lo > l.visible() {
		return lo, nil
	}
	st, err := l.get(ctx, lo)
	if err != nil {
		return 0, err
	}
	if st.rec.Txn == p.Txn && st.rec.Last().Compare(p) <= 0 {
		lo = st.last + 1
	}
	return lo, nil
}

// readFrom yields the records from seq on, up to the head as it is when
// the reader gets there.
func (l *Log) readFrom(ctx context.Context, seq uint64, yield func(txlog.Record, error) bool) {
	for seq <= l.visible() {
		if l.isClosed() {
			yield(txlog.Record{}, txlog.ErrClosed)
			return
		}
		if l.visible()-seq+1 >= consumerFrom {
			var ok bool
			if seq, ok = l.consume(ctx, seq, yield); !ok {
				return
			}
			continue
		}
		st, err := l.get(ctx, seq)
		if err != nil {
			yield(txlog.Record{}, fmt.Errorf("%w (a reader at sequence %d)", err, seq))
			return
		}
		if st.first != seq {
			yield(txlog.Record{}, fmt.Errorf("%w: a reader at sequence %d met part of the record at %d", txlog.ErrCorrupt, seq, st.first))
			return
		}
		l.seen(st)
		if !yield(st.rec, nil) {
			return
		}
		seq = st.last + 1
	}
}

// consume streams records from seq through an ordered consumer until the
// head as it was when it started, and returns the next sequence; false
// when the reading is over (an error yielded, or the reader stopped).
func (l *Log) consume(ctx context.Context, seq uint64, yield func(txlog.Record, error) bool) (uint64, bool) {
	until := l.visible()
	cons, err := l.newConsumer(ctx, seq)
	if err != nil {
		yield(txlog.Record{}, fmt.Errorf("jetstream: a reader at sequence %d: %w", seq, err))
		return seq, false
	}
	defer l.dropConsumer(cons)
	stalls := 0
	var as assembly
	for seq <= until {
		if l.isClosed() {
			yield(txlog.Record{}, txlog.ErrClosed)
			return seq, false
		}
		batch, err := cons.Fetch(int(min(until-seq+1, 256)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			yield(txlog.Record{}, fmt.Errorf("jetstream: a reader at sequence %d: %w", seq, err))
			return seq, false
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				yield(txlog.Record{}, fmt.Errorf("jetstream: a reader at sequence %d: %w", seq, err))
				return seq, false
			}
			rec, done, err := as.next(seq, md.Sequence.Stream, m.Headers(), m.Data())
			if err != nil {
				yield(txlog.Record{}, err)
				return seq, false
			}
			seq++
			if !done {
				continue
			}
			if !yield(rec, nil) {
				return seq, false
			}
		}
		if got > 0 {
			stalls = 0
			continue
		}
		if stalls++; stalls >= stallAfter {
			// Nothing while records are there: start a consumer again
			// from where this one stopped (the first part of a record
			// it was gathering).
			return as.resume(seq), true
		}
	}
	return seq, true
}

// newConsumer makes a reader's consumer: ephemeral, unacknowledged, in
// memory, one replica, from seq. Not the client's ordered consumer, which
// makes itself again after a failure without end and without a context
// (a read was seen stuck there for minutes after a leader was killed):
// this log checks every sequence itself, and makes a consumer again with
// its own timeouts.
func (l *Log) newConsumer(ctx context.Context, seq uint64) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	defer cancel()
	return l.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       seq,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     l.subject,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: consumerIdle,
	})
}

// consumerIdle is how long the servers keep a consumer nobody pulls from:
// one a reader left behind (its process killed) goes away by itself.
const consumerIdle = 30 * time.Second

// dropConsumer deletes a consumer the reader is done with, without
// waiting: if the servers cannot be asked, consumerIdle removes it.
func (l *Log) dropConsumer(cons jetstream.Consumer) {
	name := cons.CachedInfo().Name
	l.drops.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
		defer cancel()
		l.stream.DeleteConsumer(ctx, name)
	})
}
