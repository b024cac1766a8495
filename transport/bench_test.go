package transport

// Benchmarks of the HTTP transports. On this project's 2-core machines:
//
//	go test -run '^$' -bench . -benchtime 1s ./transport/
//
// BenchmarkEncodeWrite:    framing and writing cost per event per stream,
//                          16 events coalesced into one write and flush
//                          against one write and flush per event, to a
//                          discarding ResponseWriter and over loopback.
// BenchmarkIdleSSEMemory:  bytes per idle SSE stream, 1000 streams;
//                          each op opens and closes all of them, so add
//                          -benchtime 1x to measure once.
// BenchmarkSSEFanout1k:    deliveries per second to 1000 SSE clients on
//                          loopback, each read by its own goroutine.
//
// Compare runs with benchstat, on the same machine in one session: these
// machines are shared and noisy.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/fanouttest"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// benchEvents returns n set events of a collection stream, as the broker
// makes them (JSON encoded once, with a cursor), by committing n
// documents and reading them back.
func benchEvents(b *testing.B, n int) []subscription.Event {
	b.Helper()
	_, _, br := testServer(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := br.Subscribe(ctx, subscription.Collection("spells"), subscription.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	for i := range n {
		commit(b, br, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: strconv.Itoa(1000 + i)}, []byte(`{"name":"Fire Beak","element":"fire","cost":15}`))
		})
	}
	var out []subscription.Event
	for e := range sub.Events() {
		if e.Type == subscription.TypeSet {
			e.JSON = bytes.Clone(e.JSON)
			out = append(out, e)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// discardResponse is a ResponseWriter that throws its bytes away and
// flushes nothing: the cost of framing and of the write path alone. It
// takes write deadlines, as net/http's own writers do (where a writer
// does not, http.ResponseController allocates an error on every call).
type discardResponse struct{ h http.Header }

func (d *discardResponse) SetWriteDeadline(time.Time) error { return nil }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(int)             {}
func (d *discardResponse) Flush()                      {}

// loopbackResponse serves one streaming response over a real loopback
// connection (HTTP/1.1 or h2c), read and discarded by a client, and hands
// its ResponseWriter to the benchmark. The handler waits until the
// benchmark is done with it.
func loopbackResponse(b *testing.B, proto string) http.ResponseWriter {
	b.Helper()
	got := make(chan http.ResponseWriter)
	release := make(chan struct{})
	var once sync.Once
	done := func() { once.Do(func() { close(release) }) }
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		got <- w
		<-release
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	c := client(proto)
	read := make(chan error, 1)
	go func() {
		resp, err := c.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		read <- err
	}()
	b.Cleanup(func() {
		done()
		<-read
		c.CloseIdleConnections()
		srv.Close()
		<-served
	})
	select {
	case w := <-got:
		return w
	case err := <-read:
		b.Fatalf("the loopback client: %v", err)
		return nil
	}
}

// BenchmarkEncodeWrite measures framing one event per stream and writing
// it, as serve does (write deadline, Write, Flush), per event: 16 events
// framed into one buffer and written with one Write and Flush
// (coalesced), against a Write and Flush per event (per-event). The
// event's JSON is encoded once per format by the broker, not here.
func BenchmarkEncodeWrite(b *testing.B) {
	const batch = 16
	events := benchEvents(b, batch)
	framers := []struct {
		name string
		f    framer
	}{{"sse", sse{retry: DefaultRetry}}, {"ndjson", ndjson{}}}
	for _, fr := range framers {
		for _, sink := range []string{"discard", "h1", "h2c"} {
			for _, coalesce := range []bool{true, false} {
				mode := map[bool]string{true: "coalesced", false: "per-event"}[coalesce]
				b.Run(fr.name+"/"+sink+"/"+mode, func(b *testing.B) {
					var w http.ResponseWriter
					if sink == "discard" {
						w = &discardResponse{h: http.Header{}}
					} else {
						w = loopbackResponse(b, sink)
					}
					rc := http.NewResponseController(w)
					write := func(buf []byte) {
						rc.SetWriteDeadline(time.Now().Add(DefaultWriteTimeout))
						if _, err := w.Write(buf); err != nil {
							b.Fatal(err)
						}
						if err := rc.Flush(); err != nil {
							b.Fatal(err)
						}
					}
					buf := make([]byte, 0, 64<<10)
					wireBytes := 0
					for i := range events {
						wireBytes += len(frameOne(fr.f, nil, &events[i]))
					}
					b.ReportAllocs()
					for b.Loop() {
						if coalesce {
							buf = buf[:0]
							for i := range events {
								buf = frameOne(fr.f, buf, &events[i])
							}
							write(buf)
						} else {
							for i := range events {
								buf = frameOne(fr.f, buf[:0], &events[i])
								write(buf)
							}
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
					b.ReportMetric(float64(wireBytes)/batch, "B/event")
				})
			}
		}
	}
}

// openRawSSE opens an SSE stream of the spells collection over a
// connection of its own, with no goroutine, and reads the response up to
// its start event. The caller owns the connection, and the reader, which
// holds whatever followed the start event in the same read.
func openRawSSE(addr string) (net.Conn, *bufio.Reader, error) {
	return openRawSSEPath(addr, "/sse?collection=spells")
}

// ssePaths are the two ways of following the collection: a stream of its
// own, and one subscription of a multiplexed stream.
var ssePaths = []struct{ name, path string }{
	{"single", "/sse?collection=spells"},
	{"multiplexed", "/sse?subscriptions=" + url.QueryEscape(`{"all":{"collection":"spells"}}`)},
}

func openRawSSEPath(addr, path string) (net.Conn, *bufio.Reader, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, nil, fmt.Errorf("%s", resp.Status)
	}
	body := bufio.NewReader(resp.Body)
	for {
		line, err := body.ReadSlice('\n')
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		if bytes.Equal(line, []byte("event: start\n")) {
			if _, err := body.ReadSlice('\n'); err != nil { // its data line
				conn.Close()
				return nil, nil, err
			}
			return conn, body, nil
		}
	}
}

// The helper process of BenchmarkIdleSSEMemory: it holds its streams until
// its stdin closes, so that the benchmark measures the server alone.
const (
	idleHelperEnv   = "TIDINGS_IDLE_SSE_HELPER" // "h1|h2c n url"
	idleHelperReady = "ready"
)

// TestIdleSSEClientsHelper is not a test: it is the client process of
// BenchmarkIdleSSEMemory, and skips unless started by it.
func TestIdleSSEClientsHelper(t *testing.T) {
	spec := os.Getenv(idleHelperEnv)
	if spec == "" {
		t.Skip("the client process of BenchmarkIdleSSEMemory")
	}
	var proto, rawURL string
	var n int
	if _, err := fmt.Sscan(spec, &proto, &n, &rawURL); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	var closers []io.Closer
	var clients []*http.Client // h2c: one per hundred streams
	defer func() {
		for _, c := range closers {
			c.Close()
		}
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	switch proto {
	case "h1":
		for range n {
			conn, _, err := openRawSSE(u.Host)
			if err != nil {
				t.Fatal(err)
			}
			closers = append(closers, conn)
		}
	case "h2c":
		// 100 streams per connection, the server's limit: one client
		// (so one connection) per hundred.
		for i := range n {
			if i%DefaultMaxStreamsPerConn == 0 {
				clients = append(clients, client("h2c"))
			}
			resp, err := clients[len(clients)-1].Get(rawURL + "/sse?collection=spells")
			if err != nil {
				t.Fatal(err)
			}
			closers = append(closers, resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatal(resp.Status)
			}
			body := bufio.NewReader(resp.Body)
			for {
				line, err := body.ReadSlice('\n')
				if err != nil {
					t.Fatal(err)
				}
				if bytes.HasPrefix(line, []byte("data: {\"type\":\"start\"")) {
					break
				}
			}
		}
	default:
		t.Fatalf("protocol %q", proto)
	}
	fmt.Println(idleHelperReady)
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes it
}

// memNow returns the heap and goroutine-stack bytes in use, after
// collecting garbage.
func memNow() (heap, stack uint64, goroutines int) {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse, runtime.NumGoroutine()
}

// BenchmarkIdleSSEMemory measures the memory of 1000 idle SSE streams on
// the server (its handler goroutines, the broker's subscriptions, net/http's
// connections and buffers), per stream: heap and stack bytes from
// runtime.MemStats after GC, and goroutines.
//
//   - h1/in-process: the clients are raw connections in this process with
//     no goroutine, read up to the start event; their net.Conns and
//     descriptors (a few hundred bytes each) are counted with the server.
//   - h1/other-process and h2c/other-process: the clients are a second
//     process (this test binary, TestIdleSSEClientsHelper), so only the
//     server is measured; h2c puts 100 streams on each connection.
//   - h1-detached/other-process: h1/other-process with Server.Detach.
func BenchmarkIdleSSEMemory(b *testing.B) {
	const n = 1000
	for _, mode := range []string{"h1/in-process", "h1/other-process", "h2c/other-process", "h1-detached/other-process"} {
		b.Run(mode, func(b *testing.B) {
			var heap, stack, gs float64
			for b.Loop() {
				// A server per round, so that Shutdown can wait for the
				// round's handlers to return before the next one.
				ts, srv, _ := testServer(b, func(s *Server) {
					s.ShutdownWindow = time.Millisecond
					s.Detach = mode == "h1-detached/other-process"
				})
				h0, s0, g0 := memNow()
				closeAll := openIdleStreams(b, mode, ts.URL, n)
				h1, s1, g1 := memNow()
				closeAll()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := srv.Shutdown(ctx); err != nil {
					b.Fatalf("the stream handlers did not return: %v", err)
				}
				cancel()
				heap += float64(int64(h1-h0)) / n
				stack += float64(int64(s1-s0)) / n
				gs += float64(g1-g0) / n
			}
			k := float64(b.N)
			b.ReportMetric((heap+stack)/k, "B/stream")
			b.ReportMetric(heap/k, "heap-B/stream")
			b.ReportMetric(stack/k, "stack-B/stream")
			b.ReportMetric(gs/k, "goroutines/stream")
		})
	}
}

// openIdleStreams opens n idle SSE streams to the server at rawURL, and
// returns when every one has its start event. closeAll closes them.
func openIdleStreams(b *testing.B, mode, rawURL string, n int) (closeAll func()) {
	b.Helper()
	u, _ := url.Parse(rawURL)
	if mode == "h1/in-process" {
		conns := make([]net.Conn, 0, n)
		for range n {
			conn, _, err := openRawSSE(u.Host)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, conn)
		}
		return func() {
			for _, c := range conns {
				c.Close()
			}
		}
	}
	proto := "h1"
	if mode == "h2c/other-process" {
		proto = "h2c"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleSSEClientsHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", idleHelperEnv, proto, n, rawURL))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			stdin.Close()
			cmd.Wait()
			b.Fatalf("the client process: %v\n%s", err, stderr.String())
		}
		if line == idleHelperReady+"\n" {
			break
		}
	}
	return func() {
		stdin.Close()
		io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("the client process: %v\n%s", err, stderr.String())
		}
	}
}

// BenchmarkSSEFanout1k measures delivery to 1000 SSE clients over
// loopback (HTTP/1.1, one connection each, each read by a goroutine of its
// own that parses lines and counts set events). An op is one commit of one
// document, which every client receives; the committer stays at most two
// windows of 64 commits ahead of the slowest client. deliveries/s is
// events received by all clients together per second, from the first
// commit until the last client has the last event; commits/s the same
// per commit. Each client follows the collection on a stream of its own,
// or as one subscription of a multiplexed stream.
func BenchmarkSSEFanout1k(b *testing.B) {
	for _, p := range ssePaths {
		b.Run(p.name, func(b *testing.B) { sseFanout(b, p.path) })
	}
}

func sseFanout(b *testing.B, path string) {
	const (
		clients = 1000
		window  = 64
	)
	ts, _, br := testServer(b, nil)
	u, _ := url.Parse(ts.URL)
	tr := fanouttest.New(clients)
	fail := make(chan error, clients)
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	for range clients {
		conn, body, err := openRawSSEPath(u.Host, path)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		wg.Go(func() {
			n := 0
			for {
				line, err := body.ReadSlice('\n')
				if err != nil {
					return // closed at the end
				}
				if bytes.Equal(line, []byte("event: set\n")) {
					if n++; n%window == 0 {
						tr.Reached(n)
					}
				} else if bytes.HasPrefix(line, []byte("event: "+SSEErrorEvent)) {
					fail <- fmt.Errorf("a client got %s", line)
					return
				}
			}
		})
	}
	data := []byte(`{"name":"Fire Beak","element":"fire","cost":15}`)
	commitOne := func(i int) {
		if _, err := br.Commit(context.Background(), func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: strconv.Itoa(i)}, data)
		}); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	start := time.Now()
	for b.Loop() {
		commitOne(n)
		if n++; n%window == 0 && n >= 2*window {
			tr.Wait(b, n-window, fail)
		}
	}
	for n%window != 0 {
		commitOne(n)
		n++
	}
	tr.Wait(b, n, fail)
	elapsed := time.Since(start)
	b.ReportMetric(float64(n)*clients/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "commits/s")
}
