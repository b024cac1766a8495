package jetstream

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
)

// Options say which stream a Log is on, and how a stream it creates is
// made.
type Options struct {
	// Stream is the stream's name. Required. Open uses the stream if it
	// exists and creates it otherwise.
	Stream string
	// Subject is what records are published on; default Stream+".records".
	// A stream Open creates takes this subject alone.
	Subject string
	// Replicas of a stream Open creates; default 1.
	Replicas int
	// MaxRecords, MaxBytes and MaxAge bound what a stream Open creates
	// retains (JetStream's MaxMsgs, MaxBytes and MaxAge); zero is no limit.
	MaxRecords int64
	MaxBytes   int64
	MaxAge     time.Duration
	// Memory makes a stream Open creates keep its messages in memory
	// (JetStream's memory storage), for tests; file storage otherwise.
	Memory bool
	// Now is the clock of txns; time.Now by default.
	Now func() time.Time
	// Timeout bounds each request to the servers; default 10s.
	Timeout time.Duration
	// RetryFor is how long an append that failed is sent again before
	// Wait reports the failure (its fate then unknown, and the log
	// refusing further appends); default 60s, for leader elections.
	RetryFor time.Duration
}

// Message headers of a record.
const (
	// hdrPrev is the position of the last write of the record before, so
	// that Oldest is exact once retention dropped that record.
	hdrPrev = "Tidings-Prev"
	// idSep separates the log's ID from the txn in a message ID.
	idSep = "."
)

// Log is a txlog.Log on one JetStream stream: a record per message, in the
// record encoding of the file log, positions mapped to stream sequences.
// See the package doc for what an acknowledged append means here.
type Log struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	opt     Options
	id      txlog.ID
	idText  string
	subject string

	// stageMu orders Stage calls: a record in parts waits, before it is
	// published, for the appends staged before it.
	stageMu sync.Mutex
	// atomic: the stream takes atomic batches, so a record larger than a
	// message goes in parts.
	atomic bool

	mu      sync.Mutex
	closed  bool
	clock   *txlog.Clock
	nextSeq uint64      // the sequence the next staged record gets
	staged  txlog.Pos   // the last write staged
	lastID  string      // the message ID of the record staged last (or read last)
	failed  error       // the chain of appends broke: Stage refuses
	pending []*inflight // staged, not yet acknowledged, in order
	head    txlog.Pos   // the last write acknowledged (visible)
	headSeq uint64
	headID  string   // the message ID at headSeq
	index   seqIndex // txn of sequences seen (a record's first part), for cursors
	// streamFirst is the stream's first sequence when Oldest last looked,
	// firstSeq the first part of its first whole record then (retention
	// may have dropped the first parts of a record), and oldest the
	// position before it.
	streamFirst uint64
	firstSeq    uint64
	oldest      txlog.Pos

	queue chan *inflight // to the acknowledger, in staging order
	done  chan struct{}
	drops sync.WaitGroup // deletions of readers' consumers, awaited by Close
	// contact is when the servers last answered (unix ns): see Contact.
	contact atomic.Int64
}

