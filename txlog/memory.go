package txlog

import (
	"iter"
	"sort"
	"sync"
	"time"
)

// MemoryOptions bound what a MemoryLog retains. Retention drops the oldest
// records first and is applied on each append; the newest record is always
// kept. A zero field takes its default.
type MemoryOptions struct {
	// MaxRecords bounds the records kept. Default 100,000.
	MaxRecords int
	// MaxBytes bounds the encoded size of the records kept. Default 64 MiB.
	MaxBytes int64
	// MaxAge drops records whose txn is older than this. Default: no limit.
	MaxAge time.Duration
	// Now is the clock for txns and age; time.Now by default.
	Now func() time.Time
}

// Default retention of a MemoryLog.
const (
	DefaultMemoryMaxRecords = 100_000
	DefaultMemoryMaxBytes   = 64 << 20
)

// MemoryLog is a Log held in memory: the default, and lost on restart (a
// restarted process has a new log ID, so old cursors are refused, never
// misread). The zero value is not usable; call NewMemory.
type MemoryLog struct {
	id  ID
	now func() time.Time
	opt MemoryOptions

	mu     sync.RWMutex
	clock  *Clock
	recs   []memRecord // retained records, oldest first
	first  uint64      // sequence number of recs[0]; grows as retention drops
	bytes  int64
	oldest Pos
	closed bool
}

var _ Log = (*MemoryLog)(nil)

type memRecord struct {
	rec  Record
	size int64
}

// NewMemory returns an empty in-memory log with a new ID.
func NewMemory(opt MemoryOptions) *MemoryLog {
	if opt.MaxRecords <= 0 {
		opt.MaxRecords = DefaultMemoryMaxRecords
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultMemoryMaxBytes
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &MemoryLog{id: NewID(), now: opt.Now, opt: opt, clock: NewClock(opt.Now)}
}

// ID implements Log.
func (l *MemoryLog) ID() ID { return l.id }

// Stage implements Log. A memory log has nothing to wait for: the record
// is appended, and visible to readers, when Stage returns.
func (l *MemoryLog) Stage(ws []Write) (Txn, error) {
	r := Record{Writes: ws}
	if err := r.validate(); err != nil {
		return 0, err
	}
	size := int64(encodedSize(ws))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	r.Txn = l.clock.Next()
	l.recs = append(l.recs, memRecord{rec: r, size: size})
	l.bytes += size
	l.retain()
	return r.Txn, nil
}

// Wait implements Log. It returns nil at once: Stage did all there is to
// do, and a memory log promises nothing beyond its process.
func (l *MemoryLog) Wait(Txn) error { return nil }

// Append is Stage and Wait in one call: it appends a record and returns
// its txn.
func (l *MemoryLog) Append(ws []Write) (Txn, error) { return l.Stage(ws) }

// retain drops the oldest records beyond the limits, keeping the newest.
func (l *MemoryLog) retain() {
	var minTxn Txn
	if l.opt.MaxAge > 0 {
		if cut := l.now().Add(-l.opt.MaxAge).UnixMicro(); cut > 0 {
			minTxn = Txn(cut)
		}
	}
	n := 0
	for n < len(l.recs)-1 {
		m := &l.recs[n]
		if len(l.recs)-n <= l.opt.MaxRecords && l.bytes <= l.opt.MaxBytes && m.rec.Txn >= minTxn {
			break
		}
		l.bytes -= m.size
		l.oldest = m.rec.Last()
		n++
	}
	if n == 0 {
		return
	}
	// Clear the dropped entries so that the images they hold can be
	// collected before append next reallocates the array.
	clear(l.recs[:n])
	l.recs = l.recs[n:]
	l.first += uint64(n)
}

// Head implements Log.
func (l *MemoryLog) Head() Pos {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.head()
}

func (l *MemoryLog) head() Pos {
	if len(l.recs) == 0 {
		return l.oldest
	}
	return l.recs[len(l.recs)-1].rec.Last()
}

// Oldest implements Log.
func (l *MemoryLog) Oldest() Pos {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.oldest
}

// memReadBatch is how many records a reader copies per lock: enough to make
// the lock cheap per record, few enough not to hold appends up.
const memReadBatch = 64

// Read implements Log. It holds the lock only to copy a batch of records,
// never while the caller handles them.
func (l *MemoryLog) Read(after Cursor) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			yield(Record{}, ErrClosed)
			return
		}
		if err := checkStart(after, l.id, l.oldest, l.head()); err != nil {
			l.mu.RUnlock()
			yield(Record{}, err)
			return
		}
		i := sort.Search(len(l.recs), func(i int) bool {
			return l.recs[i].rec.Last().Compare(after.Pos) > 0
		})
		next := l.first + uint64(i)
		l.mu.RUnlock()

		var batch [memReadBatch]Record
		for {
			l.mu.RLock()
			if l.closed {
				l.mu.RUnlock()
				yield(Record{}, ErrClosed)
				return
			}
			if next < l.first {
				oldest := l.oldest
				l.mu.RUnlock()
				yield(Record{}, &overtakenError{oldest})
				return
			}
			n := 0
			for j := next - l.first; j < uint64(len(l.recs)) && n < len(batch); j++ {
				batch[n] = l.recs[j].rec
				n++
			}
			l.mu.RUnlock()
			if n == 0 {
				return
			}
			for _, r := range batch[:n] {
				if !yield(r, nil) {
					return
				}
			}
			next += uint64(n)
			clear(batch[:n])
		}
	}
}

// Close implements Log. Readers in progress end with ErrClosed. The
// records are gone: a memory log cannot be reopened.
func (l *MemoryLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.recs = nil
	return nil
}
