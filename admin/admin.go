// Package admin is an operator's view of a broker: an http.Handler that
// lists its open subscriptions, the most behind first, with its totals
// and those of its transport.Server. It has no authentication of its
// own: mount it behind the application's.
//
//	mux.Handle("/admin/", requireOperator(&admin.Handler{Broker: b, Transport: srv}))
//
// It answers GET (and HEAD) on any path it is given, with an HTML page,
// or with JSON (a Report) when the request asks for it with
// ?format=json or Accept: application/json. ?limit=N lists the N most
// behind (DefaultLimit unless given); the totals count them all.
//
// A subscription is a stream's when the Transport lists it among its
// streams' (matched by broker.SubscriptionStats.ID), and otherwise
// in process: the application's own, or another front's (Electric's,
// Fauna's). A stream that starts or ends while the view is made may show
// as in process in that view.
package admin

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
)

// DefaultLimit is how many subscriptions a view lists unless ?limit=
// says otherwise, so that a server with 100k of them does not answer
// with megabytes by default.
const DefaultLimit = 1000

// Handler serves the view of Broker (required) and of Transport, the
// server of its streams (optional: without it, every subscription shows
// as in process and there are no transport totals).
type Handler struct {
	Broker    *broker.Broker
	Transport *transport.Server
}

// Report is the view, as the JSON answer has it. Durations are in
// nanoseconds (the fields named _ns), times in RFC 3339.
type Report struct {
	Time      time.Time        `json:"time"`
	Broker    BrokerTotals     `json:"broker"`
	Transport *TransportTotals `json:"transport,omitempty"` // without a Transport, none
	// Total is the subscriptions open (those listed and those left out by
	// the limit), Streams the transport's streams they belong to, and
	// Limit the most listed.
	Total   int `json:"total"`
	Streams int `json:"streams"`
	Limit   int `json:"limit"`
	// Subscriptions are the first Limit of them, the most behind first:
	// by Lag, then Behind, then Queued, then ID.
	Subscriptions []Entry `json:"subscriptions"`
}

// BrokerTotals are the broker's counters and latencies: each field is
// broker.Stats' of the same name.
type BrokerTotals struct {
	Subscriptions   int64 `json:"subscriptions"`
	Commits         int64 `json:"commits"`
	EventsDelivered int64 `json:"events_delivered"`
	CatchingUp      int64 `json:"catching_up"`
	BytesBuffered   int64 `json:"bytes_buffered"`
	Overflows       int64 `json:"overflows"`
	Conflicts       int64 `json:"conflicts"`

	Commit     Latency `json:"commit"`
	Fsync      Latency `json:"fsync"`
	FirstQueue Latency `json:"first_queue"`
	LastQueue  Latency `json:"last_queue"`
}

// Latency sums up one of the broker's histograms (broker.Latencies): its
// count, and its median and 99th percentile, as Latencies.Quantile gives
// them (upper bounds, within a factor of two).
type Latency struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
}

// TransportTotals are the transport.Server's counters: each field is
// transport.Stats' of the same name.
type TransportTotals struct {
	Open          map[string]int64 `json:"open"`    // streams open by protocol
	Refused       map[int]int64    `json:"refused"` // error responses by status
	WriteTimeouts int64            `json:"write_timeouts"`
	BytesWritten  int64            `json:"bytes_written"`
	FeedPages     int64            `json:"feed_pages"`
	FeedCollapsed int64            `json:"feed_collapsed"`
}

// Entry is one subscription: its broker.SubscriptionStats, with its
// target written out, and its stream if it is a stream's.
type Entry struct {
	ID          uint64        `json:"id"`
	Target      string        `json:"target"` // as subscription.Target's String writes it
	Kind        string        `json:"kind"`   // document, collection or index
	Started     time.Time     `json:"started"`
	Position    uint64        `json:"position"` // the txn it has everything up to
	Behind      int64         `json:"behind"`   // commits
	Lag         time.Duration `json:"lag_ns"`
	Queued      int           `json:"queued"`
	QueuedBytes int           `json:"queued_bytes"`
	CatchingUp  bool          `json:"catching_up"`
	Overflows   int64         `json:"overflows"`
	Delivered   int64         `json:"delivered"`
	Stream      *Stream       `json:"stream,omitempty"` // nil: in process
}

// Stream is the transport stream a subscription belongs to
// (transport.StreamStats).
type Stream struct {
	Protocol    string    `json:"protocol"` // transport.ProtocolSSE or ProtocolNDJSON
	Remote      string    `json:"remote"`   // the client's address
	Started     time.Time `json:"started"`
	Detached    bool      `json:"detached"`
	ConnStreams int       `json:"conn_streams"` // streams open on its connection
	// Name is the subscription's name in a multiplexed stream ("" for a
	// stream's only one), and Subscriptions how many the stream has.
	Name          string `json:"name"`
	Subscriptions int    `json:"subscriptions"`
}

