package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// tidingsSchema: the collection items, and the index items_by_topic whose
// set "bench" every subscriber follows (with -kind set).
var tidingsSchema = index.Schema{
	Collections: []string{"items"},
	Indexes:     []index.Definition{{Name: "items_by_topic", Collection: "items", Terms: []string{"topic"}}},
}

// tidingsDoc is the one document of -kind document.
var tidingsDoc = txlog.Ref{Collection: "items", ID: "doc"}

// tidings is the broker, in process or behind transport.Server.
type tidings struct {
	w      *Workload
	b      *broker.Broker
	target subscription.Target
	opt    subscription.Options
	n      int // documents created: warm-up events need ids too
	lb     *loopback
	format string
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	ended  []<-chan struct{} // closed after each subscription's last callback
}

func openTidings(tr string) func(w *Workload) (system, error) { return openTidingsWith(tr, false) }

// openTidingsDetached is tidings with transport.Server.Detach: HTTP/1.1
// streams written by the broker's delivery workers straight to their
// connections, without a goroutine or net/http's buffers each.
func openTidingsDetached(tr string) func(w *Workload) (system, error) {
	return openTidingsWith(tr, true)
}

func openTidingsWith(tr string, detach bool) func(w *Workload) (system, error) {
	return func(w *Workload) (system, error) {
		// A log that retains the whole run, so that a subscriber that stops
		// reading can catch up from it, however long it stalls: retention
		// is the application's choice, and this is the choice that keeps
		// everything for the benchmark's few million events.
		log := txlog.NewMemory(txlog.MemoryOptions{MaxRecords: 1 << 26, MaxBytes: 16 << 30})
		b, err := broker.New(broker.Options{Log: log, Schema: tidingsSchema, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			return nil, err
		}
		t := &tidings{w: w, b: b, format: tr}
		t.ctx, t.cancel = context.WithCancel(context.Background())
		switch w.Kind {
		case KindSet:
			t.target, _ = subscription.Match("items_by_topic", "bench")
			t.opt.Data = true
		case KindCollection:
			t.target = subscription.Collection("items")
			t.opt.Data = true
		case KindDocument:
			t.target = subscription.Document(tidingsDoc)
			if _, err := b.Commit(t.ctx, func(tx *broker.Tx) error {
				return tx.Create(tidingsDoc, appendPayload(nil, 0, 0, w.Size))
			}); err != nil {
				b.Close()
				return nil, err
			}
		}
		if tr != TransportInProcess {
			srv := &transport.Server{Broker: b, Detach: detach, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if t.lb, err = serveLoopback(srv); err != nil {
				b.Close()
				return nil, err
			}
		}
		return t, nil
	}
}

// publish commits one write: a new document in the set (or collection),
// or a new version of the one document.
func (t *tidings) publish(_ uint64, p []byte) error {
	t.n++
	id := strconv.Itoa(t.n)
	_, err := t.b.Commit(t.ctx, func(tx *broker.Tx) error {
		if t.w.Kind == KindDocument {
			return tx.Replace(tidingsDoc, p)
		}
		return tx.Create(txlog.Ref{Collection: "items", ID: id}, p)
	})
	return err
}

// subscribe opens a subscription delivered by the broker's workers
// (Subscription.Deliver), a batch at a time: as go-sse and centrifuge
// deliver in process, with callbacks, and as a program with thousands of
// in-process subscribers should. The clock is read once per batch: every
// event of the batch reached the subscriber at that moment.
func (t *tidings) subscribe(f *fleet, r *receiver) error {
	sub, err := t.b.Subscribe(t.ctx, t.target, t.opt)
	if err != nil {
		return err
	}
	ended := sub.Deliver(func(batch []subscription.Event) bool {
		now := time.Now().UnixNano()
		for i := range batch {
			if seq, sent, ok := parseEvent(batch[i].JSON); ok {
				now = f.deliver(r, seq, sent, now)
			}
		}
		return true
	})
	t.mu.Lock()
	t.ended = append(t.ended, ended)
	t.mu.Unlock()
	return nil
}

// endpoint is the SSE or NDJSON stream of the target, with the data.
func (t *tidings) endpoint() Endpoint {
	q := url.Values{"data": {"true"}}
	req := map[string]any{"data": true}
	switch t.w.Kind {
	case KindSet:
		q.Set("index", "items_by_topic")
		q.Set("terms", `["bench"]`)
		req["index"], req["terms"] = "items_by_topic", []string{"bench"}
	case KindCollection:
		q.Set("collection", "items")
		req["collection"] = "items"
	case KindDocument:
		q.Set("collection", tidingsDoc.Collection)
		q.Set("id", tidingsDoc.ID)
		req["document"] = tidingsDoc
	}
	if t.format == TransportSSE {
		return t.lb.endpoint(Endpoint{Format: TransportSSE, Method: "GET", Path: "/tidings/sse?" + q.Encode(), Resume: ResumeLastEventID})
	}
	body, _ := json.Marshal(req)
	return t.lb.endpoint(Endpoint{Format: TransportNDJSON, Method: "POST", Path: "/tidings/stream", Body: string(body), Resume: ResumeCursorInBody})
}

func (t *tidings) close() {
	if t.lb != nil {
		t.lb.close()
	}
	t.cancel() // ends every in-process subscription
	for _, ch := range t.ended {
		<-ch
	}
	if err := t.b.Close(); err != nil {
		panic(fmt.Sprintf("closing the broker: %v", err))
	}
}
