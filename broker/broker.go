package broker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/txlog"
)

// Options configure a Broker. The zero value is an in-memory broker with
// no collections.
type Options struct {
	// Log is the transaction log; an in-memory log with its default
	// retention when nil. The broker owns it and closes it on Close.
	Log txlog.Log
	// Schema declares the collections and indexes. Writes to undeclared
	// collections fail with ErrUnknownCollection. More can be defined while
	// running with DefineCollection and DefineIndex.
	Schema index.Schema
	// Checkpoint configures checkpoints of the state, which make restarts
	// fast and let the log's retention delete old segments. A broker on a
	// *txlog.FileLog (a txlog.Durable log with a directory) has them by
	// default; see CheckpointOptions.
	Checkpoint CheckpointOptions
	// Logger receives what the broker has to say; slog.Default() if nil.
	Logger *slog.Logger
	// CutOffAfter, on a txlog.Shared log, is how long a node goes without
	// hearing from the log (txlog.Shared.Contact) before it counts as cut
	// off: its streams end with shutting_down and their cursors, and it
	// refuses commits and subscriptions with ErrCutOff until it hears from
	// the log again. Until then its streams stay open, with heartbeats.
	// DefaultCutOffAfter if zero.
	CutOffAfter time.Duration
}

// DefaultCutOffAfter is Options.CutOffAfter's default.
const DefaultCutOffAfter = 15 * time.Second

// Broker is the embeddable core: it commits transactions of document
// writes, keeps the documents and their index entries, and delivers every
// change to the subscriptions that follow it, in txn order.
//
// Concurrency: every method is safe for concurrent use. Commits are
// serialised by one lock, which also orders delivery; delivery never waits
// for a subscriber (see Subscribe).
type Broker struct {
	log    txlog.Log
	logger *slog.Logger

	// mu is the commit lock: it serialises commits, their delivery, and
	// the registration of subscribers, so that a subscriber registered
	// under it sees exactly the commits after the txn it read there.
	//
	// Lock order: checkpointer.mu, then mu, then a subscriber's queue lock
	// (subscription.Queue's mu). A checkpoint takes mu while it holds
	// checkpointer.mu, so mu is never held while taking checkpointer.mu
	// (Close takes that after releasing mu). Under mu, delivery pushes to
	// queues and a catching-up subscriber calls Rejoin, each taking the
	// queue's lock inside; a consumer takes its queue's lock (Take) without
	// mu. The log's own locks come after mu: Stage and Append are called
	// under it, Wait without it.
	mu     sync.Mutex
	schema index.Schema
	store  *entrystore.Store
	docs   *docTree
	// head is the txn of the state: the last commit applied. published is
	// the last commit delivered to subscribers, which is durable; between
	// them are the pending commits, staged in the log and applied to the
	// state but waiting for their fsync (see commit).
	head        txlog.Txn
	published   txlog.Txn
	pending     []pendingCommit
	failed      error // the log failed: the broker has stopped
	subs        registry
	closed      bool // no more commits or streams: Close, or a failed log
	closeCalled bool
	diffs       [][]entrystore.Diff // free diff slices, reused by commits
	// changeCh is closed by the next commit, for pages that wait for one.
	changeCh chan struct{}

	// On a shared log (see shared.go): the log, the commit lock of this
	// node (held across the round trip to the log, not under mu), and the
	// follower's stop and end.
	shared     txlog.Shared
	commitMu   sync.Mutex
	stopFollow context.CancelFunc
	followed   chan struct{}
	watched    chan struct{}
	cutOff     atomic.Bool // see Options.CutOffAfter

	ckpt      *checkpointer // nil without checkpoints
	sinceCkpt int64         // bytes written since the last checkpoint, replayed ones included; guarded by mu

	cat     atomic.Pointer[entrystore.Catalog] // read without mu by catching-up subscribers
	closing chan struct{}                      // closed by Close: wakes every subscriber
	stats   counters
	recent  commitRing      // the last commits delivered, for lag; guarded by mu
	workers deliveryWorkers // for Subscription.Deliver
}

// New returns a broker. On a log that already holds records (a reopened
// file log) it rebuilds the documents and indexes: from the newest usable
// checkpoint and the log after it, or from the whole log. A checkpoint that
// is damaged, of another log, or not covered by the log is skipped for an
// older one; if nothing can rebuild the state, because the log has dropped
// records no checkpoint covers, the error wraps ErrNoState and says why.
//
// The schema is Options.Schema: give there the collections and indexes
// that DefineCollection and DefineIndex added while running.
func New(opt Options) (*Broker, error) {
	cat, err := entrystore.NewCatalog(opt.Schema)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		log:     opt.Log,
		logger:  opt.Logger,
		schema:  cloneSchema(opt.Schema),
		store:   entrystore.NewStore(cat),
		docs:    newDocTree(),
		closing: make(chan struct{}),
	}
	if b.log == nil {
		b.log = txlog.NewMemory(txlog.MemoryOptions{})
	}
	if b.logger == nil {
		b.logger = slog.Default()
	}
	b.cat.Store(cat)
	b.subs.init()
	b.workers.init(&b.stats.delivered)
	b.ckpt = initCheckpoints(opt.Checkpoint, b.log)
	if err := b.loadState(); err != nil {
		return nil, err
	}
	b.published = b.head
	if sh, ok := b.log.(txlog.Shared); ok {
		var ctx context.Context
		ctx, b.stopFollow = context.WithCancel(context.Background())
		b.shared, b.followed, b.watched = sh, make(chan struct{}), make(chan struct{})
		go b.follow(ctx, b.head)
		go b.watchContact(ctx, cmp.Or(opt.CutOffAfter, DefaultCutOffAfter))
	}
	if b.ckpt != nil {
		go b.runCheckpoints()
	}
	return b, nil
}

