package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Client subscribes to one tidings server. Set its fields before the
// first Subscribe; it is safe for concurrent use afterwards.
type Client struct {
	// URL is where the server's transport.Server is mounted, such as
	// "http://localhost:8080/tidings": streams are POSTed to URL+"/stream".
	URL string
	// H2C speaks unencrypted HTTP/2 to an http:// URL (the server must
	// accept it); otherwise http:// uses HTTP/1.1 and https:// negotiates
	// HTTP/2.
	H2C bool
	// NewTransport makes the transport of each connection the client
	// opens; by default a fresh http.Transport per the H2C setting. Each
	// transport should hold one connection per host: the client spreads
	// streams over transports, opening another when the server says the
	// current ones are full (429 too_many_streams).
	NewTransport func() *http.Transport
	// SSE reads the Server-Sent Events endpoint (GET …/sse, resuming with
	// Last-Event-ID) instead of the NDJSON stream (POST …/stream).
	SSE bool
	// Header is added to every request (for authorization).
	Header http.Header
	// MinBackoff and MaxBackoff bound the reconnection delay, which
	// doubles from MinBackoff after each failed attempt, with full jitter.
	// Defaults 100ms and 10s. A server's Retry-After overrides it.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives reconnections; slog.Default() if nil.
	Logger *slog.Logger

	mu      sync.Mutex
	conns   []*conn
	streams sync.WaitGroup
	closed  bool
	done    chan struct{}
}

// conn is one transport (one connection, for HTTP/2) and the streams on it.
type conn struct {
	tr   *http.Client
	raw  *http.Transport
	n    int // streams on it, accepted or being asked for
	open int // streams the server accepted (answered 200)
	full int // the server's limit, learned from a 429; 0 until then
}

// Close ends every stream, waits for their iterators to return, and closes
// every connection.
func (c *Client) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.done == nil {
			c.done = make(chan struct{})
		}
		close(c.done)
	}
	c.mu.Unlock()
	c.streams.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cn := range c.conns {
		cn.raw.CloseIdleConnections()
	}
	c.conns = nil
	return nil
}

// ErrClosed is returned for streams of a closed client.
var ErrClosed = errors.New("client: closed")

func (c *Client) doneChan() chan struct{} {
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *Client) newTransport() *http.Transport {
	if c.NewTransport != nil {
		return c.NewTransport()
	}
	tr := &http.Transport{Protocols: new(http.Protocols), MaxConnsPerHost: 1}
	if c.H2C && strings.HasPrefix(c.URL, "http://") {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
		tr.Protocols.SetHTTP2(true)
		tr.MaxConnsPerHost = 0 // HTTP/1.1 needs a connection per stream
	}
	return tr
}

// acquire picks a connection with room for one more stream, opening one
// if none has room, and counts the stream on it.
func (c *Client) acquire() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	for _, cn := range c.conns {
		if cn.full == 0 || cn.n < cn.full {
			cn.n++
			return cn, nil
		}
	}
	raw := c.newTransport()
	cn := &conn{raw: raw, tr: &http.Client{Transport: raw}, n: 1}
	c.conns = append(c.conns, cn)
	return cn, nil
}

// accepted counts a stream the server answered with 200.
func (c *Client) accepted(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn.open++
}

// release ends a stream on cn; open says whether the server had accepted it.
func (c *Client) release(cn *conn, open bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn.n--
	if open {
		cn.open--
	}
}

// markFull records that the server refused a stream on cn: the streams it
// has accepted there are its limit. Requests still waiting for an answer
// do not count, or the limit would be learned too high.
func (c *Client) markFull(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn.full = max(cn.open, 1)
}

// backoff returns the delay before reconnection attempt n (from 0), with
// full jitter so that many clients do not reconnect in step.
func (c *Client) backoff(n int) time.Duration {
	lo := c.MinBackoff
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	hi := c.MaxBackoff
	if hi <= 0 {
		hi = 10 * time.Second
	}
	d := lo << min(n, 20)
	if d > hi || d <= 0 {
		d = hi
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// StatusError is a refusal from the server: its status and error code.
type StatusError struct {
	Status      int
	Code        string
	Description string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("client: server answered %d %s: %s", e.Status, e.Code, e.Description)
}

// sleep waits d, or until the stream or the client ends.
func sleep(ctx context.Context, done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-done:
		return false
	}
}
