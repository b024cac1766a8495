package jetstream

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
)

// Follow yields every record after the cursor as the stream gets it, this
// log's and other appenders', without end: until ctx is done (then it ends
// with no error), the log is closed (txlog.ErrClosed), or a gap
// (txlog.ErrHistoryUnavailable: retention went past the follower, which
// never skips). It is how a node learns what the other nodes on the stream
// commit.
//
// A record of another appender moves Head, and, when this log has no
// append on the way, becomes the record the next Stage follows, so that a
// node that applies what it follows before it commits does not meet a
// conflict.
func (l *Log) Follow(ctx context.Context, after txlog.Cursor) iter.Seq2[txlog.Record, error] {
	return func(yield func(txlog.Record, error) bool) {
		if err := txlog.CheckCursor(l, after); err != nil {
			yield(txlog.Record{}, err)
			return
		}
		seq, err := l.startSeq(ctx, after.Pos)
		if err != nil {
			yield(txlog.Record{}, err)
			return
		}
		for ctx.Err() == nil {
			if l.isClosed() {
				yield(txlog.Record{}, txlog.ErrClosed)
				return
			}
			var ok bool
			if seq, ok = l.tail(ctx, seq, yield); !ok {
				return
			}
		}
	}
}

// followWait is how long a follower waits for a message before it asks
// the stream whether it missed one (a consumer that stopped delivering).
const followWait = 2 * time.Second

// tail delivers from seq through an ordered consumer until the reading is
// over (false), or the consumer must be made again (true, with the next
// sequence).
func (l *Log) tail(ctx context.Context, seq uint64, yield func(txlog.Record, error) bool) (uint64, bool) {
	cons, err := l.newConsumer(ctx, seq)
	if err != nil {
		if ctx.Err() != nil {
			return seq, false
		}
		// The servers may be electing a leader: try again.
		time.Sleep(100 * time.Millisecond)
		return seq, true
	}
	defer l.dropConsumer(cons)
	msgs, err := cons.Messages(jetstream.PullHeartbeat(followWait / 2))
	if err != nil {
		return seq, true
	}
	defer msgs.Stop()
	var as assembly
	for {
		wctx, cancel := context.WithTimeout(ctx, followWait)
		m, err := msgs.Next(jetstream.NextContext(wctx))
		cancel()
		if ctx.Err() != nil {
			return seq, false
		}
		if l.isClosed() {
			yield(txlog.Record{}, txlog.ErrClosed)
			return seq, false
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Nothing for a while: is there something the consumer
			// should have delivered?
			if l.streamLast(ctx) >= seq {
				return as.resume(seq), true
			}
			continue
		}
		if err != nil {
			return as.resume(seq), true
		}
		md, err := m.Metadata()
		if err != nil {
			return as.resume(seq), true
		}
		l.touch()
		rec, done, err := as.next(seq, md.Sequence.Stream, m.Headers(), m.Data())
		if err != nil {
			yield(txlog.Record{}, err)
			return seq, false
		}
		seq++
		if !done {
			continue
		}
		l.learn(as.first, seq-1, rec, m.Headers().Get(jetstream.MsgIDHeader))
		if !yield(rec, nil) {
			return seq, false
		}
	}
}

// streamLast is the stream's last sequence, or 0 when it cannot be asked.
func (l *Log) streamLast(ctx context.Context) uint64 {
	ctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0
	}
	l.touch()
	return info.State.LastSeq
}

// learn takes note of a record a follower read: beyond the head, it moves
// the head; and when no append of this log is on the way, the next Stage
// follows it.
func (l *Log) learn(first, seq uint64, rec txlog.Record, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index.add(first, rec.Txn)
	if seq <= l.headSeq {
		return
	}
	l.head, l.headSeq, l.headID = rec.Last(), seq, id
	l.clock.Observe(rec.Txn)
	if len(l.pending) == 0 && seq >= l.nextSeq-1 {
		l.nextSeq, l.staged, l.lastID = seq+1, rec.Last(), id
		if errors.Is(l.failed, ErrConflict) {
			l.failed = nil
		}
	}
}
