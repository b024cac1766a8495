package transport

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

// resumeMode is how a client opens a stream of the spells collection and
// resumes it.
type resumeMode struct {
	name string
	open func(ctx context.Context, base, cursor string) (*http.Request, error)
}

var resumeModes = []resumeMode{
	{"ndjson", func(ctx context.Context, base, cursor string) (*http.Request, error) {
		body := `{"collection":"spells"}`
		if cursor != "" {
			body = `{"collection":"spells","cursor":"` + cursor + `"}`
		}
		return http.NewRequestWithContext(ctx, "POST", base+"/stream", strings.NewReader(body))
	}},
	{"sse-last-event-id", func(ctx context.Context, base, cursor string) (*http.Request, error) {
		// As an EventSource does: the same URL, and the last id seen.
		r, err := http.NewRequestWithContext(ctx, "GET", base+"/sse?collection=spells", nil)
		if err == nil && cursor != "" {
			r.Header.Set("Last-Event-ID", cursor)
		}
		return r, err
	}},
	{"sse-cursor", func(ctx context.Context, base, cursor string) (*http.Request, error) {
		u := base + "/sse?collection=spells"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		return http.NewRequestWithContext(ctx, "GET", u, nil)
	}},
}

// committer creates spells/0, spells/1, ... from its own goroutine until
// stopped, recording each write's txn: what a subscriber of the collection
// must receive, each exactly once, in this order. It keeps at most
// commitWindow commits ahead of what the reader reports received, so that
// commits go on through every break without burying the reader.
type committer struct {
	b        *broker.Broker
	stop     chan struct{}
	once     sync.Once
	done     chan struct{}
	received atomic.Int64
	progress chan struct{}
	txns     []txlog.Txn // read after done
	err      error
}

const commitWindow = 64

func startCommitter(b *broker.Broker) *committer {
	c := &committer{b: b, stop: make(chan struct{}), done: make(chan struct{}), progress: make(chan struct{}, 1)}
	go func() {
		defer close(c.done)
		for i := 0; ; i++ {
			for int64(i)-c.received.Load() >= commitWindow {
				select {
				case <-c.progress:
				case <-c.stop:
					return
				}
			}
			select {
			case <-c.stop:
				return
			default:
			}
			txn, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
				return tx.Create(txlog.Ref{Collection: "spells", ID: strconv.Itoa(i)}, []byte(`{"element":"fire"}`))
			})
			if err != nil {
				c.err = err
				return
			}
			c.txns = append(c.txns, txn)
		}
	}()
	return c
}

// got reports one more event received.
func (c *committer) got() {
	c.received.Add(1)
	select {
	case c.progress <- struct{}{}:
	default:
	}
}

// finish stops the committer and returns what it committed.
func (c *committer) finish(t testing.TB) []txlog.Txn {
	t.Helper()
	c.once.Do(func() { close(c.stop) })
	<-c.done
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.txns
}

// received is what a resuming client collects.
type received struct {
	txns   []txlog.Txn // of set add events, in arrival order
	ids    []string
	breaks int
	opens  int
}

// check compares what was received with what was committed: the same
// writes, in the same order, each exactly once.
func (rc *received) check(t testing.TB, committed []txlog.Txn) {
	t.Helper()
	if len(rc.txns) != len(committed) {
		t.Errorf("received %d events, committed %d", len(rc.txns), len(committed))
	}
	for i := range min(len(rc.txns), len(committed)) {
		if rc.txns[i] != committed[i] || rc.ids[i] != strconv.Itoa(i) {
			t.Fatalf("event %d: txn %d id %s, want txn %d id %d (lost or repeated across a break)",
				i, rc.txns[i], rc.ids[i], committed[i], i)
		}
	}
}

// cut says how a connection ends.
type cut int

const (
	cutLifetime cut = iota // the server ends it at MaxLifetime
	cutClient              // the client cancels its request
	cutShutdown            // the server shuts down; resume on another
)

// TestResume cuts a stream again and again, by the server (maximum
// lifetime) and by the client (a cancelled request), while commits keep
// coming; the client resumes from its cursor each time, and receives every
// write exactly once: Guarantee 3 (broker package doc) over HTTP.
func TestResume(t *testing.T) {
	for _, cutBy := range []cut{cutLifetime, cutClient} {
		for _, mode := range resumeModes {
			for _, proto := range protocols {
				name := map[cut]string{cutLifetime: "lifetime", cutClient: "client"}[cutBy] + "/" + mode.name + "/" + proto
				t.Run(name, func(t *testing.T) {
					b := newSpellsBroker(t)
					srv := &Server{Broker: b}
					if cutBy == cutLifetime {
						srv.MaxLifetime = 25 * time.Millisecond
					}
					ts := serveBroker(t, srv)
					runResume(t, b, mode, proto, cutBy, func(int) string { return ts.URL }, nil)
				})
			}
		}
	}
}

