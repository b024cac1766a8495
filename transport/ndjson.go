package transport

import (
	"net/http"

	"github.com/tidings/tidings/subscription"
)

// Stream returns the NDJSON stream handler, Fauna's shape: POST a JSON
// StreamRequest (fields may also be given as ?fields=prev,diff); the
// response is 200 application/x-ndjson, each event one JSON line followed
// by \r\n, start first.
func (s *Server) Stream() http.Handler {
	return s.endpoint(func(w http.ResponseWriter, r *http.Request) {
		if p := openAside(s.openNDJSON, w, r); p != nil {
			p.run()
		}
	}, http.MethodPost)
}

func (s *Server) openNDJSON(w http.ResponseWriter, r *http.Request) *pump {
	body, done := s.readBody(w, r)
	req, err := decodeStreamRequest(body)
	done(err == nil)
	if err != nil {
		s.writeErr(w, r, err)
		return nil
	}
	if q := r.URL.Query(); q.Has("fields") {
		fs, err := subscription.ParseFields(q.Get("fields"))
		if err != nil {
			s.writeError(w, badRequest("%v", err))
			return nil
		}
		req.Fields = fs
	}
	return s.open(w, r, &req, ndjson{})
}

type ndjson struct{}

func (ndjson) protocol() string { return ProtocolNDJSON }

func (ndjson) header(h http.Header) {
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
}

func (ndjson) preamble(dst []byte) []byte { return dst }

// frame appends the event's JSON line, with "subscription":name spliced
// in on a multiplexed stream.
func (ndjson) frame(dst []byte, e *subscription.Event, name []byte, _ string) []byte {
	if name == nil {
		dst = append(dst, e.JSON...)
	} else {
		dst = appendNamed(dst, e.JSON, name)
	}
	return append(dst, '\r', '\n')
}

// appendNamed appends an event's JSON with "subscription":name as its
// first member: the shared bytes are spliced, not decoded and encoded.
func appendNamed(dst, event, name []byte) []byte {
	dst = append(dst, `{"subscription":`...)
	dst = append(dst, name...)
	dst = append(dst, ',')
	return append(dst, event[1:]...)
}
