package transport

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

// WriteRequest is the body of the write endpoint: a transaction of writes,
// committed all or nothing.
//
//	{"writes":[{"action":"create","collection":"spells","id":"1","data":{"element":"fire"}}]}
//
// action is create, replace, update (a merge patch), delete or upsert.
type WriteRequest struct {
	Writes []WriteOp `json:"writes"`
}

// WriteOp is one write of a WriteRequest.
type WriteOp struct {
	Action     string          `json:"action"`
	Collection string          `json:"collection"`
	ID         string          `json:"id"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// maxWrites bounds the writes of one request.
const maxWrites = 10_000

func decodeWriteRequest(body io.Reader) (WriteRequest, error) {
	var req WriteRequest
	if err := decodeBody(body, &req, "write request"); err != nil {
		return req, err
	}
	if len(req.Writes) == 0 || len(req.Writes) > maxWrites {
		return req, badRequest("a transaction needs 1 to %d writes", maxWrites)
	}
	for i, w := range req.Writes {
		if w.Collection == "" || w.ID == "" {
			return req, badRequest("write %d: a write needs a collection and an id", i)
		}
		switch w.Action {
		case "create", "replace", "update", "upsert":
			if len(w.Data) == 0 {
				return req, badRequest("write %d: %s needs data", i, w.Action)
			}
		case "delete":
		default:
			return req, badRequest("write %d: unknown action %q", i, w.Action)
		}
	}
	return req, nil
}

// Write returns the write endpoint's handler: POST a WriteRequest as
// application/json, get {"txn":N} back. AuthorizeWrite is asked first
// (without it every write is refused with 403); the errors are then those
// of broker.Commit (409 conflict for a create of an existing document, 404
// for a missing one or an unknown collection, 400 for data that is not a
// JSON object). A body that is not valid UTF-8 (or escapes half a
// surrogate pair) is refused with 400 before it is decoded, since
// encoding/json would read such an id as another one.
//
// Any other Content-Type is refused with 415: a page on another origin can
// send a "simple" cross-origin POST (text/plain, form data) without asking
// the server first, but not one of application/json, for which the
// browser preflights, and CORS (AllowedOrigins) decides.
func (s *Server) Write() http.Handler {
	return s.endpoint(func(w http.ResponseWriter, r *http.Request) {
		if !isJSON(r.Header.Get("Content-Type")) {
			s.writeError(w, &Error{http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
				"send the writes as application/json"})
			return
		}
		body, done := s.readBody(w, r)
		req, err := decodeWriteRequest(body)
		done(err == nil)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if s.AuthorizeWrite == nil {
			s.writeError(w, &Error{http.StatusForbidden, CodePermissionDenied, "writes are not authorized on this server"})
			return
		}
		if err := s.AuthorizeWrite(r, &req); err != nil {
			s.writeError(w, authError(err))
			return
		}
		txn, err := s.Broker.Commit(r.Context(), func(tx *broker.Tx) error {
			for _, op := range req.Writes {
				ref := txlog.Ref{Collection: op.Collection, ID: op.ID}
				var err error
				switch op.Action {
				case "create":
					err = tx.Create(ref, op.Data)
				case "replace":
					err = tx.Replace(ref, op.Data)
				case "update":
					err = tx.Update(ref, op.Data)
				case "delete":
					err = tx.Delete(ref)
				case "upsert":
					err = tx.Upsert(ref, op.Data)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"txn":` + strconv.FormatUint(uint64(txn), 10) + "}\n"))
	}, http.MethodPost)
}

// isJSON reports whether a Content-Type is application/json, with or
// without parameters (charset).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}
