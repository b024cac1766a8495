// Package transport serves a broker over HTTP, with handlers that mount on
// any mux, under any prefix, over HTTP/1.1 and HTTP/2:
//
//   - Server.Stream: NDJSON streams in Fauna's shape. POST a JSON
//     StreamRequest; the response is 200 application/x-ndjson, one event
//     per line, each followed by \r\n.
//   - Server.SSE: Server-Sent Events for EventSource. GET with the request
//     in the query string; id is the cursor, event the type ("stream_error"
//     for error events), data the JSON line; Last-Event-ID resumes.
//   - Server.Write: a transaction of writes as JSON, for producers that
//     are not Go, mounted only when AuthorizeWrite is set, which consents
//     to each; it takes application/json alone, so that a page on another
//     origin must pass CORS to write.
//
// Every event is the same JSON line in every transport (see package
// subscription). Errors before a stream starts are a non-2xx status with
// {"error":{"code","description"}}: 400 invalid_request (malformed JSON,
// unknown fields, a wrong number of terms), 401/403 from Authorize, 404
// not_found (unknown collection or index, a missing document for a
// document stream), 410 history_unavailable (a bad, foreign or expired
// cursor), 413 body_too_large, 429 too_many_streams, 503 shutting_down.
//
// A stream ends, when the server ends it, with an error event that carries
// the cursor to resume from: shutting_down (Server.Shutdown, spread over a
// jittered window), stream_lifetime (MaxLifetime), permission_denied
// (Authorize refused on a heartbeat), or the broker's history_unavailable.
// Each stream's writer sends every batch of ready events with one write and
// one flush, under a write deadline, so a client that stops reading is cut
// off and freed. ConfigureServer sets up an http.Server so that the
// stream limit per connection is answered at once with 429.
package transport
