package fauna_test

// BenchmarkDeliver measures the cost of delivering one write's event to
// every stream of a collection, on the native NDJSON endpoint and on the
// Fauna fronts, in one run so that they can be compared on this shared,
// noisy 2-core machine:
//
//	go test -run '^$' -bench BenchmarkDeliver -benchmem -count 6 ./transport/fauna/
//
// and compare with benchstat.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/fauna"
	"github.com/tidings/tidings/txlog"
)

// deliverStreams is the number of streams of BenchmarkDeliver.
const deliverStreams = 64

// deliverCase is one endpoint of BenchmarkDeliver: its path, the body
// that follows the spells collection, and the start of an event line of
// a created document (the lines before the first event, and heartbeats,
// start otherwise).
type deliverCase struct {
	name, path string
	body       func(h *fauna.Handler) string
	event      string
	fauna      bool
}

var deliverCases = []deliverCase{
	{"native-ndjson", "/stream", func(*fauna.Handler) string { return `{"collection":"spells"}` }, `{"type":"set",`, false},
	// The same with the document's data, as v10's events carry it.
	{"native-ndjson-data", "/stream", func(*fauna.Handler) string { return `{"collection":"spells","data":true,"updates":true}` }, `{"type":"set",`, false},
	{"fauna-v4", "/stream", func(*fauna.Handler) string { return `{"documents":{"collection":"spells"}}` }, `{"type":"set",`, true},
	{"fauna-v10", "/stream/1", func(h *fauna.Handler) string {
		tok, err := h.Token(subscription.Collection("spells"))
		if err != nil {
			panic(err)
		}
		return `{"token":"` + tok + `"}`
	}, `{"type":"add",`, true},
}

// BenchmarkDeliver: 64 streams of the spells collection, each on an
// HTTP/1.1 connection of its own, read by a goroutine of its own (bufio,
// a line at a time, counting event lines). An op commits one document
// and returns when every stream has read its event line: ns/op is the
// latency of one write to 64 readers, ns/event that divided by 64, and
// allocs/op counts the server's and the readers' allocations together
// (allocs/event, that divided by 64). B/line is the length of the event
// line on the wire. (net/http's HTTP/1.1 chunk header allocates for a
// write of 256 bytes or more, which fauna-v10's lines are.)
//
// native-ndjson is transport.Server's POST /stream with default fields;
// native-ndjson-data adds the document's data, which fauna-v10's events
// carry; fauna-v4 is POST /stream with Documents(Collection("spells")) and
// fauna-v10 POST /stream/1 with a token of the collection.
func BenchmarkDeliver(b *testing.B) {
	for _, c := range deliverCases {
		b.Run(c.name, func(b *testing.B) { benchDeliver(b, c) })
	}
}

func benchDeliver(b *testing.B, c deliverCase) {
	br, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	srv := &transport.Server{Broker: br}
	h := &fauna.Handler{Server: srv}
	var handler http.Handler = srv
	if c.fauna {
		handler = h
	}
	// HTTP/1.1 only, one connection per stream.
	ts := httptest.NewServer(handler)
	defer ts.Close()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	body := c.body(h)
	event := []byte(c.event)
	got := make(chan struct{}, deliverStreams)
	fail := make(chan error, deliverStreams)
	var lineLen int
	var wg sync.WaitGroup
	bodies := make([]io.Closer, 0, deliverStreams)
	defer func() {
		// Closing a response body mid-stream closes its connection,
		// which ends the handler's stream and the reader's goroutine.
		for _, rc := range bodies {
			rc.Close()
		}
		wg.Wait()
	}()
	for i := range deliverStreams {
		resp, err := client.Post(ts.URL+c.path, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			b.Fatalf("POST %s %s: %s %s", c.path, body, resp.Status, msg)
		}
		bodies = append(bodies, resp.Body)
		r := bufio.NewReaderSize(resp.Body, 4096)
		// The stream's first line (start or status) says it is live.
		if _, err := r.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return // closed at the end
				}
				switch {
				case bytes.HasPrefix(line, event):
					if i == 0 {
						lineLen = len(line)
					}
					got <- struct{}{}
				case bytes.Contains(line, []byte(`"type":"error"`)):
					fail <- fmt.Errorf("stream %d: %s", i, line)
					return
				}
			}
		})
	}

	data := []byte(`{"name":"Fire Beak","element":"fire","cost":15}`)
	timeout := time.NewTimer(time.Hour)
	n := 0
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		if _, err := br.Commit(context.Background(), func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: strconv.Itoa(n)}, data)
		}); err != nil {
			b.Fatal(err)
		}
		n++
		timeout.Reset(30 * time.Second)
		for range deliverStreams {
			select {
			case <-got:
			case err := <-fail:
				b.Fatal(err)
			case <-timeout.C:
				b.Fatalf("write %d did not reach all %d streams in 30s", n, deliverStreams)
			}
		}
	}
	timeout.Stop()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*deliverStreams), "ns/event")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n*deliverStreams), "allocs/event")
	b.ReportMetric(float64(lineLen), "B/line")
}
