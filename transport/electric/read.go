package electric

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// result is what one read of a shape yields, shared by every request that
// asked for the same read at once: its messages encoded once, as the JSON
// array a response sends and, on demand, as SSE events.
type result struct {
	msgs     [][]byte  // the change messages (or the initial inserts)
	h        txlog.Txn // every txn up to h is in msgs and before
	upToDate bool      // msgs are all of the shape up to h (not a page cut short)
	seq      uint64    // which read this was, for ETags that must differ
	err      error

	json []byte // msgs, then up-to-date when upToDate, as a JSON array
	once sync.Once
	sse  []byte
}

// changed reports whether the read found changes.
func (r *result) changed() bool { return len(r.msgs) > 0 }

// finish encodes the JSON body; withUpToDate adds the closing control
// message (the initial rows have none).
func (r *result) finish(withUpToDate bool) *result {
	b := []byte{'['}
	for i, m := range r.msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	if withUpToDate && r.upToDate {
		if len(r.msgs) > 0 {
			b = append(b, ',')
		}
		b = appendUpToDate(b, r.h)
	}
	r.json = append(b, ']')
	return r
}

// sseBody is the messages as SSE events, each `data: <json>` and a blank
// line, then the up-to-date that makes the client apply them.
func (r *result) sseBody() []byte {
	r.once.Do(func() {
		var b []byte
		for _, m := range r.msgs {
			b = append(b, "data: "...)
			b = append(b, m...)
			b = append(b, "\n\n"...)
		}
		if r.upToDate {
			b = append(b, "data: "...)
			b = appendUpToDate(b, r.h)
			b = append(b, "\n\n"...)
		}
		r.sse = b
	})
	return r.sse
}

// flights collapses identical reads: a read asked for while the same one
// (same key: shape definition, kind and position) is under way is not
// done again; the asker waits for the one under way and gets the very
// same result. So a thousand clients at the same offset of a shape cost
// one read of the log and one encoding per commit, whatever the mode.
//
// A read runs in a goroutine of its own, not in its first asker's, so
// that an asker that leaves (its client gone, or an SSE keep-alive due)
// does not take the read from the others; the read is cancelled when the
// last asker leaves.
type flights struct {
	mu   sync.Mutex
	m    map[string]*flight
	seq  atomic.Uint64
	runs atomic.Int64 // reads started, for tests
}

type flight struct {
	done    chan struct{}
	res     *result
	waiters int
	cancel  context.CancelFunc
}

// do returns the result of the read of key, joining the one under way or
// starting fn; ok is false when ctx ended, or wake fired, first. (wake
// lets an SSE stream wait with one timer for its life, where a context
// with a deadline per wait would cost allocations every time.)
func (g *flights) do(ctx context.Context, wake <-chan time.Time, key string, fn func(context.Context) *result) (*result, bool) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]*flight{}
	}
	f := g.m[key]
	if f == nil {
		var fctx context.Context
		fctx, cancel := context.WithCancel(context.Background())
		f = &flight{done: make(chan struct{}), cancel: cancel}
		g.m[key] = f
		g.runs.Add(1)
		seq := g.seq.Add(1)
		go func() {
			res := fn(fctx)
			res.seq = seq
			cancel()
			g.mu.Lock()
			if g.m[key] == f {
				delete(g.m, key)
			}
			g.mu.Unlock()
			f.res = res
			close(f.done)
		}()
	}
	f.waiters++
	g.mu.Unlock()
	select {
	case <-f.done:
		g.leave(key, f)
		return f.res, true
	case <-ctx.Done():
		g.leave(key, f)
		return nil, false
	case <-wake:
		g.leave(key, f)
		return nil, false
	}
}

// leave counts an asker out; the last one out of an unfinished read
// cancels it, and the next asker starts another.
func (g *flights) leave(key string, f *flight) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f.waiters--
	if f.waiters == 0 {
		f.cancel()
		if g.m[key] == f {
			delete(g.m, key)
		}
	}
}

// readOptions are the options of a shape's reads: set events with the
// document's data, updates of members with their diff (the message names
// the changed fields, and removed ones as null).
func readOptions(t subscription.Target) subscription.Options {
	f := subscription.FieldAction | subscription.FieldDocument | subscription.FieldDiff
	if t.IsSet() {
		return subscription.Options{Data: true, Updates: true, Fields: f}
	}
	return subscription.Options{Fields: f}
}

// Reads go through the log a page at a time; a response holds at most
// maxMessages (then it ends at a txn boundary without up-to-date and the
// client asks again at once).
const (
	readPage    = 512
	maxMessages = 8192
)

