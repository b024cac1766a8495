package fauna_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

// mint asks the server's /query/1 for a token of the spells collection,
// as the driver would, so that the test needs no access to the Handler.
func mint(t *testing.T, s *testServer) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.ts.URL+"/query/1", strings.NewReader(`{"query":{"fql":["spells.all().eventSource()"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var q struct {
		Data struct {
			Stream string `json:"@stream"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("query: %d %v", resp.StatusCode, err)
	}
	return q.Data.Stream
}

// checkV10 compares an event the v10 driver decoded with what the broker
// committed.
func checkV10(t *testing.T, got line, typ string, txn txlog.Txn, id, name string) {
	t.Helper()
	ts := time.UnixMicro(int64(txn)).UTC().Format("2006-01-02T15:04:05.000000Z")
	if got.Type != typ || got.TxnTS != txn || got.Cursor == "" || !got.IsDoc || got.ID != id ||
		got.Coll != "spells" || got.TS != ts || got.Name != name {
		t.Fatalf("got %s, want %s of %s at %d (%s) named %q", got.raw, typ, id, txn, ts, name)
	}
}

// TestDriverV10Stream: the v10 driver streams a minted token and sees add,
// update and remove as the broker committed them.
func TestDriverV10Stream(t *testing.T) { forEachMode(t, testDriverV10Stream) }

func testDriverV10Stream(t *testing.T, s *testServer) {
	b := s.b
	tok := mint(t, s)
	d := runScript(t, s, "driver10.js", "stream", tok)
	// Committed whenever: the stream starts at the token's minting.
	created := commit(t, b, func(tx *broker.Tx) error { return tx.Create(spell1, []byte(`{"name":"Blaze"}`)) })
	updated := commit(t, b, func(tx *broker.Tx) error { return tx.Update(spell1, []byte(`{"name":"Inferno"}`)) })
	deleted := commit(t, b, func(tx *broker.Tx) error { return tx.Delete(spell1) })
	checkV10(t, d.next(), "add", created, "1", "Blaze")
	checkV10(t, d.next(), "update", updated, "1", "Inferno")
	// A set's remove carries the document as it was last.
	checkV10(t, d.next(), "remove", deleted, "1", "Inferno")
	d.expect("done", "done")
}

// TestDriverV10Query: the driver makes the event source with a query
// (POST /query/1), of a collection, of one document with Set.single and of
// an index, the last two with interpolated values, and streams it.
func TestDriverV10Query(t *testing.T) { forEachMode(t, testDriverV10Query) }

func testDriverV10Query(t *testing.T, s *testServer) {
	for _, form := range []string{"all", "doc", "index"} {
		d := runScript(t, s, "driver10.js", "query", form)
		// The token is minted when the driver's query arrives; update
		// the spell until the driver has seen two events after it.
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				s.b.Commit(t.Context(), func(tx *broker.Tx) error {
					return tx.Upsert(spell1, []byte(`{"element":"fire","name":"`+strconv.Itoa(i)+`"}`))
				})
			}
		}()
		for range 2 {
			if l := d.next(); l.Label != "query" || (l.Type != "add" && l.Type != "update") || !l.IsDoc || l.Coll != "spells" || l.ID != "1" {
				t.Fatalf("%s: got %s", form, l.raw)
			}
		}
		close(stop)
		<-done
		d.expect("done", "done")
	}
}

// TestDriverV10Feed: the driver reads a feed page of a minted token, and
// one from a start_ts.
func TestDriverV10Feed(t *testing.T) { forEachMode(t, testDriverV10Feed) }

func testDriverV10Feed(t *testing.T, s *testServer) {
	b := s.b
	tok := mint(t, s)
	var txns []txlog.Txn
	for _, id := range []string{"a", "b", "c"} {
		txns = append(txns, commit(t, b, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"name":"`+id+`"}`))
		}))
	}
	d := runScript(t, s, "driver10.js", "feed", tok)
	p := d.expect("page", "page")
	if !p.HasNext || p.Cursor == "" || len(p.Events) != 2 {
		t.Fatalf("page: %s", p.raw)
	}
	p.Events[0].raw, p.Events[1].raw = p.raw, p.raw
	checkV10(t, p.Events[0], "add", txns[0], "a", "a")
	checkV10(t, p.Events[1], "add", txns[1], "b", "b")
	d.expect("done", "done")

	// With start_ts, the events after it.
	d = runScript(t, s, "driver10.js", "feed", tok, strconv.FormatUint(uint64(txns[1]), 10))
	p = d.expect("page", "page")
	if p.HasNext || len(p.Events) != 1 {
		t.Fatalf("page after start_ts %d: %s", txns[1], p.raw)
	}
	p.Events[0].raw = p.raw
	checkV10(t, p.Events[0], "add", txns[2], "c", "c")
	d.expect("done", "done")
}

// TestDriverV10Reconnect: the server ends a v10 stream cleanly; the driver
// reconnects with its cursor and sees every event exactly once.
func TestDriverV10Reconnect(t *testing.T) {
	for _, mode := range httpModes {
		t.Run(mode, func(t *testing.T) { testDriverV10Reconnect(t, mode) })
	}
}

func testDriverV10Reconnect(t *testing.T, mode string) {
	var mu sync.Mutex
	var cancels []context.CancelFunc
	var cursors []string
	s := spellsServerWrap(t, mode, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/stream/1" {
				h.ServeHTTP(w, r)
				return
			}
			// Canceling the request's context ends the broker's
			// subscription, and the Handler then ends the response.
			body, _ := io.ReadAll(r.Body)
			var req struct{ Cursor string }
			json.Unmarshal(body, &req)
			ctx, cancel := context.WithCancel(r.Context())
			mu.Lock()
			cancels = append(cancels, cancel)
			cursors = append(cursors, req.Cursor)
			mu.Unlock()
			r = r.WithContext(ctx)
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(w, r)
		})
	})
	b := s.b
	tok := mint(t, s)
	d := runScript(t, s, "driver10.js", "stream", tok, "3")
	created := commit(t, b, func(tx *broker.Tx) error { return tx.Create(spell1, []byte(`{"name":"Blaze"}`)) })
	add := d.next()
	checkV10(t, add, "add", created, "1", "Blaze")
	mu.Lock()
	for _, c := range cancels {
		c()
	}
	mu.Unlock()
	// Committed after the driver is back, so that they come on the new
	// stream, which must start right after the add.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(cursors)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the driver did not reconnect")
		}
	}
	updated := commit(t, b, func(tx *broker.Tx) error { return tx.Update(spell1, []byte(`{"name":"Inferno"}`)) })
	deleted := commit(t, b, func(tx *broker.Tx) error { return tx.Delete(spell1) })
	checkV10(t, d.next(), "update", updated, "1", "Inferno")
	checkV10(t, d.next(), "remove", deleted, "1", "Inferno")
	d.expect("done", "done")
	mu.Lock()
	defer mu.Unlock()
	if len(cursors) != 2 || cursors[0] != "" || cursors[1] != add.Cursor {
		t.Fatalf("stream requests with cursors %q, want one without and one with %q", cursors, add.Cursor)
	}
	s.checkProtocol(t)
	s.checkCORS(t)
}
