package electric

// BenchmarkLive: one live commit delivered to 1000 shape subscribers, over
// live SSE and over live long-poll (and, for context, to 1000 streams of
// tidings' own SSE). On this project's 2-core machines,
// which are shared and noisy:
//
//	go test -run '^$' -bench BenchmarkLive -benchmem -benchtime 200x -count 5 ./transport/electric/
//
// and compare runs with benchstat, in one session on one machine.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/fanouttest"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// liveClients is how many clients follow the shape.
const liveClients = 1000

// BenchmarkLive measures one commit delivered to 1000 clients of the
// spells shape (the collection, no where) on a real HTTP/1.1 server over
// loopback (set up with transport.ConfigureServer), each client on a TCP connection of its own, read by a
// goroutine of its own with raw bytes (no net/http client):
//
//   - sse-1000: live SSE streams (live=true&live_sse=true). A client has
//     the change when its stream brings a data event with an insert and
//     then the data event with up-to-date that makes the Electric client
//     apply it.
//   - longpoll-1000: live long-polls (live=true). A client has the change
//     when it has read the whole response with the insert; it at once
//     asks the next long-poll with the response's electric-offset and
//     electric-cursor, as the Electric client does.
//
// An op is one commit that creates one document in the collection (so
// every client's shape changes), then waiting until all 1000 clients
// have it, then waiting until all 1000 wait again: the benchmark polls
// the handler's flights until the read after that commit (the flight of
// the next live key, the shape at the commit's txn) has all 1000 as
// askers. So every commit is made while all 1000 clients are parked in
// the server, and each op is a commit delivered to 1000 waiting clients,
// plus, for long-poll, the 1000 requests that re-arm the clients (that
// is the cost of a delivery by long-poll), and for SSE, the handlers'
// return into the next read. Commits are not pipelined: one at a time,
// unlike BenchmarkSSEFanout1k in transport/, which keeps up to two
// windows of 64 commits in flight.
//
// native-sse-1000 is for context, and is another protocol: tidings' own
// SSE (transport.Server, GET /sse?collection=spells, one "event: set" per
// change, no up-to-date), with the same op: one commit at a time, until
// all 1000 clients have it. Its streams stay subscribed, so there is
// nothing to re-arm and nothing to poll.
//
// Metrics:
//
//   - ns/op: commit to all 1000 re-armed; deliveries/s: 1000 × ops over
//     the time of the loop.
//   - deliver-ns/op: commit to the last of the 1000 clients having the
//     change (the rest of ns/op is re-arming).
//   - allocs/delivery and B/delivery: runtime.MemStats (Mallocs,
//     TotalAlloc) around the loop, over 1000 × ops. The clients run in the
//     same process, so their allocations are counted too; they read raw
//     bytes into buffers they reuse, and client-allocs/delivery is what
//     their code allocates per delivery, measured apart on canned
//     responses with testing.AllocsPerRun; server-allocs/delivery is the
//     difference: the handler, net/http's server, the broker's commit and
//     read, and this benchmark's bookkeeping (a few allocations per op,
//     a few thousandths per delivery).
//   - flights/op: reads the handler started (flights.runs) per op; with
//     collapsing, 1 (the one read, and encoding, shared by the 1000).
//     Not for native-sse-1000.
//
// The handler's LongPollHold, SSELifetime and KeepAlive are an hour, so
// that no long-poll times out, no stream ends and no keep-alive comes
// during a run; at the end, Handler.Shutdown ends every live response and
// everything is closed (goleak checks it, in TestMain).
func BenchmarkLive(b *testing.B) {
	b.Run("sse-1000", func(b *testing.B) { benchLive(b, modeSSE) })
	b.Run("longpoll-1000", func(b *testing.B) { benchLive(b, modeLongPoll) })
	b.Run("native-sse-1000", func(b *testing.B) { benchLive(b, modeNative) })
}

// The clients of BenchmarkLive.
const (
	modeSSE      = iota // Electric live SSE
	modeLongPoll        // Electric live long-poll
	modeNative          // tidings' own SSE, for context
)