// Open opens the log on the stream opt.Stream, creating the stream if it
// does not exist, and reads its last record.
func Open(ctx context.Context, js jetstream.JetStream, opt Options) (*Log, error) {
	if opt.Stream == "" {
		return nil, errors.New("jetstream: Options.Stream is required")
	}
	if opt.Subject == "" {
		opt.Subject = opt.Stream + ".records"
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = 60 * time.Second
	}
	cfg := jetstream.StreamConfig{
		Name:      opt.Stream,
		Subjects:  []string{opt.Subject},
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxMsgs:   -1,
		MaxBytes:  -1,
		MaxAge:    opt.MaxAge,
		Replicas:  max(opt.Replicas, 1),
		Storage:   jetstream.FileStorage,
		// Reads go to the leader: a direct get may be answered by a
		// replica that lags behind an acknowledgement.
		AllowDirect: false,
		// A record larger than a message goes in parts, as one batch.
		AllowAtomicPublish: true,
	}
	if opt.MaxRecords > 0 {
		cfg.MaxMsgs = opt.MaxRecords
	}
	if opt.MaxBytes > 0 {
		cfg.MaxBytes = opt.MaxBytes
	}
	if opt.Memory {
		cfg.Storage = jetstream.MemoryStorage
	}
	if opt.MaxAge > 0 {
		// The de-duplication window must not exceed MaxAge.
		cfg.Duplicates = min(opt.MaxAge, 2*time.Minute)
	}
	rctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	stream, err := js.Stream(rctx, opt.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(rctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: the stream %s: %w", opt.Stream, err)
	}
	info, err := stream.Info(rctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream: the stream %s: %w", opt.Stream, err)
	}
	l := &Log{
		js: js, stream: stream, opt: opt, subject: opt.Subject,
		id:     streamID(info.Config.Name, info.Created),
		atomic: info.Config.AllowAtomicPublish,
		clock:  txlog.NewClock(opt.Now),
		queue:  make(chan *inflight, 1<<16),
		done:   make(chan struct{}),
	}
	l.idText = fmt.Sprintf("%x", l.id[:])
	l.touch()
	l.nextSeq = info.State.LastSeq + 1
	l.headSeq = info.State.LastSeq
	if err := l.sync(rctx, info.State.LastSeq, info.State.Msgs); err != nil {
		return nil, err
	}
	go l.acknowledge()
	return l, nil
}

// sync takes the stream's last record as the one the next append
// follows: at open, and after another appender's record took the place
// this log expected to append at. Called with no append pending, and
// l.mu held (or before the log is shared).
func (l *Log) sync(ctx context.Context, lastSeq, msgs uint64) error {
	l.nextSeq, l.headSeq = lastSeq+1, lastSeq
	if msgs == 0 {
		return nil
	}
	st, err := l.get(ctx, lastSeq)
	if err != nil {
		return fmt.Errorf("jetstream: reading the last record: %w", err)
	}
	l.head = st.rec.Last()
	l.staged = l.head
	l.lastID, l.headID = st.id, st.id
	l.clock.Observe(st.rec.Txn)
	l.index.add(st.first, st.rec.Txn)
	return nil
}

// streamID is the log's identity: the stream's name and the time it was
// created, so that a stream deleted and made again under the same name is
// another log, whose old cursors fail with ErrHistoryUnavailable.
func streamID(name string, created time.Time) txlog.ID {
	sum := sha256.Sum256([]byte(name + "\x00" + created.UTC().Format(time.RFC3339Nano)))
	var id txlog.ID
	copy(id[:], sum[:])
	if id == (txlog.ID{}) {
		id[0] = 1
	}
	return id
}

var _ txlog.Shared = (*Log)(nil)

// Contact implements txlog.Shared: the last time the servers answered
// (an acknowledgement, a message, a question about the stream). A Follow
// that has nothing to deliver asks the stream every followWait.
func (l *Log) Contact() time.Time { return time.Unix(0, l.contact.Load()) }

// touch notes that the servers answered.
func (l *Log) touch() { l.contact.Store(time.Now().UnixNano()) }

// ID implements txlog.Log.
func (l *Log) ID() txlog.ID { return l.id }

// Head implements txlog.Log: the last write acknowledged.
func (l *Log) Head() txlog.Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Oldest implements txlog.Log. It asks the stream where it starts: the
// position before its first whole record is in that record's header,
// exact however retention dropped the records before it.
func (l *Log) Oldest() txlog.Pos {
	ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		// Unknown: the last known is still true of what was dropped by
		// then, and a read finds out about more.
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.oldest
	}
	first := info.State.FirstSeq
	l.mu.Lock()
	if first == l.streamFirst {
		defer l.mu.Unlock()
		return l.oldest
	}
	l.mu.Unlock()
	var oldest txlog.Pos
	firstRec := first
	switch {
	case first <= 1:
	case info.State.Msgs == 0:
		// Everything dropped: all up to the last record.
		oldest = l.Head()
	default:
		firstRec, oldest, err = l.firstRecord(ctx, first, info.State.LastSeq)
		if err != nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.oldest
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if oldest.Compare(l.oldest) >= 0 {
		l.oldest, l.streamFirst, l.firstSeq = oldest, first, firstRec
	}
	return l.oldest
}

// firstRecord finds the first whole record from the stream's first
// sequence, and the position before it. Retention drops messages, not
// records: the first parts of a record may be gone, and the record with
// them; then the record after it says where it ended. With no record
// after it, everything up to the head is gone.
func (l *Log) firstRecord(ctx context.Context, first, last uint64) (uint64, txlog.Pos, error) {
	m, err := l.stream.GetMsg(ctx, first)
	if err != nil {
		return 0, txlog.Pos{}, err
	}
	i, n, err := parsePart(m.Header.Get(hdrPart))
	if err != nil {
		return 0, txlog.Pos{}, err
	}
	if i > 1 {
		first += uint64(n-i) + 1
		if first > last {
			return first, l.Head(), nil
		}
		if m, err = l.stream.GetMsg(ctx, first); err != nil {
			return 0, txlog.Pos{}, err
		}
	}
	prev, err := parsePos(m.Header.Get(hdrPrev))
	if err != nil {
		return 0, txlog.Pos{}, fmt.Errorf("%w: sequence %d: %s %q", txlog.ErrCorrupt, first, hdrPrev, m.Header.Get(hdrPrev))
	}
	return first, prev, nil
}

// stored is a record as the stream holds it.
type stored struct {
	rec         txlog.Record
	prev        txlog.Pos // the last write of the record before it
	first, last uint64    // the sequences of its first and last part
	id          string    // its message ID (on its last part)
}

// get reads the record that has a part at seq.
func (l *Log) get(ctx context.Context, seq uint64) (stored, error) {
	m, err := l.getMsg(ctx, seq)
	if err != nil {
		return stored{}, err
	}
	i, _, err := parsePart(m.Header.Get(hdrPart))
	if err != nil {
		return stored{}, fmt.Errorf("sequence %d: %w", seq, err)
	}
	st := stored{first: seq}
	if i > 1 {
		if uint64(i) > seq {
			return stored{}, fmt.Errorf("%w: sequence %d is part %d", txlog.ErrCorrupt, seq, i)
		}
		st.first = seq - uint64(i-1)
		if m, err = l.getMsg(ctx, st.first); err != nil {
			return stored{}, err
		}
	}
	if st.prev, err = parsePos(m.Header.Get(hdrPrev)); err != nil {
		return stored{}, fmt.Errorf("%w: sequence %d: %s %q", txlog.ErrCorrupt, st.first, hdrPrev, m.Header.Get(hdrPrev))
	}
	var as assembly
	for s := st.first; ; s++ {
		if s > st.first {
			if m, err = l.getMsg(ctx, s); err != nil {
				return stored{}, err
			}
		}
		data, done, err := as.add(s, m.Header, m.Data)
		if err != nil {
			return stored{}, err
		}
		if !done {
			continue
		}
		if st.rec, err = txlog.DecodeRecord(data); err != nil {
			return stored{}, fmt.Errorf("jetstream: sequence %d: %w", st.first, err)
		}
		st.last, st.id = s, m.Header.Get(jetstream.MsgIDHeader)
		return st, nil
	}
}

// getMsg reads the message at seq from the stream's leader.
func (l *Log) getMsg(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := l.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: sequence %d is not in the stream", txlog.ErrHistoryUnavailable, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: reading sequence %d: %w", seq, err)
	}
	return m, nil
}

// seen notes a record's first sequence in the index.
func (l *Log) seen(st stored) {
	l.mu.Lock()
	l.index.add(st.first, st.rec.Txn)
	l.mu.Unlock()
}

// formatPos and parsePos write a position as txn.op; the zero Pos is "".
func formatPos(p txlog.Pos) string {
	if p == (txlog.Pos{}) {
		return ""
	}
	return strconv.FormatUint(uint64(p.Txn), 10) + "." + strconv.FormatUint(uint64(p.Op), 10)
}

func parsePos(s string) (txlog.Pos, error) {
	if s == "" {
		return txlog.Pos{}, nil
	}
	t, o, ok := strings.Cut(s, ".")
	txn, err1 := strconv.ParseUint(t, 10, 64)
	op, err2 := strconv.ParseUint(o, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return txlog.Pos{}, errors.New("not a position")
	}
	return txlog.Pos{Txn: txlog.Txn(txn), Op: uint32(op)}, nil
}

// isClosing reports whether Close was called.
func (l *Log) isClosing() bool { return l.isClosed() }

// Close implements txlog.Log: it waits for the staged records to be
// acknowledged, then stops.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	<-l.done
	l.drops.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}
