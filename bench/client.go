package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Endpoint is where and how an HTTP subscriber connects: one request, and
// a response of SSE or NDJSON lines.
type Endpoint struct {
	Format string `json:"format"` // TransportSSE or TransportNDJSON
	Addr   string `json:"addr"`   // host:port
	// StallAddr is the same server, for the clients that stall: its
	// sockets have small buffers (see stallBuffer).
	StallAddr string `json:"stall_addr"`
	Method    string `json:"method"`
	Path      string `json:"path"` // with the query
	Body      string `json:"body"` // a JSON object, for POST
	Resume    string `json:"resume"`
}

// How a reconnecting subscriber asks to resume after the last event it
// received: the same client code for every server, each of which honours
// it or not.
const (
	ResumeLastEventID  = "last-event-id"  // SSE: the last id: line, as Last-Event-ID
	ResumeCursorInBody = "cursor-in-body" // NDJSON: the last "cursor" as "cursor" in the body
)

// httpClients are the HTTP subscribers of a run, in this process: one
// connection and one goroutine each, reading lines with a bufio.Reader and
// handing every event to its receiver. The parsing is the same for every
// server and as cheap as it can be, since the clients share the machine
// with the server: find the id (SSE) or cursor (NDJSON) and the data, and
// in the data only seq and t.
type httpClients struct {
	*fleet
	ep      Endpoint
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	lineBuf int
}

// startClients connects w.Subs clients to ep; they keep reading (and
// reconnecting) until close.
func startClients(ep Endpoint, w *Workload) *httpClients {
	c := &httpClients{fleet: newFleet(w), ep: ep, conns: map[net.Conn]struct{}{}, lineBuf: max(4096, 2*w.Size+1024)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// Connect a few at a time, so that the listener's backlog is not
	// overrun; each client then reconnects on its own.
	sem := make(chan struct{}, 64)
	for i := range c.recv {
		sem <- struct{}{}
		c.wg.Go(func() { c.run(&c.recv[i], sem) })
	}
	return c
}

func (c *httpClients) ready() bool { return c.allReady() }

func (c *httpClients) waitMark(m uint64, deadline time.Time) bool { return c.marks.wait(m, deadline) }

// close ends every connection and waits for the clients.
func (c *httpClients) close() {
	close(c.stopped)
	c.cancel()
	c.mu.Lock()
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// run is one client: connect, read, and after a break reconnect, asking
// to resume after the last event it received.
func (c *httpClients) run(r *receiver, sem chan struct{}) {
	var last []byte // the last SSE id or NDJSON cursor
	for c.ctx.Err() == nil {
		conn, body, err := c.open(r, last, sem)
		sem = nil
		if err != nil {
			sleepCtx(c.ctx, 100*time.Millisecond)
			continue
		}
		last = c.read(r, body, last)
		c.forget(conn)
		if c.ctx.Err() != nil {
			return
		}
		c.disconnected(r)
		sleepCtx(c.ctx, 50*time.Millisecond)
	}
}

// open sends the request on a connection of its own and reads the
// response header. Once the request is sent, it releases sem, if given:
// some servers send no header before their first event.
func (c *httpClients) open(r *receiver, last []byte, sem chan struct{}) (net.Conn, *bufio.Reader, error) {
	if sem != nil {
		defer func() {
			if sem != nil {
				<-sem
			}
		}()
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	addr := c.ep.Addr
	if r.stall {
		d.Control, addr = receiveBuffer(stallBuffer), c.ep.StallAddr
	}
	conn, err := d.DialContext(c.ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		conn.Close()
		return nil, nil, c.ctx.Err()
	}
	c.conns[conn] = struct{}{}
	c.mu.Unlock()
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n", c.ep.Method, c.ep.Path, addr)
	body := c.ep.Body
	switch {
	case len(last) > 0 && c.ep.Resume == ResumeLastEventID:
		fmt.Fprintf(&req, "Last-Event-ID: %s\r\n", last)
	case len(last) > 0 && c.ep.Resume == ResumeCursorInBody:
		body = strings.TrimSuffix(body, "}") + fmt.Sprintf(`,"cursor":%q}`, last)
	}
	if c.ep.Format == TransportSSE {
		req.WriteString("Accept: text/event-stream\r\n")
	}
	if c.ep.Method == http.MethodPost {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	} else {
		req.WriteString("\r\n")
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		c.forget(conn)
		return nil, nil, err
	}
	if sem != nil {
		<-sem
		sem = nil
	}
	br := bufio.NewReaderSize(conn, 16<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.forget(conn)
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		c.forget(conn)
		return nil, nil, fmt.Errorf("%s", resp.Status)
	}
	return conn, bufio.NewReaderSize(resp.Body, c.lineBuf), nil
}

func (c *httpClients) forget(conn net.Conn) {
	conn.Close()
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
}

var (
	prefixData   = []byte("data:")
	prefixID     = []byte("id:")
	prefixCursor = []byte(`"cursor":"`)
)

// read reads events until the stream breaks, and returns the last id or
// cursor seen.
func (c *httpClients) read(r *receiver, body *bufio.Reader, last []byte) []byte {
	sse := c.ep.Format == TransportSSE
	for {
		line, err := body.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any event of this workload: not one of ours.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = body.ReadSlice('\n')
			}
			continue
		}
		if err != nil { // the end of the stream, or a cut connection: the caller reconnects
			return last
		}
		data := line
		if sse {
			switch {
			case bytes.HasPrefix(line, prefixData):
				data = line[len(prefixData):]
			case bytes.HasPrefix(line, prefixID):
				last = append(last[:0], bytes.TrimSpace(line[len(prefixID):])...)
				continue
			default:
				continue
			}
		} else if i := bytes.Index(line, prefixCursor); i >= 0 {
			cur := line[i+len(prefixCursor):]
			if j := bytes.IndexByte(cur, '"'); j >= 0 {
				last = append(last[:0], cur[:j]...)
			}
		}
		if seq, sent, ok := parseEvent(data); ok {
			c.deliver(r, seq, sent, time.Now().UnixNano())
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
