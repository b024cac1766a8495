package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
)

// A record larger than a message goes in parts, consecutive messages
// published as one JetStream atomic batch: the stream stores all of them,
// contiguously, or none. Each part says which it is in hdrPart ("i/n"); a
// record of one message has no such header. The first part carries
// hdrPrev and the expected last sequence, the last one the message ID.
const (
	hdrPart = "Tidings-Part"
	// JetStream's atomic batch headers (nats-server 2.12 and later; the
	// Go client has no API for them).
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"

	// maxParts is the servers' default bound on the messages of a batch
	// (max_batch_size); txlog bounds a record to 256 MiB, about 256 parts.
	maxParts = 1000
	// headerRoom is what a part leaves of a message for its headers.
	headerRoom = 1024
)

// JetStream's refusals of a batch that sending again cannot change:
// atomic publish disabled (10174), a batch larger than the servers take
// (10199).
const (
	errCodeAtomicDisabled = 10174
	errCodeBatchTooLarge  = 10199
	errCodeBatchDuplicate = 10201 // a part's message ID was seen
)

// partSize is the most record bytes one message carries.
func (l *Log) partSize() int {
	return int(l.js.Conn().MaxPayload()) - headerRoom
}

// parsePart reads a part header: "" is a record of one message.
func parsePart(s string) (i, n int, err error) {
	if s == "" {
		return 1, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	// One spelling per part (no signs, no leading zeros): a header is
	// what this package wrote, or not a part.
	if !ok || err1 != nil || err2 != nil || i < 1 || i > n || n > maxParts || strconv.Itoa(i) != a || strconv.Itoa(n) != b {
		return 0, 0, fmt.Errorf("%w: %s %q", txlog.ErrCorrupt, hdrPart, s)
	}
	return i, n, nil
}

// assembly gathers the parts of a record as a reader meets them, in
// sequence order.
type assembly struct {
	first uint64 // the sequence of the first part of the record last met
	n     int    // and its parts
	got   int
	data  []byte
}

// add takes the message at seq, and returns the record's bytes once its
// last part is in. A part out of place is txlog.ErrCorrupt: a batch is
// stored contiguously, and readers start at a record's first part.
func (a *assembly) add(seq uint64, h nats.Header, data []byte) ([]byte, bool, error) {
	i, n, err := parsePart(h.Get(hdrPart))
	if err != nil {
		return nil, false, fmt.Errorf("sequence %d: %w", seq, err)
	}
	if a.got == 0 {
		if i != 1 {
			return nil, false, fmt.Errorf("%w: sequence %d is part %d of %d where a record starts", txlog.ErrCorrupt, seq, i, n)
		}
		a.first, a.n = seq, n
		if n == 1 {
			return data, true, nil
		}
		// A new slice for each record: a decoded record's images alias
		// its bytes.
		a.got = 1
		a.data = append(make([]byte, 0, n*len(data)), data...)
		return nil, false, nil
	}
	if i != a.got+1 || n != a.n {
		return nil, false, fmt.Errorf("%w: sequence %d is part %d of %d, after part %d of %d", txlog.ErrCorrupt, seq, i, n, a.got, a.n)
	}
	a.data = append(a.data, data...)
	if a.got++; a.got < a.n {
		return nil, false, nil
	}
	a.got = 0
	return a.data, true, nil
}

// next takes the message that a consumer gave at sequence got, where the
// reader expected seq, and returns the record once whole. Anything but
// seq is a gap (a consumer starts at the first sequence it has when asked
// for one retention dropped, silently), never passed over.
func (a *assembly) next(seq, got uint64, h nats.Header, data []byte) (txlog.Record, bool, error) {
	if got != seq {
		return txlog.Record{}, false, fmt.Errorf("%w: a reader expected sequence %d, the stream gave %d", txlog.ErrHistoryUnavailable, seq, got)
	}
	b, done, err := a.add(seq, h, data)
	if err != nil || !done {
		return txlog.Record{}, false, err
	}
	rec, err := txlog.DecodeRecord(b)
	if err != nil {
		return txlog.Record{}, false, fmt.Errorf("jetstream: sequence %d: %w", seq, err)
	}
	return rec, true, nil
}

// resume is where a reader that stops before seq starts again: at the
// first part of a record it was gathering.
func (a *assembly) resume(seq uint64) uint64 {
	if a.got > 0 {
		return a.first
	}
	return seq
}

// stageParts stages a record too large for one message as an atomic
// batch, and waits for it: a batch cannot expect the previous message's
// ID (JetStream refuses that header in a batch), only its sequence, which
// is safe only once every append before it is known to be in the stream.
// So the appends before it are awaited first, and nothing is chained after
// it until it is settled. Called with l.stageMu held.
func (l *Log) stageParts(ws []txlog.Write, conditional bool, last txlog.Txn) (txlog.Txn, error) {
	for {
		l.mu.Lock()
		if len(l.pending) == 0 {
			break
		}
		last := l.pending[len(l.pending)-1]
		l.mu.Unlock()
		<-last.done
	}
	txn, seq, end, msgs, err := l.prepareParts(ws, conditional, last)
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	rec := txlog.Record{Txn: txn, Writes: ws}
	id := msgs[len(msgs)-1].Header.Get(jetstream.MsgIDHeader)
	err = l.settleParts(msgs, end, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrTooLarge) {
			// A conflict (the log follows the stream at the next
			// Stage), or an outcome unknown after RetryFor.
			l.failed = err
		}
		return 0, err
	}
	l.index.add(seq, txn)
	if end > l.headSeq {
		l.head, l.headSeq, l.headID = rec.Last(), end, id
	}
	if l.nextSeq <= end {
		l.nextSeq, l.staged, l.lastID = end+1, rec.Last(), id
	}
	return txn, nil
}

