package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// StreamRequest is what a client asks for: one target and its options. It
// is the JSON body of an NDJSON stream request, and, field by field, the
// query string of an SSE or feed request:
//
//	{"collection": "spells"}                                   the collection's documents
//	{"index": "spells_by_element", "terms": ["fire"]}          an index matched on terms
//	{"index": "all_spells"}                                    a term-less index
//	{"document": {"collection": "spells", "id": "101"}}        one document
//
// with the options "fields" (a list, or a comma-separated string, of
// action, document, prev, diff, index), "snapshot", "cursor", "updates",
// "data" and "page_size" (snapshot page size).
type StreamRequest struct {
	Collection string              `json:"collection,omitempty"`
	Index      string              `json:"index,omitempty"`
	Terms      []json.RawMessage   `json:"terms,omitempty"`
	Document   *txlog.Ref          `json:"document,omitempty"`
	Fields     subscription.Fields `json:"fields,omitempty"`
	Snapshot   bool                `json:"snapshot,omitempty"`
	Cursor     string              `json:"cursor,omitempty"`
	Updates    bool                `json:"updates,omitempty"`
	Data       bool                `json:"data,omitempty"`
	PageSize   int                 `json:"page_size,omitempty"`

	// Subscriptions carries many subscriptions over one stream, by name,
	// instead of one target: each event then names its subscription. With
	// it, only Cursor may be set beside it: the compound cursor of an
	// earlier stream of the same subscriptions, which resumes them all.
	Subscriptions map[string]StreamRequest `json:"subscriptions,omitempty"`
}

// MaxSubscriptionsPerStream bounds the subscriptions of one stream.
const MaxSubscriptionsPerStream = 256

// maxTerms bounds the terms of one request.
const maxTerms = 64

// decodeStreamRequest reads a JSON body: one object, no unknown fields,
// nothing after it.
func decodeStreamRequest(body io.Reader) (StreamRequest, error) {
	var req StreamRequest
	return req, decodeBody(body, &req, "stream request")
}

// decodeBody decodes one JSON value into v, refusing unknown fields and
// anything after the value. A body over the size limit is the
// *http.MaxBytesError (413); anything else wrong is a 400, a body that is
// not valid UTF-8 (or escapes half a surrogate pair) included: it is read
// whole and checked first, since encoding/json would silently turn such a
// string (an id, a name) into another one, with U+FFFD.
func decodeBody(body io.Reader, v any, what string) error {
	b, err := io.ReadAll(body)
	if err == nil {
		if err = jsondoc.CheckText(b); err != nil {
			return badRequest("the body is not a valid %s: %v", what, err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
		if err == nil {
			if _, err = dec.Token(); err == io.EOF {
				return nil
			} else if err == nil {
				err = errors.New("more than one JSON value")
			}
		}
	}
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return badRequest("the body is not a valid %s: %v", what, err)
}

// checkQuery refuses a query string whose names or values (once
// unescaped) are not valid UTF-8, and JSON values (terms, subscriptions)
// that escape half a surrogate pair: decoding would silently replace them
// with U+FFFD.
func checkQuery(q url.Values) error {
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return badRequest("a query parameter name is not valid UTF-8")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return badRequest("query parameter %q is not valid UTF-8", k)
			}
			if k == "terms" || k == "subscriptions" {
				if err := jsondoc.CheckText([]byte(v)); err != nil {
					return badRequest("query parameter %q: %v", k, err)
				}
			}
		}
	}
	return nil
}

// queryStreamRequest reads the query string of an SSE or feed request:
// collection, index, terms (a JSON array), collection+id for a document,
// fields, snapshot, cursor, updates, data, page_size. Unknown parameters
// are refused, like unknown fields in a body, except those in allow, and
// so is anything that is not valid UTF-8 (see checkQuery).
func queryStreamRequest(q url.Values, allow ...string) (StreamRequest, error) {
	var req StreamRequest
	known := map[string]bool{"subscriptions": true, "collection": true, "id": true, "index": true, "terms": true, "fields": true,
		"snapshot": true, "cursor": true, "updates": true, "data": true, "page_size": true,
		"access_token": true} // for Authorize: see BearerToken
	for _, a := range allow {
		known[a] = true
	}
	if err := checkQuery(q); err != nil {
		return req, err
	}
	for k, vs := range q {
		if !known[k] {
			return req, badRequest("unknown query parameter %q", k)
		}
		if len(vs) != 1 {
			return req, badRequest("query parameter %q is given %d times", k, len(vs))
		}
	}
	req.Collection = q.Get("collection")
	req.Index = q.Get("index")
	req.Cursor = q.Get("cursor")
	if id := q.Get("id"); id != "" || q.Has("id") {
		req.Document = &txlog.Ref{Collection: req.Collection, ID: id}
		req.Collection = ""
	}
	if subs := q.Get("subscriptions"); subs != "" {
		if err := json.Unmarshal([]byte(subs), &req.Subscriptions); err != nil {
			return req, badRequest("subscriptions must be a JSON object of stream requests: %v", err)
		}
	}
	if t := q.Get("terms"); t != "" {
		if err := json.Unmarshal([]byte(t), &req.Terms); err != nil {
			return req, badRequest("terms must be a JSON array: %v", err)
		}
	}
	if q.Has("fields") {
		fs, err := subscription.ParseFields(q.Get("fields"))
		if err != nil {
			return req, badRequest("%v", err)
		}
		req.Fields = fs
	}
	var err error
	for name, dst := range map[string]*bool{"snapshot": &req.Snapshot, "updates": &req.Updates, "data": &req.Data} {
		if q.Has(name) {
			if *dst, err = parseBool(q.Get(name)); err != nil {
				return req, badRequest("%s must be true or false (or empty, for true)", name)
			}
		}
	}
	if q.Has("page_size") {
		if req.PageSize, err = strconv.Atoi(q.Get("page_size")); err != nil || req.PageSize < 1 {
			return req, badRequest("page_size must be a positive integer")
		}
	}
	return req, nil
}