// read reads the shape's changes after txn from: the messages of every
// txn that touches it, in order, and the position reached. With wait, an
// empty read waits for a commit that changes the shape, until ctx is done
// (then it is an empty read at the position the log reached).
func (h *Handler) read(ctx context.Context, req *shapeRequest, from txlog.Txn, wait bool) *result {
	b := h.Server.Broker
	opt := readOptions(req.read)
	cur := txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(from)}
	res := &result{h: from}
	var txns []txlog.Txn // the txn of each message
	for {
		opt.Cursor = cur.String()
		page, err := b.ReadPage(ctx, req.read, opt, readPage, wait && len(res.msgs) == 0)
		if err != nil {
			res.err = err
			return res
		}
		for i := range page.Events {
			e := &page.Events[i]
			m, ok, err := appendChange(nil, e, req.columns, req.only)
			if err != nil {
				res.err = err
				return res
			}
			if ok {
				res.msgs = append(res.msgs, m)
				txns = append(txns, e.Txn)
			}
			res.h = max(res.h, e.Txn)
		}
		if !page.More {
			// Read to the head: every txn read is whole.
			if len(page.Events) == 0 {
				res.h = max(res.h, page.Cursor.Pos.Txn)
			}
			if len(res.msgs) == 0 && wait && ctx.Err() == nil {
				// Commits that did not change a row of the shape: wait on.
				cur = txlog.Cursor{Log: cur.Log, Pos: txlog.AfterTxn(res.h)}
				continue
			}
			res.upToDate = true
			return res.finish(true)
		}
		cur = page.Cursor
		if len(res.msgs) >= maxMessages {
			// End at the last txn boundary within the messages: the txn
			// of the last message may go on in the next page.
			last := txns[len(txns)-1]
			if i := slices.IndexFunc(txns, func(t txlog.Txn) bool { return t == last }); i > 0 {
				res.msgs, res.h = res.msgs[:i], txns[i-1]
				return res.finish(true)
			}
		}
	}
}

// snapshot reads the shape's rows at one txn, the start of a subscription
// that asks for a snapshot, sorted by id.
func (h *Handler) snapshot(ctx context.Context, req *shapeRequest) *result {
	b := h.Server.Broker
	res := &result{}
	if req.changesOnly {
		res.h = b.Head()
		return res.finish(false)
	}
	if req.only != "" {
		// One document: its current version, and a txn no earlier than
		// it or than the head (a commit between the two touches another
		// document, or this one later, which the reads after S bring).
		ref := req.target.Ref
		res.h = b.Head()
		if doc, ok := b.Get(ref); ok {
			res.h = max(res.h, doc.TS)
			m, err := appendInsert(nil, ref, doc.Data, req.columns)
			if err != nil {
				res.err = err
				return res
			}
			res.msgs = append(res.msgs, m)
		}
		return res.finish(false)
	}
	sub, err := b.Subscribe(ctx, req.target, subscription.Options{Snapshot: true, Data: true, Fields: subscription.FieldDocument})
	if err != nil {
		res.err = err
		return res
	}
	defer sub.Close()
	res.h = sub.Start()
	type row struct {
		ref  txlog.Ref
		data json.RawMessage
	}
	var rows []row
	for e := range sub.Events() {
		switch e.Type {
		case subscription.TypeStart:
			continue
		case subscription.TypeSnapshot:
			var page struct {
				Event struct {
					Data []struct {
						Document struct {
							Ref  txlog.Ref       `json:"ref"`
							Data json.RawMessage `json:"data"`
						} `json:"document"`
					} `json:"data"`
				} `json:"event"`
			}
			if err := json.Unmarshal(e.JSON, &page); err != nil {
				res.err = err
				return res
			}
			for _, m := range page.Event.Data {
				if d := m.Document.Data; len(d) > 0 && string(d) != "null" {
					rows = append(rows, row{m.Document.Ref, d})
				}
			}
			if e.Action != subscription.ActionLastPage {
				continue
			}
			slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.ref.ID, b.ref.ID) })
			for _, r := range rows {
				m, err := appendInsert(nil, r.ref, r.data, req.columns)
				if err != nil {
					res.err = err
					return res
				}
				res.msgs = append(res.msgs, m)
			}
			return res.finish(false)
		default:
			// An error event, or the end: no whole snapshot.
			res.err = errSnapshotCut
			if ctx.Err() != nil {
				res.err = ctx.Err()
			}
			return res
		}
	}
	res.err = errSnapshotCut
	if ctx.Err() != nil {
		res.err = ctx.Err()
	}
	return res
}

// errSnapshotCut is a snapshot that ended before its last page: the
// broker closing, or the subscriber falling behind while it was read.
var errSnapshotCut = errors.New("electric: the snapshot ended before its last page")

// holdRead is read with wait, bounded by the long-poll hold.
func (h *Handler) holdRead(req *shapeRequest, from txlog.Txn) func(context.Context) *result {
	return func(ctx context.Context) *result {
		ctx, cancel := context.WithTimeout(ctx, orDefault(h.LongPollHold, DefaultLongPollHold))
		defer cancel()
		return h.read(ctx, req, from, true)
	}
}

func orDefault(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

// waiting is how many askers wait for the read of key (for tests).
func (g *flights) waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[key]; f != nil {
		return f.waiters
	}
	return 0
}