// prepareParts makes the messages of a record in parts. Called with l.mu
// held and no append pending.
func (l *Log) prepareParts(ws []txlog.Write, conditional bool, last txlog.Txn) (txn txlog.Txn, seq, end uint64, msgs []*nats.Msg, err error) {
	if l.closed {
		return 0, 0, 0, nil, txlog.ErrClosed
	}
	if errors.Is(l.failed, ErrConflict) {
		if err := l.resync(); err != nil {
			return 0, 0, 0, nil, err
		}
	}
	if l.failed != nil {
		return 0, 0, 0, nil, l.failed
	}
	if conditional && l.staged.Txn != last {
		return 0, 0, 0, nil, l.notAfter(last)
	}
	rec := txlog.Record{Txn: l.clock.Next(), Writes: ws}
	data := txlog.AppendRecord(nil, &rec)
	size := l.partSize()
	n := (len(data) + size - 1) / size
	if !l.atomic {
		return 0, 0, 0, nil, fmt.Errorf("%w: %d bytes, a message takes %d, and the stream %s does not allow atomic batches (allow_atomic)", ErrTooLarge, len(data), size, l.opt.Stream)
	}
	if n > maxParts {
		return 0, 0, 0, nil, fmt.Errorf("%w: %d bytes, more than %d messages", ErrTooLarge, len(data), maxParts)
	}
	seq = l.nextSeq
	for i := range n {
		m := nats.NewMsg(l.subject)
		m.Data = data[i*size : min((i+1)*size, len(data))]
		m.Header.Set(hdrPart, strconv.Itoa(i+1)+"/"+strconv.Itoa(n))
		if i == 0 {
			m.Header.Set(hdrPrev, formatPos(l.staged))
			m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(seq-1, 10))
		}
		if i == n-1 {
			m.Header.Set(jetstream.MsgIDHeader, l.msgID(rec.Txn))
		}
		msgs = append(msgs, m)
	}
	return rec.Txn, seq, seq + uint64(n) - 1, msgs, nil
}

// settleParts publishes a batch until the stream holds it or refuses it
// for good. Every attempt expects the same last sequence, so the record
// lands once at most: an attempt after one that did land is refused (a
// wrong last sequence, or a duplicate message ID), and the stream is read
// to see whose record is there.
func (l *Log) settleParts(msgs []*nats.Msg, end uint64, id string) error {
	deadline := time.Now().Add(l.opt.RetryFor)
	wait := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
		ack, err := l.publishBatch(ctx, msgs)
		cancel()
		switch {
		case err == nil && ack.Sequence == end:
			return nil
		case err == nil:
			return fmt.Errorf("%w: a record in parts stored up to sequence %d, expected %d", ErrConflict, ack.Sequence, end)
		case isWrongLast(err) || isAPIError(err, errCodeBatchDuplicate):
			return l.confirmAt(end, id, err)
		case isAPIError(err, errCodeAtomicDisabled) || isAPIError(err, errCodeBatchTooLarge):
			return fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		if time.Now().After(deadline) || l.isClosing() {
			return fmt.Errorf("jetstream: appending a record in %d parts: %w", len(msgs), err)
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// publishBatch sends the parts as one atomic batch, under a batch ID of
// its own (an attempt's parts must not mix with an earlier attempt's),
// and returns the commit's acknowledgement. The parts before the last are
// sent without asking for a reply: the commit's answer covers them, and
// one lost is an incomplete batch, sent again.
func (l *Log) publishBatch(ctx context.Context, msgs []*nats.Msg) (*jetstream.PubAck, error) {
	var b [16]byte
	rand.Read(b[:])
	batch := hex.EncodeToString(b[:])
	nc := l.js.Conn()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, batch)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i == len(msgs)-1 {
			m.Header.Set(hdrBatchCommit, "1")
			break
		}
		if err := nc.PublishMsg(m); err != nil {
			return nil, err
		}
	}
	return l.js.PublishMsg(ctx, msgs[len(msgs)-1])
}

// confirmAt reads the message at seq: if it has the ID id, the append
// succeeded; otherwise another appender's record took the place.
func (l *Log) confirmAt(seq uint64, id string, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
	defer cancel()
	m, err := l.stream.GetMsg(ctx, seq)
	if err == nil && m.Header.Get(jetstream.MsgIDHeader) == id {
		return nil
	}
	return fmt.Errorf("%w: %s: %v", ErrConflict, id, cause)
}

// isAPIError reports a JetStream refusal with the given error code.
func isAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}