func benchLive(b *testing.B, mode int) {
	var clientAllocs float64
	switch mode {
	case modeSSE:
		clientAllocs = sseClientAllocs(b)
	case modeLongPoll:
		clientAllocs = pollClientAllocs(b)
	case modeNative:
		clientAllocs = nativeClientAllocs(b)
	}

	br, err := broker.New(broker.Options{Schema: spellsSchema})
	if err != nil {
		b.Fatal(err)
	}
	h := &Handler{
		Server:       &transport.Server{Broker: br, ShutdownWindow: time.Millisecond},
		LongPollHold: time.Hour,
		SSELifetime:  time.Hour,
		KeepAlive:    time.Hour,
	}
	native := &transport.Server{Broker: br, ShutdownWindow: time.Millisecond}
	var served http.Handler = h
	if mode == modeNative {
		served = native
	}
	ts := httptest.NewUnstartedServer(served)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	transport.ConfigureServer(ts.Config, 0)
	ts.Start()
	addr := ts.Listener.Addr().String()

	// The clients, and the teardown: Shutdown ends the live responses
	// (SSE streams end, long-polls answer 503), then the connections
	// close, the clients' goroutines end, and the server and broker
	// close.
	var (
		stopping atomic.Bool
		wg       sync.WaitGroup
		conns    []net.Conn
	)
	fail := make(chan error, liveClients)
	defer func() {
		stopping.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
		if err := native.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
		ts.Close()
		br.Close()
	}()
	report := func(err error) {
		if !stopping.Load() {
			fail <- err
		}
	}

	data := []byte(`{"name":"Fire Beak","element":"fire","cost":15}`)
	commit := func(id string) txlog.Txn {
		txn, err := br.Commit(context.Background(), func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, data)
		})
		if err != nil {
			b.Fatal(err)
		}
		return txn
	}
	commit("first")

	var (
		handle, off string
		req         *shapeRequest
	)
	if mode != modeNative {
		handle, off, req = initialRows(b, addr, br)
	}
	// waitArmed returns when all the clients wait in the read after txn
	// (for native clients, at once).
	waitArmed := func(txn txlog.Txn) {
		if mode == modeNative {
			return
		}
		key := liveKey(req, txn)
		deadline := time.Now().Add(60 * time.Second)
		for h.flights.waiting(key) < liveClients {
			select {
			case err := <-fail:
				b.Fatal(err)
			default:
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d clients waiting after txn %d", h.flights.waiting(key), liveClients, txn)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}

	tr := fanouttest.New(liveClients)
	for range liveClients {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		if mode == modeNative {
			body, err := openNative(conn, addr)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				n := 0
				for {
					if err := readNativeSet(body); err != nil {
						report(fmt.Errorf("a native client: %w", err))
						return
					}
					n++
					tr.Reached(n)
				}
			})
			continue
		}
		if mode == modeSSE {
			body, err := openSSE(conn, addr, handle, off)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				n := 0
				for {
					inserts, err := readSSEGroup(body)
					if err != nil {
						report(fmt.Errorf("an SSE client: %w", err))
						return
					}
					for range inserts {
						n++
						tr.Reached(n)
					}
				}
			})
			continue
		}
		c := &pollClient{w: conn, br: bufio.NewReader(conn), host: addr, handle: handle, offset: []byte(off)}
		wg.Go(func() {
			n := 0
			for {
				if err := c.writeRequest(); err != nil {
					report(fmt.Errorf("a long-poller: %w", err))
					return
				}
				inserts, err := c.readResponse()
				if err != nil {
					report(fmt.Errorf("a long-poller: %w", err))
					return
				}
				for range inserts {
					n++
					tr.Reached(n)
				}
			}
		})
	}
	if req != nil {
		waitArmed(req.offset.txn)
	}

	runs := h.flights.runs.Load()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var delivering time.Duration
	n := 0
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		txn := commit("b" + strconv.Itoa(n))
		n++
		tr.Wait(b, n, fail)
		delivering += time.Since(t0)
		waitArmed(txn)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	runs = h.flights.runs.Load() - runs

	deliveries := float64(n) * liveClients
	allocs := float64(after.Mallocs-before.Mallocs) / deliveries
	b.ReportMetric(deliveries/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(delivering.Nanoseconds())/float64(n), "deliver-ns/op")
	b.ReportMetric(allocs, "allocs/delivery")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/deliveries, "B/delivery")
	b.ReportMetric(clientAllocs, "client-allocs/delivery")
	b.ReportMetric(allocs-clientAllocs, "server-allocs/delivery")
	if mode != modeNative {
		b.ReportMetric(float64(runs)/float64(n), "flights/op")
	}
}

