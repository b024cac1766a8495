package transport

import (
	"context"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Limits of the pull feed.
const (
	DefaultFeedPageSize = 16
	MaxFeedPageSize     = 1000
	MaxFeedWait         = 60 * time.Second
)

// Feed returns the pull feed handler: GET a page of events after a cursor,
// with the target and options in the query string as for SSE, and
//
//   - page_size: events per page, default 16, at most 1000;
//   - wait: how long to wait when nothing is new (seconds, or a Go
//     duration such as 500ms), at most 60s; without it an empty page
//     returns at once.
//
// The answer is {"events":[…],"cursor":"…","has_next":…}: ask again with
// that cursor. Without a cursor the feed starts at the current head. A
// page with has_next is wholly in the past and never changes, so it is
// served with an ETag and immutable caching; other pages are not cached.
// Concurrent long-polls for the same target, options and cursor share one
// read and one encoded response.
func (s *Server) Feed() http.Handler {
	return s.endpoint(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req, err := queryStreamRequest(q, "wait")
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		size := req.PageSize
		req.PageSize = 0 // page_size sizes the feed's pages, not a snapshot's
		switch {
		case size == 0:
			size = DefaultFeedPageSize
		case size < 0 || size > MaxFeedPageSize:
			s.writeError(w, badRequest("page_size must be between 1 and %d", MaxFeedPageSize))
			return
		}
		var wait time.Duration
		if q.Has("wait") {
			if wait, err = parseWait(q.Get("wait")); err != nil {
				s.writeErr(w, r, err)
				return
			}
		}
		target, opt, err := req.target()
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if err := s.authorize(r, target); err != nil {
			s.writeError(w, errorFor(err))
			return
		}
		if opt.Snapshot {
			s.writeError(w, badRequest("a feed has no snapshot"))
			return
		}

		read := func(ctx context.Context) (*feedPage, error) {
			if wait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, wait)
				defer cancel()
			}
			p, err := s.Broker.ReadPage(ctx, target, opt, size, wait > 0)
			if err != nil {
				return nil, err
			}
			body := []byte(`{"events":[`)
			for i := range p.Events {
				if i > 0 {
					body = append(body, ',')
				}
				body = append(body, p.Events[i].JSON...)
			}
			body = append(body, `],"cursor":"`...)
			body = append(body, p.Cursor.String()...)
			body = append(body, `","has_next":`...)
			body = strconv.AppendBool(body, p.More)
			body = append(body, "}\n"...)
			sum := xxhash.Sum64(body)
			return &feedPage{body: body, more: p.More, etag: `"` + hex.EncodeToString([]byte{
				byte(sum >> 56), byte(sum >> 48), byte(sum >> 40), byte(sum >> 32),
				byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}) + `"`}, nil
		}
		var page *feedPage
		if wait > 0 {
			// Long-polls wait together: one read serves them all.
			var shared bool
			if page, shared, err = s.polls.do(r.Context(), r.URL.RawQuery, read); shared && err == nil {
				s.counters.feedShared.Add(1)
			}
		} else {
			page, err = read(r.Context())
		}
		if err != nil {
			if r.Context().Err() != nil {
				return // the client went away
			}
			s.writeErr(w, r, err)
			return
		}
		s.counters.feeds.Add(1)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("ETag", page.etag)
		switch {
		case !page.more:
			h.Set("Cache-Control", "no-store")
		case s.Authorize != nil || hasCredentials(r):
			// The page never changes, but it was given to this caller:
			// no shared cache may hand it to another (RFC 9111, 3.5).
			h.Set("Cache-Control", "private, max-age=31536000, immutable")
			h.Add("Vary", "Authorization, Cookie")
		default:
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		if etagMatch(r.Header.Get("If-None-Match"), page.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(page.body)))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(page.body)
	}, http.MethodGet, http.MethodHead)
}

// feedPage is an encoded page, shared by collapsed requests.
type feedPage struct {
	body []byte
	etag string
	more bool
}

// parseWait reads wait: seconds (a decimal number), or a Go duration
// such as 500ms.
func parseWait(s string) (time.Duration, error) {
	bad := badRequest("wait must be a number of seconds from 0 to %d, or a duration such as 500ms", int(MaxFeedWait/time.Second))
	var d time.Duration
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 || n > MaxFeedWait.Seconds() {
			return 0, bad
		}
		d = time.Duration(n * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, bad
	}
	if d < 0 || d > MaxFeedWait {
		return 0, bad
	}
	return d, nil
}

// hasCredentials reports whether a request carries credentials of the
// kinds a browser or a client sends: a header, a cookie, or a token in
// the query (see BearerToken).
func hasCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" || r.URL.Query().Has("access_token")
}

// etagMatch is If-None-Match's weak comparison (RFC 9110, 13.1.2): a
// list of entity tags, W/ ignored, or "*".
func etagMatch(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}

// collapse shares one call among concurrent callers with the same key:
// the first starts it, and every caller waits for its result or for its
// own request to end. The call runs on a context of its own, which ends
// when its last caller has gone: an abandoned long-poll holds neither its
// socket nor a read.
type collapse struct {
	mu    sync.Mutex
	calls map[string]*collapsed
	runs  int // calls of fn, for tests
}

type collapsed struct {
	done    chan struct{}
	cancel  context.CancelFunc
	page    *feedPage
	err     error
	waiters int // callers waiting for this call's result
}

// It reports whether another caller had started the call (the result
// was shared).
func (c *collapse) do(ctx context.Context, key string, fn func(context.Context) (*feedPage, error)) (_ *feedPage, shared bool, _ error) {
	c.mu.Lock()
	call, ok := c.calls[key]
	if !ok {
		c.runs++
		if c.calls == nil {
			c.calls = map[string]*collapsed{}
		}
		cctx, cancel := context.WithCancel(context.Background())
		call = &collapsed{done: make(chan struct{}), cancel: cancel}
		c.calls[key] = call
		// One goroutine per collapsed read, not per caller: the read
		// goes on for the others when its first caller goes.
		go func() {
			page, err := fn(cctx)
			c.mu.Lock()
			call.page, call.err = page, err
			c.forget(key, call)
			c.mu.Unlock()
			cancel()
			close(call.done)
		}()
	}
	call.waiters++
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.page, ok, call.err
	case <-ctx.Done():
		c.mu.Lock()
		if call.waiters--; call.waiters == 0 {
			c.forget(key, call) // a newcomer starts a read of its own
			call.cancel()
		}
		c.mu.Unlock()
		return nil, ok, ctx.Err()
	}
}

// forget removes call from the calls in progress, if it is still there.
// Called with mu held.
func (c *collapse) forget(key string, call *collapsed) {
	if c.calls[key] == call {
		delete(c.calls, key)
	}
}

// inProgress counts the reads in progress, for tests.
func (c *collapse) inProgress() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}
