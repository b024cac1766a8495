package transport

import (
	"net/http"
	"strings"
	"time"

	"github.com/tidings/tidings/subscription"
)

// reauthorization asks Authorize again every Heartbeat during a stream:
// on a heartbeat when the stream is idle, and before the next batch when
// it is busy (a busy stream sends no heartbeats).
type reauthorization struct {
	s      *Server
	r      *http.Request
	ps     *parts // the targets
	period time.Duration
	next   time.Time
	due    bool
}

func (s *Server) reauth(a *reauthorization, r *http.Request, ps *parts) {
	period := orDefault(s.Heartbeat, DefaultHeartbeat)
	*a = reauthorization{s: s, r: r, ps: ps, period: period, next: time.Now().Add(period)}
}

// batch is called at the start of each batch of events.
func (a *reauthorization) batch() {
	a.due = a.s.Authorize != nil && !time.Now().Before(a.next)
}

// check is called before each event; it returns Authorize's refusal of
// any of the stream's targets, when a check is due.
func (a *reauthorization) check(e *subscription.Event) error {
	if a.s.Authorize == nil || !(a.due || e.Type == subscription.TypeStatus) {
		return nil
	}
	a.due, a.next = false, time.Now().Add(a.period)
	for i := range a.ps.list {
		if err := a.s.Authorize(a.r, a.ps.list[i].target); err != nil {
			return err
		}
	}
	return nil
}

// authorize asks the Authorize hook; its refusal is the error to answer
// with (401 or 403: see authError).
func (s *Server) authorize(r *http.Request, t subscription.Target) error {
	if s.Authorize == nil {
		return nil
	}
	if err := s.Authorize(r, t); err != nil {
		return authError(err)
	}
	return nil
}

// BearerToken returns the token a request carries: the Authorization
// header's bearer token (RFC 6750 §2.1), or else the access_token query
// parameter (§2.3), which is how a browser's EventSource, which cannot
// set headers, can send one. "" if neither. The stream and feed handlers
// accept access_token beside their own parameters and never repeat it in
// an error or a log line; prefer a cookie or the header where the client
// can, since a URL may be kept in a proxy's or a browser's history.
func BearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("access_token")
}