// TestResumeAcrossShutdown shuts servers down one after another, each
// while a stream is live and commits keep coming: the stream ends with
// shutting_down and its cursor, and the client resumes on the next
// server of the same broker with nothing lost or repeated (Guarantees 3
// and 7, broker package doc; PROTOCOL.md, "How a stream ends").
func TestResumeAcrossShutdown(t *testing.T) {
	for _, mode := range []resumeMode{resumeModes[0], resumeModes[1]} {
		for _, proto := range protocols {
			t.Run(mode.name+"/"+proto, func(t *testing.T) {
				b := newSpellsBroker(t)
				var servers []*Server
				var urls []string
				for range 4 {
					srv := &Server{Broker: b, ShutdownWindow: 10 * time.Millisecond}
					servers = append(servers, srv)
					urls = append(urls, serveBroker(t, srv).URL)
				}
				var shutdowns sync.WaitGroup
				var shutdownErrs [4]error
				defer shutdowns.Wait()
				shutdown := func(i int) {
					shutdowns.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						defer cancel()
						shutdownErrs[i] = servers[i].Shutdown(ctx)
					})
				}
				rc := runResume(t, b, mode, proto, cutShutdown, func(i int) string { return urls[i] }, shutdown)
				shutdowns.Wait()
				for i := range rc.breaks {
					if shutdownErrs[i] != nil {
						t.Errorf("Shutdown of server %d: %v", i, shutdownErrs[i])
					}
				}
			})
		}
	}
}

// runResume reads a stream of the spells collection while a committer
// writes, through breaks of the given kind, reconnecting from the cursor
// after each, until at least 3 breaks happened and every commit arrived.
// url gives the server of the i-th connection; for cutShutdown, shutdown
// shuts the i-th down.
func runResume(t *testing.T, b *broker.Broker, mode resumeMode, proto string, cutBy cut,
	url func(i int) string, shutdown func(i int)) *received {
	const breaks = 3
	const perConn = 40 // events a client reads before it cuts (cutClient, cutShutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := client(proto)
	defer c.CloseIdleConnections()
	var cm *committer // started once the first stream has started
	defer func() {
		if cm != nil {
			cm.finish(t)
		}
	}()

	var rc received
	var committed []txlog.Txn // known once the committer stopped
	cursor := ""
	for {
		if rc.breaks >= breaks && committed == nil {
			committed = cm.finish(t)
		}
		if committed != nil && len(rc.txns) >= len(committed) {
			break
		}
		server := url(rc.opens)
		rc.opens++
		cctx, ccancel := context.WithCancel(ctx)
		req, err := mode.open(cctx, server, cursor)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			ccancel()
			t.Fatalf("connection %d: %v", rc.opens, err)
		}
		if resp.StatusCode != 200 {
			ccancel()
			checkError(t, resp, 200, "")
			t.FailNow()
		}
		r := newEvReader(t, resp)
		n := 0
		last := ""
		ended, complete := false, false
		for !ended {
			w, err := r.next()
			if err != nil {
				resp.Body.Close()
				ccancel()
				t.Fatalf("connection %d, after %d events: %v", rc.opens, n, err)
			}
			switch w.Type {
			case "start":
				if n != 0 || (cursor != "" && w.Cursor != cursor) {
					t.Fatalf("connection %d: start %+v, resuming from %q", rc.opens, w, cursor)
				}
				if cm == nil {
					cm = startCommitter(b)
				}
			case "set":
				if w.Event.Action != "add" {
					t.Fatalf("event %+v", w)
				}
				rc.txns = append(rc.txns, txlog.Txn(w.Txn))
				rc.ids = append(rc.ids, w.Event.Document.Ref.ID)
				cm.got()
				if committed != nil && len(rc.txns) >= len(committed) {
					ended, complete = true, true // all there: the client goes
				}
			case "status":
				continue
			case "error":
				// The server ended the stream: it names the cursor of the
				// last event it sent, and finishes the response.
				want := map[cut]string{cutLifetime: CodeStreamLifetime, cutShutdown: CodeShuttingDown}[cutBy]
				if w.Event.Code != want || w.Event.Cursor != last {
					t.Fatalf("connection %d: error %s with cursor %q, want %s with %q (the last event's)",
						rc.opens, w.Raw, w.Event.Cursor, want, last)
				}
				if _, err := r.next(); err != io.EOF {
					t.Fatalf("connection %d: after the error event: %v, want a clean end", rc.opens, err)
				}
				ended = true
				continue
			default:
				t.Fatalf("event %+v", w)
			}
			n++
			last = w.Cursor
			// Cut while commits are coming, never after.
			if cutBy != cutLifetime && committed == nil && n == perConn {
				if cutBy == cutClient {
					ended = true
				} else {
					shutdown(rc.opens - 1)
				}
			}
		}
		resp.Body.Close()
		ccancel()
		if !complete {
			rc.breaks++
		}
		cursor = last
		if r.sse != nil {
			// What an EventSource would send is the id of the last event.
			if id := r.lastEventID(); id != last {
				t.Fatalf("Last-Event-ID %q, want the last cursor %q", id, last)
			}
		}
	}
	rc.check(t, committed)
	t.Logf("%d events exactly once across %d breaks", len(rc.txns), rc.breaks)
	return &rc
}