// initialRows asks for the shape's initial rows, which give the handle and
// the offset its live requests start from, and the request they make.
func initialRows(b *testing.B, addr string, br *broker.Broker) (handle, off string, req *shapeRequest) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + addr + "/electric/v1/shape?table=spells&offset=-1")
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	handle, off = resp.Header.Get("Electric-Handle"), resp.Header.Get("Electric-Offset")
	if resp.StatusCode != http.StatusOK || handle == "" || off == "" {
		b.Fatalf("the initial rows: %s, handle %q, offset %q", resp.Status, handle, off)
	}
	q := url.Values{"table": {"spells"}, "offset": {off}, "handle": {handle}, "live": {"true"}}
	r, _ := http.NewRequest(http.MethodGet, "/electric/v1/shape?"+q.Encode(), nil)
	if req, err = parseRequest(r, br.Schema()); err != nil {
		b.Fatal(err)
	}
	return handle, off, req
}

var (
	insertMark   = []byte(`"operation":"insert"`)
	upToDateMark = []byte(`"control":"up-to-date"`)
	dataPrefix   = []byte("data: ")
	status200    = []byte("HTTP/1.1 200 ")
	nativeStart  = []byte("event: start\n")
	nativeSet    = []byte("event: set\n")
	nativeError  = []byte("event: " + transport.SSEErrorEvent)
)

// openSSE asks for the live SSE stream of the spells shape on conn and
// reads the response's header; the reader it returns reads the stream's
// body (de-chunked by net/http, with no allocation per read).
func openSSE(conn net.Conn, host, handle, off string) (*bufio.Reader, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/electric/v1/shape?table=spells&offset="+off+"&handle="+handle+"&live=true&live_sse=true&cursor=", nil)
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		return nil, fmt.Errorf("live SSE: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	return bufio.NewReader(resp.Body), nil
}

// readSSEGroup reads events up to the next data event with up-to-date and
// returns how many inserts came before it; comments (keep-alives) and
// other messages are skipped.
func readSSEGroup(body *bufio.Reader) (inserts int, err error) {
	for {
		line, err := body.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if !bytes.HasPrefix(line, dataPrefix) {
			continue
		}
		switch {
		case bytes.Contains(line, upToDateMark):
			return inserts, nil
		case bytes.Contains(line, insertMark):
			inserts++
		}
	}
}

// openNative opens tidings' own SSE stream of the spells collection on
// conn and reads it up to its start event.
func openNative(conn net.Conn, host string) (*bufio.Reader, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/sse?collection=spells", nil)
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("native SSE: %s", resp.Status)
	}
	body := bufio.NewReader(resp.Body)
	for {
		line, err := body.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		if bytes.Equal(line, nativeStart) {
			if _, err := body.ReadSlice('\n'); err != nil { // its data line
				return nil, err
			}
			return body, nil
		}
	}
}

// readNativeSet reads lines up to the next set event (the change; its
// data line is read with the next call).
func readNativeSet(body *bufio.Reader) error {
	for {
		line, err := body.ReadSlice('\n')
		if err != nil {
			return err
		}
		if bytes.Equal(line, nativeSet) {
			return nil
		}
		if bytes.HasPrefix(line, nativeError) {
			return fmt.Errorf("%q", line)
		}
	}
}

// pollClient is a long-poller on a connection of its own: it writes its
// requests and reads its responses as raw bytes, into buffers it reuses.
type pollClient struct {
	w      io.Writer
	br     *bufio.Reader
	host   string
	handle string
	offset []byte // the last electric-offset
	cursor []byte // the last electric-cursor
	req    []byte
	body   []byte
}

// writeRequest asks the next live long-poll, from the client's offset.
func (c *pollClient) writeRequest() error {
	b := append(c.req[:0], "GET /electric/v1/shape?table=spells&offset="...)
	b = append(b, c.offset...)
	b = append(b, "&handle="...)
	b = append(b, c.handle...)
	b = append(b, "&live=true&cursor="...)
	b = append(b, c.cursor...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.host...)
	b = append(b, "\r\n\r\n"...)
	c.req = b
	_, err := c.w.Write(b)
	return err
}

