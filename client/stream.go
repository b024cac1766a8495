package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// Subscription is one remote subscription. Read its events with Events;
// Close (or the context given to Subscribe) ends it.
type Subscription struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	req    transport.StreamRequest // the stream request, without its cursor
	snap   bool                    // a snapshot is asked for and not yet complete
	last   txlog.Cursor            // the last event delivered: where to resume
	used   atomic.Bool
	done   <-chan struct{} // the client's, closed by Client.Close
	mu     sync.Mutex
	err    error
}

// Subscribe opens a subscription to a document or a set on the server,
// with the same targets, options and events as broker.Subscribe. Nothing
// is sent until Events is ranged over.
func (c *Client) Subscribe(ctx context.Context, target subscription.Target, opt subscription.Options) (*Subscription, error) {
	req, err := transport.NewStreamRequest(target, opt)
	if err != nil {
		return nil, err
	}
	req.Cursor = "" // each connection sends the latest
	s := &Subscription{c: c, req: req, snap: opt.Snapshot && opt.Cursor == ""}
	if opt.Cursor != "" {
		cur, err := txlog.ParseCursor(opt.Cursor)
		if err != nil {
			return nil, err
		}
		s.last = cur
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	return s, nil
}

// Close ends the subscription; an Events loop in progress returns.
func (s *Subscription) Close() { s.cancel() }

// Err returns why Events ended, if not because of Close or the context:
// a *StreamError wrapping txlog.ErrHistoryUnavailable (resubscribe with a
// snapshot), a *StatusError for a request the server refused, or
// ErrClosed.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Subscription) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// StreamError is an error event that ended a stream for good.
type StreamError struct {
	Code        string
	Description string
	Cursor      string
	err         error
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("client: stream ended: %s: %s", e.Code, e.Description)
}

// Unwrap gives txlog.ErrHistoryUnavailable for history_unavailable.
func (e *StreamError) Unwrap() error { return e.err }

// Events returns the subscription's events: one start, the snapshot if
// asked for, then every change, exactly once and in order, across every
// reconnection. A snapshot is delivered once complete, so that a break in
// the middle of it is repaired by taking it again. The sequence ends on
// Close, on the context, or on an error that reconnecting cannot mend
// (see Err). It can be ranged over once.
func (s *Subscription) Events() iter.Seq[subscription.Event] {
	return func(yield func(subscription.Event) bool) {
		if !s.used.CompareAndSwap(false, true) {
			return
		}
		c := s.c
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			s.fail(ErrClosed)
			return
		}
		c.streams.Add(1)
		done := c.doneChan()
		s.done = done
		c.mu.Unlock()
		defer c.streams.Done()
		defer s.cancel()

		started := false
		for attempt := 0; ; {
			select {
			case <-s.ctx.Done():
				return
			case <-done:
				return
			default:
			}
			wait, again := s.connect(yield, &started)
			if !again {
				return
			}
			if wait < 0 {
				wait = c.backoff(attempt)
				attempt++
			} else {
				attempt = 0
			}
			if wait > 0 {
				c.logger().Debug("client: reconnecting", "url", c.URL, "after", wait, "cursor", s.last.String())
			}
			if !sleep(s.ctx, done, wait) {
				return
			}
		}
	}
}

// connect runs one connection of the stream. It returns whether to
// reconnect, and after how long (negative: use the backoff).
func (s *Subscription) connect(yield func(subscription.Event) bool, started *bool) (time.Duration, bool) {
	c := s.c
	cn, err := c.acquire()
	if err != nil {
		s.fail(err)
		return 0, false
	}
	open := false
	defer func() { c.release(cn, open) }()
	sreq := s.req
	if s.last.Log != (txlog.ID{}) {
		sreq.Cursor = s.last.String()
	}
	req, err := c.request(s.ctx, sreq)
	if err != nil {
		s.fail(err)
		return 0, false
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() { // the client's Close ends the request too
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := cn.tr.Do(req.WithContext(ctx))
	if err != nil {
		return -1, true // a network error: back off and try again
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s.refused(cn, resp)
	}
	open = true
	c.accepted(cn)
	next := ndjsonLines(resp.Body)
	if c.SSE {
		next = sseData(resp.Body)
	}
	return s.read(next, yield, started)
}

// request makes the request of one connection: a POST with the JSON body
// for NDJSON; for SSE, a GET with the request in the query string and the
// cursor in Last-Event-ID.
func (c *Client) request(ctx context.Context, sreq transport.StreamRequest) (*http.Request, error) {
	var req *http.Request
	var err error
	if c.SSE {
		cursor := sreq.Cursor
		sreq.Cursor = ""
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/sse?"+sreq.Query().Encode(), nil)
		if err == nil && cursor != "" {
			req.Header.Set("Last-Event-ID", cursor)
		}
	} else {
		b, _ := json.Marshal(sreq)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/stream", bytes.NewReader(b))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return nil, err
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	return req, nil
}

// ndjsonLines returns the event lines of an NDJSON body.
func ndjsonLines(body io.Reader) func() ([]byte, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	return func() ([]byte, error) {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		return bytes.TrimRight(line, "\r\n"), nil
	}
}

// sseData returns the data of each event of an SSE body: the JSON line;
// comments (heartbeats), retry and the other fields are skipped (the id
// is the cursor, which the JSON carries too).
func sseData(body io.Reader) func() ([]byte, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	return func() ([]byte, error) {
		var data []byte
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case len(line) == 0:
				if data != nil {
					return data, nil
				}
			case bytes.HasPrefix(line, []byte("data:")):
				d := bytes.TrimPrefix(line[5:], []byte(" "))
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, d...)
			}
		}
	}
}

