// Package electric serves a tidings broker to ElectricSQL's TypeScript
// client (@electric-sql/client, and TanStack DB's Electric collections
// above it): GET {prefix}/v1/shape, the shape protocol of Electric's sync
// service, over long-poll and live SSE, from an embedded broker with no
// Postgres behind it.
//
// # Serving
//
// Handler serves any path that ends in /v1/shape, so mount it at the
// prefix the client is given (mux.Handle("/electric/", h), client URL
// …/electric/v1/shape). It shares the broker, Authorize hook, CORS and
// limits of a transport.Server. At exit, call Handler.Shutdown before
// http.Server.Shutdown.
//
// # Shapes
//
// A shape is the table parameter, a collection, and where, read as SQL:
//
//   - no where: the collection's documents;
//   - field = literal AND …, the fields being exactly the terms of one
//     index on the collection (any order; "quoted" names, dots in quotes
//     for nested fields): that index matched on those values;
//   - id = 'x' alone: one document.
//
// Literals are 'strings' (a quote doubled inside), numbers, TRUE and FALSE, and $n,
// the value of params[n], as a string ('3' does not match the number 3).
// Anything else (OR, IN, LIKE, <, NULL, fields that are no index's terms)
// is a 400 {"message","errors":{"where":[why]}}. columns projects the
// rows on top-level fields and must keep id; replica=full and subset
// snapshots are refused; log=changes_only starts with no rows. Other
// parameters are ignored, as Electric does: the client adds its own.
//
// # Rows
//
// A row is a document passed through: {"id": <the document's id>, …its
// top-level fields}, values as JSON (numbers, objects, arrays). The
// electric-schema header names id alone, as text and the primary key; the
// client leaves columns the schema does not name untouched, so rows equal
// the documents. A data field named id is shadowed by the document's id.
// A row's key is "collection"/"id".
//
// Events become messages, in txn order and write order within a txn:
//
//   - the document enters the shape (created, or changed into an index
//     match): insert, with the whole row;
//   - it changes and stays: update, with the id and each top-level field
//     the write changed, whole, and null for a field it removed (the
//     client merges an update over the row it has, so a removed field
//     reads null, not absent); an update of no projected field sends
//     nothing;
//   - it leaves (deleted, or changed out of the match): delete, {"id"}.
//
// History rewrites change no current row and send nothing. Messages carry
// headers.lsn, the txn as a decimal string, and op_position, the write's
// index in it; the initial rows carry neither.
//
// # Offsets and handles
//
// An offset is -1 (the initial rows), now (nothing, from the head), or
// T_0: every txn up to T is in what the client has, so that the client's
// own offset after an SSE stream, `${global_last_seen_lsn}_0`, resumes
// with nothing lost or repeated. Every response ends at a txn boundary.
// A handle is 16 hex digits of a hash of the log's ID and the shape's
// definition, then -S, S the txn of the initial rows. A request whose
// handle is of another log (an in-memory broker restarted) or another
// definition, whose offset is before S, after the head, or older than the
// log retains, or an offset of Electric's own (0_inf) gets 409 with a new
// handle, which differs from the request's and from its expired_handle,
// and the client starts again from -1. must-refetch is never sent in a
// 200.
//
// # Responses
//
//   - offset=-1: the rows at one txn S, as inserts sorted by id, with
//     electric-handle, electric-offset S_0 and electric-schema, cached
//     for a week (the client asks at once for what follows).
//   - offset=now: up-to-date at the head.
//   - a catch-up (no live): the changes after the offset up to the head
//     and up-to-date, or a page of at most 8192 messages ending at a txn
//     boundary without it.
//   - live long-poll: the changes as soon as there are some, or
//     up-to-date after LongPollHold (20 s, under the client's 45 s);
//     commits that change no row of the shape do not end the wait.
//   - live SSE: the changes, each group of txns followed by up-to-date
//     with global_last_seen_lsn, keep-alive comments after KeepAlive of
//     silence (then also a bare up-to-date if the log moved on without
//     touching the shape, which keeps the client's offset within
//     retention), ended after about SSELifetime (60 s), never in under a
//     second.
//
// Every 2xx has electric-handle and electric-offset; non-live ones
// electric-schema; live ones electric-cursor (Electric's 20 s buckets);
// electric-up-to-date when the body ends with up-to-date; an ETag, and a
// 304 for If-None-Match; Cache-Control as Electric's, private (and Vary:
// Authorization) when Authorize is set. CORS exposes the electric-*
// headers, ETag and Retry-After. Errors: 400 (parameters), 401 and 403
// (Authorize), 409 (start again), 429 (the connection's stream limit) and
// 503 (shutting down), both with Retry-After; the client retries those.
//
// # Sharing
//
// Requests that ask for the same read at once share it: the same shape
// from the same offset, live or not, or the initial rows of a shape. One
// read of the log, one encoding, for all of them; long-poll answers are
// then identical to the byte, headers included. With the cursor's 20 s
// buckets, clients at one offset ask the same URLs, as Electric's do
// behind CDNs. SSE streams at the same position share their reads too.
package electric
