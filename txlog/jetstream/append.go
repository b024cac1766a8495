package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
)

// inflight is one staged record on its way to the stream.
type inflight struct {
	txn  txlog.Txn
	seq  uint64    // the sequence it must get
	last txlog.Pos // its last write
	msg  *nats.Msg
	// prevID is the message ID of the record it must follow: expecting
	// it, and not only a sequence, makes a chain of appends stop at the
	// first one another appender displaced, rather than go on after the
	// other's record.
	prevID string
	// alone: nothing of this log's was on the way when it was staged, so
	// the record it expects to follow is in the stream already.
	alone bool
	fut   jetstream.PubAckFuture
	done  chan struct{}
	err   error
}

// ErrTooLarge: a record does not fit in a message (the servers'
// max_payload, 1 MiB by default) and cannot go in parts: the stream does
// not allow atomic batches, or the servers refused the batch as too
// large. Nothing was staged.
var ErrTooLarge = errors.New("jetstream: the record is larger than a message may be")

// ErrConflict is txlog.ErrConflict: the stream had another appender's
// record where this log expected to append. The append failed, and so did
// the ones staged after it; Stage refuses until they are all settled, then
// appends after the stream's last record. A caller that computed a record
// from what it had read must read what the other appender wrote, and
// compute it again.
var ErrConflict = txlog.ErrConflict

// Stage implements txlog.Log. The record is published at once, without
// waiting, expecting the sequence after the record staged before it: the
// appends form a chain the stream takes in order or not at all, and many
// are on the wire at once.
func (l *Log) Stage(ws []txlog.Write) (txlog.Txn, error) {
	return l.stage(ws, false, 0)
}

// StageAfter implements txlog.Shared: Stage, if the record staged last (or
// followed last, with nothing of this log's on the way) is txn last. The
// stream checks it too: the append expects that record's sequence and ID.
func (l *Log) StageAfter(ws []txlog.Write, last txlog.Txn) (txlog.Txn, error) {
	return l.stage(ws, true, last)
}

// stage is Stage, on the condition that the record before is txn last
// when conditional.
func (l *Log) stage(ws []txlog.Write, conditional bool, last txlog.Txn) (txlog.Txn, error) {
	if err := txlog.CheckWrites(ws); err != nil {
		return 0, err
	}
	l.stageMu.Lock()
	defer l.stageMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, txlog.ErrClosed
	}
	if errors.Is(l.failed, ErrConflict) && len(l.pending) == 0 {
		// Another appender's record is where this log expected to
		// append, and every append of the broken chain is settled:
		// follow the stream's last record from now on.
		if err := l.resync(); err != nil {
			l.mu.Unlock()
			return 0, err
		}
	}
	if l.failed != nil {
		defer l.mu.Unlock()
		return 0, l.failed
	}
	if conditional && l.staged.Txn != last {
		defer l.mu.Unlock()
		return 0, l.notAfter(last)
	}
	rec := txlog.Record{Txn: l.clock.Next(), Writes: ws}
	msg := nats.NewMsg(l.subject)
	msg.Data = txlog.AppendRecord(nil, &rec)
	if len(msg.Data) > l.partSize() {
		// The txn taken is left unused: txns only need to increase.
		l.mu.Unlock()
		return l.stageParts(ws, conditional, last)
	}
	defer l.mu.Unlock()
	msg.Header.Set(hdrPrev, formatPos(l.staged))
	a := &inflight{txn: rec.Txn, seq: l.nextSeq, last: rec.Last(), msg: msg, prevID: l.lastID, alone: len(l.pending) == 0, done: make(chan struct{})}
	fut, err := l.js.PublishMsgAsync(msg, l.publishOpts(a)...)
	if err != nil {
		return 0, fmt.Errorf("jetstream: publishing: %w", err)
	}
	a.fut = fut
	l.nextSeq++
	l.staged = a.last
	l.lastID = l.msgID(a.txn)
	l.pending = append(l.pending, a)
	l.queue <- a
	return a.txn, nil
}

// notAfter is the conflict of a conditional append. Called with l.mu held.
func (l *Log) notAfter(last txlog.Txn) error {
	return fmt.Errorf("%w: the stream is at txn %d, the record was to follow txn %d", ErrConflict, l.staged.Txn, last)
}

// publishOpts are an append's conditions: its ID, and what the stream's
// last message must be (sequence and ID).
func (l *Log) publishOpts(a *inflight) []jetstream.PublishOpt {
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(l.msgID(a.txn)), jetstream.WithExpectLastSequence(a.seq - 1)}
	if a.prevID != "" {
		opts = append(opts, jetstream.WithExpectLastMsgID(a.prevID))
	}
	return opts
}

// resync follows the stream's last record after a conflict. Called with
// l.mu held and no append pending.
func (l *Log) resync() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("jetstream: after a conflict: %w", err)
	}
	if err := l.sync(ctx, info.State.LastSeq, info.State.Msgs); err != nil {
		return err
	}
	l.failed = nil
	return nil
}

// msgID is a record's message ID: the log and the txn, which JetStream
// de-duplicates, so that an append whose outcome is unknown can be sent
// again and answered with the sequence it got the first time.
func (l *Log) msgID(txn txlog.Txn) string {
	return l.idText + idSep + fmt.Sprint(uint64(txn))
}