// readResponse reads a 200 with a Content-Length, keeps its offset and
// cursor, and returns how many inserts its body has.
func (c *pollClient) readResponse() (inserts int, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(line, status200) {
		return 0, fmt.Errorf("%q", bytes.TrimSpace(line))
	}
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(": "))
		switch string(name) {
		case "Content-Length":
			length = 0
			for _, d := range value {
				length = length*10 + int(d-'0')
			}
		case "Electric-Offset":
			c.offset = append(c.offset[:0], value...)
		case "Electric-Cursor":
			c.cursor = append(c.cursor[:0], value...)
		}
	}
	if length < 0 {
		return 0, errors.New("a response without Content-Length")
	}
	if cap(c.body) < length {
		c.body = make([]byte, length)
	}
	c.body = c.body[:length]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return 0, err
	}
	return bytes.Count(c.body, insertMark), nil
}

// The client-only baselines: what the clients' own code allocates per
// delivery, on canned responses like the server's (net/http's chunked
// reader included for SSE; no network). The kernel's and the netpoller's
// work is not there, but it allocates nothing on the Go heap.

func cannedInsert(txn int) string {
	return `{"headers":{"operation":"insert","lsn":"` + strconv.Itoa(txn) + `","op_position":0},"key":"\"spells\"/\"b1\"","value":{"id":"b1","name":"Fire Beak","element":"fire","cost":15}}`
}

func cannedUpToDate(txn int) string {
	return `{"headers":{"control":"up-to-date","global_last_seen_lsn":"` + strconv.Itoa(txn) + `"}}`
}

// sseClientAllocs is readSSEGroup's allocations per group of an insert
// and its up-to-date, one chunk each, as the handler writes them.
func sseClientAllocs(b *testing.B) float64 {
	const runs = 1000
	body := cannedSSE(b, runs+1, func(i int) string {
		return "data: " + cannedInsert(i+2) + "\n\ndata: " + cannedUpToDate(i+2) + "\n\n"
	})
	return testing.AllocsPerRun(runs, func() {
		if n, err := readSSEGroup(body); n != 1 || err != nil {
			b.Fatalf("the canned stream: %d inserts, %v", n, err)
		}
	})
}

// nativeClientAllocs is readNativeSet's allocations per set event, one
// chunk each.
func nativeClientAllocs(b *testing.B) float64 {
	const runs = 1000
	body := cannedSSE(b, runs+1, func(i int) string {
		return "id: c" + strconv.Itoa(i) + "\nevent: set\ndata: " + cannedInsert(i) + "\n\n"
	})
	return testing.AllocsPerRun(runs, func() {
		if err := readNativeSet(body); err != nil {
			b.Fatal(err)
		}
	})
}

// pollClientAllocs is a long-poller's allocations per response read and
// request written.
func pollClientAllocs(b *testing.B) float64 {
	body := "[" + cannedInsert(3) + "," + cannedUpToDate(3) + "]"
	canned := "HTTP/1.1 200 OK\r\n" +
		"Cache-Control: public, max-age=5, stale-while-revalidate=5\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n" +
		"Electric-Cursor: 40000000\r\n" +
		"Electric-Handle: 0123456789abcdef-2\r\n" +
		"Electric-Offset: 3_0\r\n" +
		"Electric-Up-To-Date: \r\n" +
		`Etag: "0123456789abcdef-2:2_0:3_0"` + "\r\n\r\n" + body
	rd := strings.NewReader(canned)
	c := &pollClient{w: io.Discard, br: bufio.NewReader(rd), host: "127.0.0.1:12345", handle: "0123456789abcdef-2", offset: []byte("2_0")}
	return testing.AllocsPerRun(1000, func() {
		rd.Reset(canned)
		c.br.Reset(rd)
		if err := c.writeRequest(); err != nil {
			b.Fatal(err)
		}
		if n, err := c.readResponse(); n != 1 || err != nil {
			b.Fatalf("the canned response: %d inserts, %v", n, err)
		}
	})
}

// cannedSSE is the body of a canned SSE response of n chunks, chunk(i)
// each, as a client reads it from the wire: for measuring the clients'
// own allocations apart from the server's.
func cannedSSE(b *testing.B, n int, chunk func(i int) string) *bufio.Reader {
	var s strings.Builder
	s.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range n {
		c := chunk(i)
		fmt.Fprintf(&s, "%x\r\n%s\r\n", len(c), c)
	}
	s.WriteString("0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(s.String())), nil)
	if err != nil {
		b.Fatal(err)
	}
	return bufio.NewReader(resp.Body)
}