// refused handles a non-200 answer.
func (s *Subscription) refused(cn *conn, resp *http.Response) (time.Duration, bool) {
	var body struct {
		Error struct{ Code, Description string } `json:"error"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	e := &StatusError{Status: resp.StatusCode, Code: body.Error.Code, Description: body.Error.Description}
	retryAfter := -time.Duration(1)
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		// This connection is full: the next attempt takes another one.
		s.c.markFull(cn)
		return 0, true
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode >= 500:
		return retryAfter, true
	case resp.StatusCode == http.StatusGone:
		s.fail(&StreamError{Code: e.Code, Description: e.Description, err: txlog.ErrHistoryUnavailable})
	default:
		s.fail(e)
	}
	return 0, false
}

// wireEvent is an event line as the client decodes it.
type wireEvent struct {
	Type   string          `json:"type"`
	Txn    uint64          `json:"txn"`
	Cursor string          `json:"cursor"`
	Event  json.RawMessage `json:"event"`
}

type wireBody struct {
	Action      string `json:"action"`
	Code        string `json:"code"`
	Description string `json:"description"`
	Cursor      string `json:"cursor"`
	Last        bool   `json:"last"`
}

var types = map[string]subscription.Type{}

func init() {
	for t := subscription.TypeStart; t <= subscription.TypeError; t++ {
		types[t.String()] = t
	}
}

// read delivers the events of one response. It returns whether to
// reconnect (after a clean end, a server's end of the stream or a broken
// connection) and after how long.
func (s *Subscription) read(next func() ([]byte, error), yield func(subscription.Event) bool, started *bool) (time.Duration, bool) {
	var held []subscription.Event // start and snapshot pages, until the last page
	for lines := 0; ; lines++ {
		line, err := next()
		if err != nil {
			if s.ctx.Err() != nil {
				return 0, false
			}
			if lines > 0 {
				// Cut after the connection worked: resume from the last
				// cursor, the backoff starting over, so that cuts spread
				// over a stream's life do not add up to MaxBackoff.
				return s.c.backoff(0), true
			}
			return -1, true // cut: resume from the last cursor
		}
		var w wireEvent
		if err := json.Unmarshal(line, &w); err != nil {
			return -1, true // a damaged line: the connection is not to be trusted
		}
		e := subscription.Event{Type: types[w.Type], Txn: txlog.Txn(w.Txn), JSON: line}
		if w.Cursor != "" {
			if e.Cursor, err = txlog.ParseCursor(w.Cursor); err != nil {
				return -1, true
			}
			e.CursorText = w.Cursor
		}
		var b wireBody
		if len(w.Event) > 0 && w.Event[0] == '{' {
			json.Unmarshal(w.Event, &b)
		}
		e.Action = b.Action
		switch e.Type {
		case subscription.TypeStart:
			if *started {
				continue // a reconnection's start: the stream goes on
			}
			if s.snap {
				held = append(held, e)
				continue
			}
			*started = true
			if !yield(e) {
				return 0, false
			}
			if s.last.Log == (txlog.ID{}) {
				s.last = e.Cursor
			}
		case subscription.TypeSnapshot:
			held = append(held, e)
			if b.Last {
				for _, h := range held {
					if !yield(h) {
						return 0, false
					}
				}
				*started, s.snap = true, false
				s.last = e.Cursor // the last page carries the start cursor
				held = nil
			}
		case subscription.TypeError:
			e.Action = b.Code
			switch b.Code {
			case subscription.CodeShuttingDown, "stream_lifetime":
				// The server ended it cleanly: resume soon, jittered.
				return s.c.backoff(0), true
			case subscription.CodeHistoryUnavailable:
				s.fail(&StreamError{Code: b.Code, Description: b.Description, Cursor: b.Cursor, err: txlog.ErrHistoryUnavailable})
			default:
				s.fail(&StreamError{Code: b.Code, Description: b.Description, Cursor: b.Cursor, err: errors.New(b.Code)})
			}
			return 0, false
		default:
			if e.HasCursor() && !e.After(s.last) {
				continue // already delivered before a break
			}
			if !yield(e) {
				return 0, false
			}
			if e.HasCursor() {
				s.last = e.Cursor
			}
		}
	}
}