// Wait implements txlog.Log.
func (l *Log) Wait(txn txlog.Txn) error {
	l.mu.Lock()
	i := sort.Search(len(l.pending), func(i int) bool { return l.pending[i].txn >= txn })
	if i == len(l.pending) || l.pending[i].txn != txn {
		// Acknowledged already (or never staged: Wait promises nothing
		// for a txn Stage did not return).
		defer l.mu.Unlock()
		if txn <= l.head.Txn {
			return nil
		}
		return l.failed
	}
	a := l.pending[i]
	l.mu.Unlock()
	<-a.done
	return a.err
}

// acknowledge takes the acknowledgements in staging order: a record is
// visible (Head moves) once it and every record before it are in the
// stream.
func (l *Log) acknowledge() {
	defer close(l.done)
	for a := range l.queue {
		err := l.settle(a)
		l.mu.Lock()
		l.pending = l.pending[1:]
		if err == nil {
			l.touch()
		}
		if err == nil && l.failed == nil {
			l.index.add(a.seq, a.txn)
			if a.seq > l.headSeq {
				l.head, l.headSeq, l.headID = a.last, a.seq, l.msgID(a.txn)
			}
			if len(l.pending) == 0 && l.headSeq >= l.nextSeq {
				// A follower saw other appenders' records after this
				// chain while it was on the way: the next Stage follows
				// the newest.
				l.nextSeq, l.staged, l.lastID = l.headSeq+1, l.head, l.headID
			}
		} else if err != nil && l.failed == nil {
			l.failed = err
		}
		if a.err = err; a.err == nil && l.failed != nil {
			// A record after a failed one cannot be in the stream: the
			// chain expected the failed one's sequence before it.
			a.err = l.failed
		}
		l.mu.Unlock()
		close(a.done)
	}
}

// settle waits for an append's acknowledgement. Any failure is followed
// by sending the same message again, with its ID and expected sequence,
// until RetryFor has passed (a leader election takes seconds):
//   - an outcome unknown (a timeout, a lost connection): JetStream answers
//     the duplicate with the sequence the first one got;
//   - a wrong last sequence: the record before this one was not in the
//     stream yet when this one arrived (it was being retried), and now is;
//     or this one is there already (stored, its answer lost).
//
// Only a record of someone else's at this sequence is a conflict.
func (l *Log) settle(a *inflight) error {
	var err error
	// The client puts no timeout on an asynchronous publish unless its
	// JetStream context was made with one: an answer lost with a killed
	// leader would be waited for forever.
	timer := time.NewTimer(l.opt.Timeout)
	select {
	case ack := <-a.fut.Ok():
		timer.Stop()
		return l.check(a, ack)
	case err = <-a.fut.Err():
		timer.Stop()
		if a.alone && isWrongLast(err) {
			// Refused at its first sending, after a record that is in
			// the stream: another appender's record is in its place.
			// Said at once, the node that must run its transaction again
			// is not a round trip behind the others (sending it again
			// and reading the stream, below, made it lose again and again
			// to a node committing in a loop).
			return fmt.Errorf("%w: txn %d: %v", ErrConflict, a.txn, err)
		}
	case <-timer.C:
		err = context.DeadlineExceeded
	}
	deadline := time.Now().Add(l.opt.RetryFor)
	wait := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
		ack, rerr := l.js.PublishMsg(ctx, a.msg, l.publishOpts(a)...)
		cancel()
		if rerr == nil {
			return l.check(a, ack)
		}
		if isWrongLast(rerr) {
			// The stream is past a.seq-1, and the record before this
			// one is in it: is this one at a.seq?
			return l.confirm(a, rerr)
		}
		err = rerr
		if time.Now().After(deadline) || l.isClosing() {
			return fmt.Errorf("jetstream: appending txn %d: %w", a.txn, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// check verifies an acknowledgement: the record must be at the sequence
// the chain expects.
func (l *Log) check(a *inflight, ack *jetstream.PubAck) error {
	if ack.Sequence != a.seq {
		return fmt.Errorf("%w: txn %d stored at sequence %d, expected %d", ErrConflict, a.txn, ack.Sequence, a.seq)
	}
	return nil
}

// confirm reads the message at a's sequence: if it is a's, the append
// succeeded.
func (l *Log) confirm(a *inflight, cause error) error {
	return l.confirmAt(a.seq, l.msgID(a.txn), cause)
}

// isWrongLast reports JetStream's refusal of an append whose expected last
// sequence or message ID is not the stream's (error codes 10071, or 10164
// on a replicated stream, and 10070, which nats.go has no name for).
func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant || apiErr.ErrorCode == 10070)
}

// seqIndex maps the sequences the log has seen to their txns, for finding
// where a cursor's read starts without asking the stream. It keeps the
// newest entries, in sequence order (txns increase with sequences).
type seqIndex struct {
	seqs []uint64
	txns []txlog.Txn
}

const indexMax = 1 << 16

func (x *seqIndex) add(seq uint64, txn txlog.Txn) {
	n := len(x.seqs)
	if n > 0 && seq <= x.seqs[n-1] {
		i := sort.Search(n, func(i int) bool { return x.seqs[i] >= seq })
		if i < n && x.seqs[i] == seq {
			return
		}
		x.seqs = append(x.seqs[:i], append([]uint64{seq}, x.seqs[i:]...)...)
		x.txns = append(x.txns[:i], append([]txlog.Txn{txn}, x.txns[i:]...)...)
	} else {
		x.seqs = append(x.seqs, seq)
		x.txns = append(x.txns, txn)
	}
	if len(x.seqs) > indexMax {
		x.seqs = append(x.seqs[:0], x.seqs[len(x.seqs)-indexMax/2:]...)
		x.txns = append(x.txns[:0], x.txns[len(x.txns)-indexMax/2:]...)
	}
}