// Last-Event-ID wins over the cursor parameter, since a reconnecting
// EventSource sends its original URL.
func TestSSELastEventIDWins(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	createSpell(t, b, "1", "fire")
	foreign := txlog.Cursor{Log: txlog.NewID()}.String()
	own := txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(b.Head() - 1)}.String()

	resp := do(t, c, "GET", ts.URL+"/sse?collection=spells&cursor="+foreign, "", http.Header{"Last-Event-Id": {own}})
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s", resp.Status)
	}
	r := newEvReader(t, resp)
	if w, err := r.next(); err != nil || w.Type != "start" || w.Cursor != own {
		t.Fatalf("start %+v %v", w, err)
	}
	if w, err := r.next(); err != nil || w.Type != "set" || w.Event.Document.Ref.ID != "1" {
		t.Fatalf("replayed %+v %v", w, err)
	}

	resp = do(t, c, "GET", ts.URL+"/sse?collection=spells&cursor="+own, "", http.Header{"Last-Event-Id": {foreign}})
	checkError(t, resp, http.StatusGone, CodeHistoryUnavailable)
}

// A client that cancels mid-stream frees its subscription on the server.
func TestClientCancelFreesTheStream(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			ts, _, b := testServer(t, nil)
			c := client(proto)
			defer c.CloseIdleConnections()
			ctx, cancel := context.WithCancel(context.Background())
			resp, _ := openStream(t, ctx, c, ts.URL+"/stream", `{"collection":"spells"}`)
			if n := b.Stats().Subscriptions; n != 1 {
				t.Fatalf("%d subscriptions", n)
			}
			cancel()
			resp.Body.Close()
			waitFor(t, 10*time.Second, "the subscription to be freed", func() bool { return b.Stats().Subscriptions == 0 })
		})
	}
}

// An EventSource that loses its connection in the middle of a snapshot
// reconnects with the same URL (snapshot=true) and the last id it saw: it
// must still end up with every document of the snapshot: were the start
// event's cursor its id, resuming from it would skip the rest of the
// snapshot without a word. Guarantee 2
// (broker package doc): a snapshot is never resumed halfway; PROTOCOL.md,
// "SSE framing", the snapshot rule.
func TestSSEResumeMidSnapshot(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	for _, id := range []string{"1", "2", "3"} {
		createSpell(t, b, id, "fire")
	}
	const u = "/sse?collection=spells&snapshot&page_size=1"
	members := func(w wireEvent) []string {
		var page struct {
			Data []struct {
				Document struct{ Ref txlog.Ref } `json:"document"`
			} `json:"data"`
		}
		if err := json.Unmarshal(w.Raw, &page); err != nil {
			t.Fatalf("%s: %v", w.Raw, err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.Document.Ref.ID)
		}
		return ids
	}
	resp := do(t, c, "GET", ts.URL+u, "", nil)
	r := newEvReader(t, resp)
	got := map[string]bool{}
	for _, want := range []string{"start", "snapshot"} {
		w, err := r.next()
		if err != nil || w.Type != want {
			t.Fatalf("%+v %v, want %s", w, err, want)
		}
		if w.Type == "snapshot" {
			for _, id := range members(w) {
				got[id] = true
			}
		}
	}
	resp.Body.Close() // the connection drops after the first page

	// The EventSource reconnects: the same URL, and Last-Event-ID if it
	// has seen an id.
	var h http.Header
	if id := r.lastEventID(); id != "" {
		h = http.Header{"Last-Event-Id": {id}}
	}
	resp = do(t, c, "GET", ts.URL+u, "", h)
	defer resp.Body.Close()
	r = newEvReader(t, resp)
	createSpell(t, b, "4", "fire") // a live event, to see the end of the snapshot
	for {
		w, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if w.Type == "snapshot" {
			for _, id := range members(w) {
				got[id] = true
			}
		}
		if w.Type == "set" {
			break
		}
	}
	for _, id := range []string{"1", "2", "3"} {
		if !got[id] {
			t.Errorf("spells/%s of the snapshot never reached the client (it saw %v)", id, got)
		}
	}
}