// listed is a subscription on its way to an Entry: the target is written
// out only for those listed.
type listed struct {
	st     broker.SubscriptionStats
	stream *Stream
}

// Report returns the view, with the first limit subscriptions (none for
// 0 or less). Each figure is read on its own, not all at one instant.
func (h *Handler) Report(limit int) Report {
	limit = max(limit, 0)
	r := Report{Time: time.Now(), Limit: limit, Broker: brokerTotals(h.Broker.Stats())}
	var all []listed
	inStream := map[uint64]bool{}
	if h.Transport != nil {
		ts := h.Transport.Stats()
		r.Transport = &TransportTotals{Open: ts.Open, Refused: ts.Refused, WriteTimeouts: ts.WriteTimeouts,
			BytesWritten: ts.BytesWritten, FeedPages: ts.FeedPages, FeedCollapsed: ts.FeedCollapsed}
		for st := range h.Transport.Streams() {
			r.Streams++
			for name, s := range st.Subscriptions {
				inStream[s.ID] = true
				all = append(all, listed{s, &Stream{Protocol: st.Protocol, Remote: st.Remote, Started: st.Started,
					Detached: st.Detached, ConnStreams: st.ConnStreams, Name: name, Subscriptions: len(st.Subscriptions)}})
			}
		}
	}
	for s := range h.Broker.Subscriptions() {
		if !inStream[s.ID] {
			all = append(all, listed{st: s})
		}
	}
	r.Total = len(all)
	slices.SortFunc(all, func(a, b listed) int {
		return cmp.Or(
			cmp.Compare(b.st.Lag, a.st.Lag),
			cmp.Compare(b.st.Behind, a.st.Behind),
			cmp.Compare(b.st.Queued, a.st.Queued),
			cmp.Compare(a.st.ID, b.st.ID))
	})
	all = all[:min(limit, len(all))]
	r.Subscriptions = make([]Entry, len(all))
	for i, l := range all {
		s := l.st
		r.Subscriptions[i] = Entry{ID: s.ID, Target: s.Target.String(), Kind: kind(s.Target.Kind), Started: s.Started,
			Position: uint64(s.Position), Behind: s.Behind, Lag: s.Lag, Queued: s.Queued, QueuedBytes: s.QueuedBytes,
			CatchingUp: s.CatchingUp, Overflows: s.Overflows, Delivered: s.Delivered, Stream: l.stream}
	}
	return r
}

func brokerTotals(s broker.Stats) BrokerTotals {
	return BrokerTotals{Subscriptions: s.Subscriptions, Commits: s.Commits, EventsDelivered: s.EventsDelivered,
		CatchingUp: s.CatchingUp, BytesBuffered: s.BytesBuffered, Overflows: s.Overflows, Conflicts: s.Conflicts,
		Commit: latency(s.Commit), Fsync: latency(s.Fsync), FirstQueue: latency(s.FirstQueue), LastQueue: latency(s.LastQueue)}
}

func latency(l broker.Latencies) Latency {
	return Latency{Count: l.Count, P50: l.Quantile(0.5), P99: l.Quantile(0.99)}
}

func kind(k subscription.Kind) string {
	switch k {
	case subscription.KindDocument:
		return "document"
	case subscription.KindCollection:
		return "collection"
	case subscription.KindIndex:
		return "index"
	}
	return "invalid"
}

// ServeHTTP answers GET and HEAD with the view: JSON when the request
// asks for it (?format=json, or Accept: application/json without
// text/html), an HTML page otherwise (or with ?format=html). ?limit=N
// lists at most N subscriptions (DefaultLimit without it). Other methods
// get 405, a bad format or limit 400. Neither answer is cached.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	limit := DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			http.Error(w, "400 limit must be a number, 0 or more", http.StatusBadRequest)
			return
		}
		limit = n
	}
	var asJSON bool
	switch q.Get("format") {
	case "json":
		asJSON = true
	case "html":
	case "":
		accept := r.Header.Get("Accept")
		asJSON = strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
	default:
		http.Error(w, "400 format must be json or html", http.StatusBadRequest)
		return
	}
	rep := h.Report(limit)
	var body bytes.Buffer
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Vary", "Accept")
	hd.Set("X-Content-Type-Options", "nosniff")
	if asJSON {
		enc := json.NewEncoder(&body)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			http.Error(w, "500 "+err.Error(), http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "application/json")
	} else {
		if err := page.Execute(&body, newPageData(rep, r)); err != nil {
			http.Error(w, "500 "+err.Error(), http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "text/html; charset=utf-8")
		// The page has an inline style and nothing else: no scripts, no
		// assets, no frames.
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	}
	hd.Set("Content-Length", strconv.Itoa(body.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body.Bytes())
	}
}
