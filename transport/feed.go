package transport

import (
	"context"
	"encoding/hex"
	"net/http"
	"strconv"
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
	return s.endpoint(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
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
			writeError(w, badRequest("page_size must be between 1 and %d", MaxFeedPageSize))
			return
		}
		var wait time.Duration
		if q.Has("wait") {
			if wait, err = parseWait(q.Get("wait")); err != nil {
				writeError(w, badRequest("wait: %v", err))
				return
			}
		}
		target, opt, err := req.target()
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if s.Authorize != nil {
			if err := s.Authorize(r, target); err != nil {
				writeError(w, authError(err))
				return
			}
		}
		if opt.Snapshot {
			writeError(w, badRequest("a feed has no snapshot"))
			return
		}

		read := func() (*feedPage, error) {
			ctx := context.WithoutCancel(r.Context())
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
			page, err = s.polls.do(r.URL.RawQuery, read)
		} else {
			page, err = read()
		}
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("ETag", page.etag)
		if page.more {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-store")
		}
		if r.Header.Get("If-None-Match") == page.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(page.body)
	})
}

// feedPage is an encoded page, shared by collapsed requests.
type feedPage struct {
	body []byte
	etag string
	more bool
}

func parseWait(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		d = time.Duration(n * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, err
	}
	if d < 0 || d > MaxFeedWait {
		return 0, badRequest("wait must be between 0 and %s", MaxFeedWait)
	}
	return d, nil
}

// collapse shares one call among concurrent callers with the same key:
// the first runs it, the others wait for its result.
type collapse struct {
	mu    sync.Mutex
	calls map[string]*collapsed
	runs  int // calls of fn, for tests
}

type collapsed struct {
	done    chan struct{}
	page    *feedPage
	err     error
	waiters int // callers waiting for this call's result
}

func (c *collapse) do(key string, fn func() (*feedPage, error)) (*feedPage, error) {
	c.mu.Lock()
	if call, ok := c.calls[key]; ok {
		call.waiters++
		c.mu.Unlock()
		<-call.done
		return call.page, call.err
	}
	c.runs++
	if c.calls == nil {
		c.calls = map[string]*collapsed{}
	}
	call := &collapsed{done: make(chan struct{})}
	c.calls[key] = call
	c.mu.Unlock()

	call.page, call.err = fn()
	c.mu.Lock()
	delete(c.calls, key)
	c.mu.Unlock()
	close(call.done)
	return call.page, call.err
}
