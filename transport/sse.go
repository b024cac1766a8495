package transport

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/tidings/tidings/subscription"
)

// SSEErrorEvent is the SSE event name of error events. It is not "error",
// because EventSource fires "error" for its own connection errors: a page
// listens for "stream_error" to tell the stream's end (with the code and
// the cursor to resume from) from a broken connection.
const SSEErrorEvent = "stream_error"

// SSE returns the Server-Sent Events handler, for the browser's
// EventSource: GET with the StreamRequest in the query string. Each event
// is "id: <cursor>" (on every event that has one), "event: <type>" and
// "data: <the JSON line>"; a "retry:" line comes first; heartbeats are
// comment lines. Last-Event-ID, or a cursor parameter, resumes; when both
// are given Last-Event-ID wins, since a reconnecting EventSource sends the
// original URL.
func (s *Server) SSE() http.Handler {
	return s.endpoint(func(w http.ResponseWriter, r *http.Request) {
		if p := openAside(s.openSSE, w, r); p != nil {
			p.run()
		}
	}, http.MethodGet)
}

func (s *Server) openSSE(w http.ResponseWriter, r *http.Request) *pump {
	req, err := queryStreamRequest(r.URL.Query())
	if err != nil {
		s.writeErr(w, r, err)
		return nil
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Cursor = id
	}
	return s.open(w, r, &req, sse{retry: orDefault(s.Retry, DefaultRetry)})
}

type sse struct{ retry time.Duration }

func (sse) protocol() string { return ProtocolSSE }

func (sse) header(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
}

// preamble starts the first event's block with the retry field, rather
// than sending it as a block of its own: some clients (go-sse's) dispatch
// an empty event for a block without data, which the spec says not to.
func (f sse) preamble(dst []byte) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, f.retry.Milliseconds(), 10)
	return append(dst, '\n')
}

// frame appends one SSE event: id (when given), the event's type, and its
// JSON line as data, with "subscription":name spliced in on a multiplexed
// stream; a status event is a comment line. No value can start a new
// field: the cursor is base64url, the names are fixed, and the JSON line
// is compact; should a CR or LF reach it anyway, it is written as a space,
// which in JSON is only ever whitespace between tokens (inside strings
// they are escaped).
func (sse) frame(dst []byte, e *subscription.Event, name []byte, id string) []byte {
	if e.Type == subscription.TypeStatus {
		dst = append(dst, ": "...)
		dst = appendLine(dst, e.JSON)
		return append(dst, "\n\n"...)
	}
	if id != "" {
		dst = append(dst, "id: "...)
		dst = appendLineString(dst, id)
		dst = append(dst, '\n')
	}
	evname := e.Type.String()
	if e.Type == subscription.TypeError {
		evname = SSEErrorEvent
	}
	dst = append(dst, "event: "...)
	dst = append(dst, evname...)
	dst = append(dst, "\ndata: "...)
	if name != nil {
		start := len(dst)
		dst = appendNamed(dst, e.JSON, name)
		replaceLineEnds(dst[start:])
	} else {
		dst = appendLine(dst, e.JSON)
	}
	return append(dst, "\n\n"...)
}

// appendLineString is appendLine for a string, without converting it.
func appendLineString(dst []byte, s string) []byte {
	start := len(dst)
	dst = append(dst, s...)
	replaceLineEnds(dst[start:])
	return dst
}

// replaceLineEnds replaces every CR and LF in b by a space. IndexByte
// scans with vector instructions: the common case, no line end at all,
// costs two quick passes.
func replaceLineEnds(b []byte) {
	for _, c := range [2]byte{'\r', '\n'} {
		rest := b
		for {
			i := bytes.IndexByte(rest, c)
			if i < 0 {
				break
			}
			rest[i] = ' '
			rest = rest[i+1:]
		}
	}
}

// appendLine appends b with every CR and LF replaced by a space.
func appendLine(dst, b []byte) []byte {
	start := len(dst)
	dst = append(dst, b...)
	replaceLineEnds(dst[start:])
	return dst
}