func cloneSchema(s index.Schema) index.Schema {
	return index.Schema{Collections: slices.Clone(s.Collections), Indexes: slices.Clone(s.Indexes)}
}

// setVersion records a document's new current version (nil data: deleted).
func (b *Broker) setVersion(ref txlog.Ref, txn txlog.Txn, data []byte) {
	if data == nil {
		b.docs.Delete(&version{ref: ref})
		return
	}
	b.docs.ReplaceOrInsert(&version{ref: ref, ts: txn, data: data})
}

// Get returns the current version of a document. It returns once the
// commits it reads from are durable (a commit in progress may be waiting
// for its fsync), so that it never shows a write a crash could undo.
func (b *Broker) Get(ref txlog.Ref) (Document, bool) {
	b.mu.Lock()
	v, head := getVersion(b.docs, ref), b.head
	b.mu.Unlock()
	b.awaitPublished(head, nil)
	if v == nil {
		return Document{}, false
	}
	return v.document(), true
}

// Head returns the txn of the last commit, durable and delivered.
func (b *Broker) Head() txlog.Txn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.published
}

// LogID is the identity of the broker's log, which every cursor names.
func (b *Broker) LogID() txlog.ID { return b.log.ID() }

// Schema returns the collections and indexes in force: those of
// Options.Schema and of every DefineCollection and DefineIndex since. It
// is a copy: changing it changes nothing.
func (b *Broker) Schema() index.Schema {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := cloneSchema(b.schema)
	for i := range s.Indexes {
		s.Indexes[i].Terms = slices.Clone(s.Indexes[i].Terms)
		s.Indexes[i].Values = slices.Clone(s.Indexes[i].Values)
	}
	return s
}

// DefineCollection declares a collection while running.
func (b *Broker) DefineCollection(name string) error {
	return b.redefine(func(s *index.Schema) { s.Collections = append(s.Collections, name) })
}

// DefineIndex declares an index while running. Its entries are built from
// the current documents before it returns; its sets have no history
// before this moment.
func (b *Broker) DefineIndex(def index.Definition) error {
	return b.redefine(func(s *index.Schema) { s.Indexes = append(s.Indexes, def) })
}

// redefine swaps in a new catalog and rebuilds the index store for it,
// under the commit lock: commits wait, subscribers do not.
func (b *Broker) redefine(change func(*index.Schema)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	schema := cloneSchema(b.schema)
	change(&schema)
	cat, err := entrystore.NewCatalog(schema)
	if err != nil {
		return err
	}
	store := entrystore.NewStore(cat)
	var d entrystore.Diff
	var err2 error
	b.docs.Ascend(func(v *version) bool {
		if err2 = cat.Diff(&d, v.ref, nil, v.data); err2 == nil {
			err2 = store.Apply(b.head, &d)
		}
		return err2 == nil
	})
	if err2 != nil {
		return fmt.Errorf("broker: building the new indexes: %w", err2)
	}
	b.schema, b.store = schema, store
	b.cat.Store(cat)
	return nil
}

// Close stops the broker: commits in flight finish, later ones fail with
// ErrClosed, every subscriber receives an error event shutting_down with
// the cursor to resume from, and the log is closed. With checkpoints, it
// first writes one of the final state if anything was written since the
// newest, so that a restart replays nothing; that takes as long as any
// checkpoint (see CheckpointOptions), and if it fails the error is logged
// and the log closed all the same. The error is the log's.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closeCalled {
		b.mu.Unlock()
		return nil
	}
	// A broker stopped by a log failure is closed already to commits and
	// streams, but its log and checkpointer still need releasing.
	b.closeCalled = true
	b.stop()
	b.mu.Unlock()
	b.workers.close() // after stop: the callbacks get their last events
	if b.shared != nil {
		b.stopFollow()
		<-b.followed
		<-b.watched
	}
	if b.ckpt != nil {
		// A checkpoint in progress stops at its next few thousand
		// documents, for one of the final state.
		b.closeCheckpoint()
	}
	return b.log.Close()
}

// stop refuses commits and subscriptions from now on and ends every
// stream. Called with mu held, by Close or when the log fails.
func (b *Broker) stop() {
	if b.closed {
		return
	}
	b.closed = true
	close(b.closing)
	b.notifyChanged()
	b.subs.each(func(s *subscriber) { s.q.Notify() }) // consumers wait on their queues alone
}
