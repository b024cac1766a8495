package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

var modes = []struct{ h2c, sse bool }{{false, false}, {true, false}, {false, true}}

// A subscription with a snapshot gets start, the snapshot pages, then the
// live events; after the server ends the stream (MaxLifetime) it resumes
// from the start cursor without taking the snapshot again.
func TestSnapshotThenLive(t *testing.T) {
	for _, mode := range modes {
		t.Run(fmt.Sprintf("h2c=%v,sse=%v", mode.h2c, mode.sse), func(t *testing.T) {
			var opens atomic.Int32
			ts, b := server(t, func(s *transport.Server) {
				s.MaxLifetime = 100 * time.Millisecond
				s.Authorize = func(*http.Request, subscription.Target) error { opens.Add(1); return nil }
			})
			const docs, page = 10, 3
			for i := range docs {
				create(t, b, fmt.Sprint(i), "fire")
			}
			c := &Client{URL: ts.URL, H2C: mode.h2c, SSE: mode.sse, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
			defer c.Close()
			sub, err := c.Subscribe(context.Background(), subscription.Collection("spells"),
				subscription.Options{Snapshot: true, SnapshotPageSize: page})
			if err != nil {
				t.Fatal(err)
			}
			next, stop := pull(t, c, sub)
			defer stop()

			if e := next(); e.Type != subscription.TypeStart {
				t.Fatalf("first event %s", e.JSON)
			}
			members := 0
			pages := 0
			for {
				e := next()
				if e.Type != subscription.TypeSnapshot {
					t.Fatalf("event %s before the snapshot's last page", e.JSON)
				}
				var w struct {
					Event struct {
						Data []json.RawMessage `json:"data"`
						Last bool              `json:"last"`
					} `json:"event"`
				}
				if err := json.Unmarshal(e.JSON, &w); err != nil {
					t.Fatalf("%s: %v", e.JSON, err)
				}
				if len(w.Event.Data) > page {
					t.Fatalf("a page of %d members, page size %d", len(w.Event.Data), page)
				}
				members += len(w.Event.Data)
				pages++
				if w.Event.Last {
					break
				}
			}
			if members != docs || pages != (docs+page-1)/page {
				t.Fatalf("snapshot of %d members in %d pages, want %d in %d", members, pages, docs, (docs+page-1)/page)
			}

			txn := create(t, b, "live", "water")
			if e := next(); e.Type != subscription.TypeSet || e.Action != "add" || e.Txn != txn {
				t.Fatalf("live event %s, want an add at %d", e.JSON, txn)
			}
			// Once the stream has been resumed, the next change follows,
			// with no second snapshot before it.
			opened := opens.Load()
			deadline := time.Now().Add(5 * time.Second)
			for opens.Load() == opened {
				if time.Now().After(deadline) {
					t.Fatal("the stream was not resumed")
				}
				time.Sleep(time.Millisecond)
			}
			txn = create(t, b, "after", "earth")
			if e := next(); e.Type != subscription.TypeSet || e.Action != "add" || e.Txn != txn {
				t.Fatalf("event after resuming %s, want an add at %d", e.JSON, txn)
			}
		})
	}
}

// A document stream on a missing document is refused with 404: Events
// ends without an event and Err is a *StatusError.
func TestMissingDocumentIs404(t *testing.T) {
	for _, mode := range modes {
		t.Run(fmt.Sprintf("h2c=%v,sse=%v", mode.h2c, mode.sse), func(t *testing.T) {
			ts, _ := server(t, nil)
			c := &Client{URL: ts.URL, H2C: mode.h2c, SSE: mode.sse}
			defer c.Close()
			sub, err := c.Subscribe(context.Background(), subscription.Document(txlog.Ref{Collection: "spells", ID: "nowhere"}), subscription.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for e := range sub.Events() {
				t.Fatalf("an event for a missing document: %s", e.JSON)
			}
			var se *StatusError
			if !errors.As(sub.Err(), &se) || se.Status != http.StatusNotFound || se.Code != "not_found" {
				t.Fatalf("Err() = %#v", sub.Err())
			}
		})
	}
}