// parseBool accepts what a URL usually says: true/false, 1/0, and an empty
// value (?snapshot) for true.
func parseBool(s string) (bool, error) {
	if s == "" {
		return true, nil
	}
	return strconv.ParseBool(s)
}

// target turns the request into a subscription target and options.
func (req *StreamRequest) target() (subscription.Target, subscription.Options, error) {
	var t subscription.Target
	n := 0
	if req.Collection != "" {
		n++
		t = subscription.Collection(req.Collection)
	}
	if req.Index != "" {
		n++
		if len(req.Terms) > maxTerms {
			return t, subscription.Options{}, badRequest("more than %d terms", maxTerms)
		}
		terms := make([]any, len(req.Terms))
		for i, raw := range req.Terms {
			v, err := index.ParseValue(bytes.TrimSpace(raw))
			if err != nil {
				return t, subscription.Options{}, badRequest("term %d: %v", i, err)
			}
			terms[i] = v
		}
		var err error
		if t, err = subscription.Match(req.Index, terms...); err != nil {
			return t, subscription.Options{}, badRequest("%v", err)
		}
	} else if len(req.Terms) > 0 {
		return t, subscription.Options{}, badRequest("terms without an index")
	}
	if req.Document != nil {
		n++
		if req.Document.Collection == "" || req.Document.ID == "" {
			return t, subscription.Options{}, badRequest("a document needs a collection and an id")
		}
		t = subscription.Document(*req.Document)
	}
	if n != 1 {
		return t, subscription.Options{}, badRequest("name exactly one target: a collection, an index, or a document")
	}
	opt := subscription.Options{Snapshot: req.Snapshot, Cursor: req.Cursor, Updates: req.Updates,
		Data: req.Data, SnapshotPageSize: req.PageSize}
	opt.Fields = req.Fields
	if opt.SnapshotPageSize < 0 || opt.SnapshotPageSize > subscription.MaxSnapshotPageSize {
		return t, opt, badRequest("page_size must be between 1 and %d", subscription.MaxSnapshotPageSize)
	}
	return t, opt, nil
}

// NewStreamRequest returns the request for a target and options: what a
// client sends to follow the target as broker.Subscribe would (the Go
// client does). Options the wire does not carry (Buffer, BufferBytes,
// Heartbeat) are the server's to choose, and left out.
func NewStreamRequest(t subscription.Target, opt subscription.Options) (StreamRequest, error) {
	req := StreamRequest{Fields: opt.Fields, Snapshot: opt.Snapshot, Cursor: opt.Cursor, Updates: opt.Updates,
		Data: opt.Data, PageSize: opt.SnapshotPageSize}
	switch t.Kind {
	case subscription.KindDocument:
		ref := t.Ref
		req.Document = &ref
	case subscription.KindCollection:
		req.Collection = t.Collection
	case subscription.KindIndex:
		req.Index = t.Index
		for _, v := range t.Terms {
			req.Terms = append(req.Terms, v.AppendJSON(nil))
		}
	default:
		return req, fmt.Errorf("%w: no kind", subscription.ErrInvalidTarget)
	}
	return req, nil
}

// Query returns the request as the query string of an SSE or feed
// request, as the SSE and Feed handlers read it. Subscriptions go as one
// JSON parameter.
func (req StreamRequest) Query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("collection", req.Collection)
	set("index", req.Index)
	if req.Document != nil {
		q.Set("collection", req.Document.Collection)
		q.Set("id", req.Document.ID)
	}
	if len(req.Terms) > 0 {
		b, _ := json.Marshal(req.Terms)
		q.Set("terms", string(b))
	}
	if req.Fields != 0 {
		q.Set("fields", req.Fields.String())
	}
	for k, v := range map[string]bool{"snapshot": req.Snapshot, "updates": req.Updates, "data": req.Data} {
		if v {
			q.Set(k, "true")
		}
	}
	if req.PageSize != 0 {
		q.Set("page_size", strconv.Itoa(req.PageSize))
	}
	set("cursor", req.Cursor)
	if len(req.Subscriptions) > 0 {
		b, _ := json.Marshal(req.Subscriptions)
		q.Set("subscriptions", string(b))
	}
	return q
}

// readBody returns r's body for decoding: capped at MaxBodyBytes, and read
// under BodyTimeout, so that a body trickled in, or never finished, does
// not hold a handler and its connection. done(whole) ends the timing:
// for a body read whole it clears the deadline, and a stream then lives
// on without one; after a failed read the deadline stays, so that the
// server, which reads what is left of a body before it answers, gives up
// on it too.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body io.Reader, done func(whole bool)) {
	rc := http.NewResponseController(w)
	d := orDefault(s.BodyTimeout, DefaultBodyTimeout)
	rc.SetReadDeadline(time.Now().Add(d)) // not every writer has deadlines
	// Under heavy load a read was once seen still blocked long after this
	// deadline (cause not found); when the time is up the deadline is set
	// again, in the past, which wakes a blocked read at once.
	late := time.AfterFunc(d+d/2, func() { rc.SetReadDeadline(time.Now()) })
	return http.MaxBytesReader(w, r.Body, orDefault(s.MaxBodyBytes, DefaultMaxBodyBytes)), func(whole bool) {
		late.Stop()
		if whole {
			rc.SetReadDeadline(time.Time{})
		}
	}
}
