package electric

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/transport"
)

// timedWriter is a ResponseWriter that keeps each write with the time it
// came, for tests in a synctest bubble.
type timedWriter struct {
	mu     sync.Mutex
	header http.Header
	code   int
	start  time.Time
	writes []timedWrite
}

type timedWrite struct {
	at   time.Duration
	data string
}

func newTimedWriter() *timedWriter { return &timedWriter{header: http.Header{}, start: time.Now()} }

func (w *timedWriter) Header() http.Header { return w.header }
func (w *timedWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.code = code
}
func (w *timedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.code == 0 {
		w.code = 200
	}
	w.writes = append(w.writes, timedWrite{time.Since(w.start), string(b)})
	return len(b), nil
}
func (w *timedWriter) Flush() {}

// TestSSELifetime: an SSE response sends a change at once, followed by
// up-to-date at its txn; a keep-alive after each KeepAlive of silence;
// and ends after about SSELifetime (never before nine tenths of it).
func TestSSELifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := broker.New(broker.Options{Schema: spellsSchema})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		h := &Handler{Server: &transport.Server{Broker: b}}
		m := newModel()
		m.commit(t, b, "create", "1", `{"element":"fire"}`)
		w0 := httptest.NewRecorder()
		h.ServeHTTP(w0, httptest.NewRequest(http.MethodGet, "/v1/shape?table=spells&offset=-1", nil))
		q := url.Values{"table": {"spells"}, "offset": {w0.Header().Get("Electric-Offset")},
			"handle": {w0.Header().Get("Electric-Handle")}, "live": {"true"}, "live_sse": {"true"}, "cursor": {""}}

		w := newTimedWriter()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/v1/shape?"+q.Encode(), nil))
		}()
		time.Sleep(5 * time.Second)
		txn := m.commit(t, b, "create", "2", `{"element":"water"}`)
		<-done
		took := time.Since(w.start)

		if w.code != 200 || w.header.Get("Content-Type") != "text/event-stream" || w.header.Get("Electric-Offset") != q.Get("offset") ||
			w.header.Get("Electric-Cursor") == "" || w.header.Get("Electric-Handle") != q.Get("handle") {
			t.Fatalf("%d %v", w.code, w.header)
		}
		if took < 54*time.Second || took > 60*time.Second {
			t.Fatalf("the response lasted %v, want 54s to 60s", took)
		}
		var sawChange bool
		last := time.Duration(0)
		for _, wr := range w.writes {
			switch {
			case strings.HasPrefix(wr.data, "data: "):
				if wr.at != 5*time.Second || !strings.Contains(wr.data, `"operation":"insert"`) ||
					!strings.HasSuffix(wr.data, `data: {"headers":{"control":"up-to-date","global_last_seen_lsn":"`+strconv.FormatUint(uint64(txn), 10)+`"}}`+"\n\n") {
					t.Fatalf("at %v: %q, want the insert and up-to-date at %d, at 5s", wr.at, wr.data, txn)
				}
				sawChange = true
			case wr.data == ": keep-alive\n\n":
				if gap := wr.at - last; gap != 15*time.Second {
					t.Fatalf("a keep-alive at %v, %v after the write before", wr.at, gap)
				}
			default:
				t.Fatalf("at %v: %q", wr.at, wr.data)
			}
			last = wr.at
		}
		if !sawChange || len(w.writes) < 4 {
			t.Fatalf("writes: %+v", w.writes)
		}
	})
}
