package txlog

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// SyncPolicy says when a FileLog calls fsync, and so what a crash may lose.
type SyncPolicy int

const (
	// SyncBatch, the default: Append returns only after its record is
	// written and fsynced. Nothing that Append acknowledged is lost, not
	// even to a power failure. Appends that wait at the same time share one
	// write and one fsync (group commit), so many concurrent committers
	// cost little more than one.
	SyncBatch SyncPolicy = iota

	// SyncInterval: Append returns once its record is written to the
	// operating system, and the log fsyncs every FileOptions.SyncInterval.
	// A crash of the process loses nothing; a crash of the machine loses at
	// most the records of the last interval.
	SyncInterval

	// SyncNever: Append returns once its record is written to the operating
	// system; the log fsyncs only when a segment is full and on Close. A
	// crash of the process loses nothing; a crash of the machine loses
	// whatever the operating system had not yet written.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncBatch:
		return "batch"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// FileOptions configure a FileLog. A zero field takes its default.
type FileOptions struct {
	// Sync is the fsync policy; SyncBatch by default.
	Sync SyncPolicy
	// SyncInterval is the period of SyncInterval; 100ms by default.
	SyncInterval time.Duration
	// SegmentSize is the size at which the log starts a new segment file;
	// 64 MiB by default. A record larger than it gets a segment of its own.
	SegmentSize int64
	// MaxBytes bounds the total size of the segments kept: retention
	// deletes whole segments, oldest first, never the one being written.
	// Zero keeps everything.
	MaxBytes int64
	// MaxAge deletes segments whose newest record is older than this.
	// Zero keeps everything.
	MaxAge time.Duration
	// Now is the clock for txns and age; time.Now by default.
	Now func() time.Time
	// Logger receives what recovery repaired; slog.Default() by default.
	Logger *slog.Logger
}

// Defaults of FileOptions.
const (
	DefaultSegmentSize  = 64 << 20
	DefaultSyncInterval = 100 * time.Millisecond
)

// FileLog is a durable Log: a directory of append-only segment files.
//
// Each record is one frame with its length and an xxhash64 checksum. On
// open, a record torn by a crash at the end of the last segment is
// truncated (it was never acknowledged under SyncBatch), while damage
// anywhere else is a *CorruptError: the log never skips what it cannot
// read. Segments other than the last are verified as they are read.
//
// After a failed write or fsync the log refuses every later Append: the
// state of the file is then unknown (a record whose Append failed may or
// may not be found after reopening), and only reopening, which verifies
// the files, can tell.
type FileLog struct {
	dir  string
	id   ID
	opt  FileOptions
	lock *os.File

	mu     sync.Mutex
	cond   sync.Cond // signalled when a flush ends; L is &mu
	clock  *Clock
	segs   []*segment // visible segments, oldest first
	head   Pos        // last visible position
	oldest Pos
	keep   Txn  // retention keeps every segment holding a record after it
	pinned bool // keep is set
	closed bool
	err    error // sticky: set by a failed write or fsync

	// Staged records, encoded and ordered, not yet written. Guarded by mu.
	// A record is written once head reaches it.
	staged   []*chunk
	tailSeg  *segment // the segment new records are staged for
	tailSize int64    // size of tailSeg, staged frames included
	tailPos  Pos      // last staged position
	flushing bool     // a leader is writing; others wait on cond
	spare    []byte   // a written chunk's buffer, kept for reuse

	active *os.File // the tail segment's file; only the flushing leader uses it

	serial  sync.Mutex // held across a whole Append when serialSync is set
	stopped chan struct{}
	done    chan struct{}

	syncs atomic.Int64 // fsyncs of segment files, for tests and benchmarks

	// serialSync turns group commit off: each Append writes and fsyncs
	// alone. It exists as the baseline of the group commit benchmark.
	serialSync bool
}

var _ Durable = (*FileLog)(nil)

// segment is a segment file as the log knows it. size and last are guarded
// by FileLog.mu; the rest never changes.
type segment struct {
	name string
	base Txn
	prev Pos   // the last position before this segment
	last Pos   // the last position in it (prev while it is empty)
	size int64 // visible bytes: the header and the written frames
}

// chunk is a run of staged frames bound for one segment. A chunk for a new
// segment makes the leader roll to it before writing.
type chunk struct {
	seg    *segment
	newSeg bool
	buf    []byte
	last   Pos
}

// OpenFile opens the log in dir, creating dir and an empty log if needed.
// It takes an exclusive lock on the directory for as long as it is open.
func OpenFile(dir string, opt FileOptions) (*FileLog, error) {
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if opt.SyncInterval <= 0 {
		opt.SyncInterval = DefaultSyncInterval
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	switch opt.Sync {
	case SyncBatch, SyncInterval, SyncNever:
	default:
		return nil, fmt.Errorf("txlog: unknown sync policy %d", opt.Sync)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("txlog: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &FileLog{dir: dir, opt: opt, lock: lock, clock: NewClock(opt.Now)}
	l.cond.L = &l.mu
	if err := l.recover(); err != nil {
		lock.Close()
		if l.active != nil {
			l.active.Close()
		}
		return nil, err
	}
	if opt.Sync == SyncInterval {
		l.stopped, l.done = make(chan struct{}), make(chan struct{})
		go l.syncEvery(opt.SyncInterval)
	}
	return l, nil
}

// Dir implements Durable: it returns the log's directory.
func (l *FileLog) Dir() string { return l.dir }

// ID implements Log.
func (l *FileLog) ID() ID { return l.id }

// Head implements Log.
func (l *FileLog) Head() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Oldest implements Log.
func (l *FileLog) Oldest() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.oldest
}

// Append is Stage and Wait in one call. Under SyncBatch it returns after
// the fsync that covers the record; the records of appends waiting at the
// same time are written with one write and one fsync.
func (l *FileLog) Append(ws []Write) (Txn, error) {
	if l.serialSync {
		l.serial.Lock()
		defer l.serial.Unlock()
	}
	txn, err := l.Stage(ws)
	if err != nil {
		return 0, err
	}
	return txn, l.Wait(txn)
}

// Stage implements Log: it encodes the record, assigns its txn and queues
// it to be written by the next Wait (or Sync, or Close); it does no I/O.
// Records become visible to readers, and Head moves, only when written
// (and fsynced, under SyncBatch).
func (l *FileLog) Stage(ws []Write) (Txn, error) {
	r := Record{Writes: ws}
	if err := r.validate(); err != nil {
		return 0, err
	}
	// Encode before taking the lock; only the txn is set under it.
	bp := payloadPool.Get().(*[]byte)
	payload := appendWrites((*bp)[:0], ws)
	defer func() {
		if cap(payload) <= maxSpare {
			*bp = payload[:0]
			payloadPool.Put(bp)
		}
	}()
	if len(payload) > maxPayload {
		return 0, fmt.Errorf("%w: %d bytes encoded, more than %d", ErrInvalidRecord, len(payload), maxPayload)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	t := l.clock.Next()
	putTxn(payload, t)
	l.stage(payload, Pos{Txn: t, Op: uint32(len(ws) - 1)})
	return t, nil
}

// Wait implements Log. It returns once the record staged at txn is as
// durable as the policy promises: written and fsynced under SyncBatch,
// written to the operating system otherwise. The first waiter to find no
// write in progress writes everything staged so far (group commit). If it
// fails, the log is closed to appends and the record's fate is unknown
// until the log is reopened.
func (l *FileLog) Wait(txn Txn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if txn > l.tailPos.Txn {
		return fmt.Errorf("txlog: wait for txn %d, which was not staged (the last staged is %d)", txn, l.tailPos.Txn)
	}
	return l.flushTo(txn, l.opt.Sync == SyncBatch)
}

func (l *FileLog) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.err
}

// Syncs returns how many times the log has fsynced its segment files since
// it was opened: with a count of Waits, it shows how many commits share an
// fsync.
func (l *FileLog) Syncs() int64 { return l.syncs.Load() }

// Sync implements Durable: it writes everything staged and fsyncs it,
// whatever the policy, so that on return every record staged so far
// survives a crash of the machine.
func (l *FileLog) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.syncNow()
}

// KeepAfter implements Durable: MaxBytes and MaxAge never delete a
// segment that holds a record after txn, whatever its size or age. Until
// it is called, retention is bounded by MaxBytes and MaxAge alone. It
// takes effect when retention next runs (when a segment is full).
func (l *FileLog) KeepAfter(txn Txn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keep, l.pinned = txn, true
}

// maxSpare bounds the batch buffer kept for reuse, so that one huge record
// does not pin its buffer for the life of the log.
const maxSpare = 1 << 20

var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// stage adds one encoded record to the staged chunks, rolling to a new
// segment when the tail one is full. Called with mu held.
func (l *FileLog) stage(payload []byte, last Pos) {
	frame := int64(frameHdrSize + len(payload))
	var c *chunk
	if n := len(l.staged); n > 0 {
		c = l.staged[n-1]
	}
	if l.tailSize > headerSize && l.tailSize+frame > l.opt.SegmentSize {
		seg := &segment{name: segName(last.Txn), base: last.Txn, prev: l.tailPos, last: l.tailPos}
		c = &chunk{seg: seg, newSeg: true}
		l.staged = append(l.staged, c)
		l.tailSeg, l.tailSize = seg, headerSize
	} else if c == nil {
		c = &chunk{seg: l.tailSeg, buf: l.spare[:0]}
		l.spare = nil
		l.staged = append(l.staged, c)
	}
	c.buf = appendFrame(c.buf, payload)
	c.last = last
	l.tailSize += frame
	l.tailPos = last
}

// flushTo returns once the staged records up to txn are written, and
// fsynced if fsync is set. Called with mu held; it releases mu while a
// flush is in progress.
//
// Group commit: the first caller to find no flush in progress becomes the
// leader and writes everything staged so far, its own record and those of
// every other waiter, with one write per segment and one fsync. Appends
// that arrive meanwhile stage their records and wait; the next leader
// takes them all at once. So with N concurrent committers an fsync covers
// up to N records, which is where the throughput comes from.
func (l *FileLog) flushTo(txn Txn, fsync bool) error {
	for l.head.Txn < txn {
		if l.err != nil {
			return l.err
		}
		if l.flushing {
			l.cond.Wait()
			continue
		}
		if err := l.lead(fsync); err != nil {
			return err
		}
	}
	return l.err
}

// lead writes everything staged as the flushing leader. Called with mu held
// and no flush in progress; mu is released during the I/O.
func (l *FileLog) lead(fsync bool) error {
	batch := l.staged
	l.staged = nil
	l.flushing = true
	l.mu.Unlock()
	err := l.writeBatch(batch, fsync)
	l.mu.Lock()
	l.flushing = false
	l.cond.Broadcast()
	if err != nil {
		l.err = fmt.Errorf("txlog: write failed, log closed to appends: %w", err)
		return l.err
	}
	var removed []string
	for _, c := range batch {
		if c.newSeg {
			c.seg.size = headerSize
			l.segs = append(l.segs, c.seg)
			removed = append(removed, l.retain()...)
		}
		c.seg.size += int64(len(c.buf))
		c.seg.last = c.last
		l.head = c.last
	}
	if n := len(batch); n > 0 && l.spare == nil && cap(batch[n-1].buf) <= maxSpare {
		l.spare = batch[n-1].buf[:0]
	}
	if len(removed) > 0 {
		// Removing files is I/O: not under the lock.
		l.mu.Unlock()
		l.removeSegments(removed)
		l.mu.Lock()
	}
	return nil
}

// writeBatch writes staged chunks in order, rolling to new segments where a
// chunk says so. Only the flushing leader calls it.
func (l *FileLog) writeBatch(batch []*chunk, fsync bool) error {
	for _, c := range batch {
		if c.newSeg {
			if err := l.roll(c.seg); err != nil {
				return err
			}
		}
		// The segment's size before this chunk. Only leaders change it,
		// under mu, and mu orders one leader after the next.
		size := c.seg.size
		if c.newSeg {
			size = headerSize
		}
		if _, err := l.active.Write(c.buf); err != nil {
			// Try to take the partial write back out, so that a record
			// whose Append failed is not found after reopening.
			l.active.Truncate(size)
			return err
		}
	}
	if fsync && len(batch) > 0 {
		return l.fsync()
	}
	return nil
}

// roll makes seg the tail segment: the old tail is fsynced before the new
// file exists, so that only the last segment can ever end torn.
func (l *FileLog) roll(seg *segment) error {
	if err := l.fsync(); err != nil {
		return err
	}
	f, err := l.createSegment(segHeader{id: l.id, base: seg.base, prev: seg.prev})
	if err != nil {
		return err
	}
	l.active.Close()
	l.active = f
	return nil
}

// fsync fsyncs the tail segment and counts it. Only the leader calls it.
func (l *FileLog) fsync() error {
	l.syncs.Add(1)
	return l.active.Sync()
}

// createSegment creates a segment file with its header, fsyncs it and the
// directory, and returns it open for appending.
func (l *FileLog) createSegment(h segHeader) (*os.File, error) {
	path := filepath.Join(l.dir, segName(h.base))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(h.marshal()); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// retain drops segments beyond MaxBytes or MaxAge from the list, oldest
// first, never the tail, and returns their names for removal. Called with
// mu held.
func (l *FileLog) retain() []string {
	if l.opt.MaxBytes <= 0 && l.opt.MaxAge <= 0 {
		return nil
	}
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	var minTxn Txn
	if l.opt.MaxAge > 0 {
		if cut := l.opt.Now().Add(-l.opt.MaxAge).UnixMicro(); cut > 0 {
			minTxn = Txn(cut)
		}
	}
	var names []string
	for len(l.segs) > 1 {
		s := l.segs[0]
		if l.pinned && s.last.Txn > l.keep {
			break // a checkpoint still needs it
		}
		overBytes := l.opt.MaxBytes > 0 && total > l.opt.MaxBytes
		tooOld := minTxn > 0 && s.last.Txn < minTxn
		if !overBytes && !tooOld {
			break
		}
		total -= s.size
		l.oldest = s.last
		names = append(names, s.name)
		l.segs = l.segs[1:]
	}
	return names
}

func (l *FileLog) removeSegments(names []string) {
	for _, name := range names {
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
			l.opt.Logger.Warn("txlog: retention could not remove a segment", "segment", name, "err", err)
		}
	}
	syncDir(l.dir)
}

// syncEvery is the SyncInterval goroutine: it fsyncs whatever was written
// since its last tick.
func (l *FileLog) syncEvery(d time.Duration) {
	defer close(l.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-l.stopped:
			return
		case <-t.C:
			l.mu.Lock()
			l.syncNow()
			l.mu.Unlock()
		}
	}
}

// syncNow writes everything staged and fsyncs the tail segment. Called with
// mu held.
func (l *FileLog) syncNow() error {
	for l.flushing {
		l.cond.Wait()
	}
	if l.err != nil || l.active == nil {
		return l.err
	}
	if len(l.staged) > 0 {
		return l.lead(true)
	}
	// Nothing staged: fsync what earlier unsynced flushes wrote. Holding
	// the leader role keeps writers off the file meanwhile.
	l.flushing = true
	l.mu.Unlock()
	err := l.fsync()
	l.mu.Lock()
	l.flushing = false
	l.cond.Broadcast()
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("txlog: fsync failed, log closed to appends: %w", err)
	}
	return l.err
}

// Close implements Log: it writes and fsyncs what is staged, whatever the
// policy, and releases the directory.
func (l *FileLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	err := l.syncNow()
	l.mu.Unlock()
	if l.stopped != nil {
		close(l.stopped)
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active != nil {
		if cerr := l.active.Close(); err == nil {
			err = cerr
		}
		l.active = nil
	}
	if cerr := l.lock.Close(); err == nil {
		err = cerr
	}
	return err
}
