// Package fauna serves a tidings broker to Fauna's v4 drivers (faunadb for
// JavaScript and Python), which are still inside many applications now
// that Fauna's hosted service is gone, and to the v10 driver (fauna for
// JavaScript) for its event sources: streams and feeds.
//
// # Serving
//
// Handler owns the root of its origin, because the drivers take an origin
// and post to absolute paths. Give it its own http.Server (or host), with
// HTTP/2 enabled (the Node and Python drivers speak h2c on http://) and
// set up with transport.ConfigureServer, so that the 101st stream of one
// connection is refused at once with 429 instead of waiting forever:
//
//	srv := &http.Server{Addr: ":8443", Handler: &fauna.Handler{Server: ts}}
//	srv.Protocols = new(http.Protocols)
//	srv.Protocols.SetHTTP1(true)
//	srv.Protocols.SetUnencryptedHTTP2(true)
//	transport.ConfigureServer(srv, 100)
//
// The transport.Server ts is the one that serves the native protocol: the
// Fauna front shares its broker, its Authorize hook (which gets the
// request, so transport.BearerToken reads the driver's secret) and its
// limits.
//
// # Requests
//
// POST /stream takes the FQL v4 expression in its JSON wire form, and
// ?fields= (action, document, diff, prev, index; default action,document):
//
//   - a document ref, in any of its three spellings (Ref(Collection(c), id),
//     a ref value, Ref("collections/c/id")): a document stream;
//   - Match(Index(name), terms), with a scalar term, an array of terms, or
//     none: a set stream of the index;
//   - Documents(Collection(c)): a set stream of the collection.
//
// Anything else, Collection(c) alone included (in Fauna it streams the
// collection's definition, which tidings does not have), and terms that
// are objects or arrays, are refused with 400 invalid argument.
//
// POST / answers only {"get": <document ref>}, which the JS driver's
// client.stream.document() sends on start for its snapshot, with
// {"resource":{"ref","ts","data"}} and X-Txn-Time.
//
// Errors before a stream are Fauna's v4 shape,
// {"errors":[{"position":[],"code","description"}]}, which the JS driver
// turns into its typed errors: 400 invalid argument; 401 unauthorized
// (Authorize returned transport.ErrUnauthorized); 403 permission denied
// (any other refusal); 404 instance not found (a missing document, an
// unknown collection or index); 429 too many requests (the connection's
// stream limit); 503 unavailable (the broker is closed); and, outside
// Fauna's list, 408 for a body slower than BodyTimeout and 413 for one
// larger than MaxBodyBytes.
//
// Pages of other origins may call the front as they call the native
// transport: the transport.Server's AllowedOrigins and AllowCredentials
// decide, every response (errors included) carries the CORS headers, and
// a preflight allows every header the drivers send (X-FaunaDB-API-Version,
// X-Driver-Env, X-Format, X-Query-Timeout-Ms, X-Last-Txn-Ts, traceparent
// and the rest) and exposes X-Txn-Time, which the v4 driver reads.
//
// During a stream Authorize is asked again every Heartbeat; a refusal ends
// the stream with an error event (permission denied, or unauthorized for
// transport.ErrUnauthorized). The streams of this front are not the
// transport.Server's: Handler.Shutdown ends them (v4 with an error event
// shutting_down, v10 cleanly, so that the driver reconnects with its
// cursor), and no MaxLifetime applies, since the drivers do not resume
// (v4) or give up after a few reconnections (v10). Closing the broker
// ends them too, each with an error event shutting_down.
//
// # Events
//
// Each event is one JSON line ending in \r\n, written and flushed on its
// own, because the Python driver reads each HTTP/2 DATA frame as one
// event. Values are Fauna's tagged JSON: refs as {"@ref":…}, ts as µs
// numbers, and user objects with a key that starts with "@" wrapped in
// {"@obj":…}. (The drivers decode bottom-up, so a user object shaped like
// a tag, {"@ref":"x"}, still breaks them inside @obj, as it did with
// Fauna.)
//
//   - start: {"type":"start","txn":T,"event":T}, T the stream's start txn.
//   - version (document streams): create, update, delete, with document,
//     diff and prev as Fauna had them (prev is null after a create; the
//     document of a delete has ref and ts but no data).
//   - set (set streams): add and remove, with the document's ref and ts,
//     and index {terms, values}; for Documents(Collection(c)) the terms are
//     [Ref(Collection(c))], as Fauna gave them.
//   - history_rewrite: as the broker sends it, refs tagged.
//   - status: the broker's heartbeat, {"type":"status","txn":T}. Fauna v4
//     had none; the drivers ignore unknown types, and it keeps an idle
//     stream's connection checked.
//   - error: {"type":"error","txn":T,"event":{"code","description"}}, the
//     last event of a stream the broker ends (history_unavailable,
//     shutting_down). The v4 drivers never resume, so the cursor the
//     native protocol carries is left out, as are cursors on every event.
//
// What has no counterpart in v4: snapshots (the v4 drivers do not ask for
// one on the stream), cursors and resume, and set update events.
//
// The Fauna line of a write's event is made once per write, field set and
// stream kind (the terms of a Documents stream differ), from the native
// line the broker encodes once, and shared by every stream of the Handler
// that receives it (internal/wire's FaunaLines, which keeps the newest
// 4096). A subscriber catching up from the log, after it fell behind,
// gets events of its own and makes their lines itself, as do start,
// status and error events, which belong to one stream.
//
// # v10 event sources
//
// An event source is a token: Handler.Token mints one for a target, or
// POST /query/1 does for these queries, each followed by .eventSource():
//
//   - coll.all(): the collection's documents;
//   - Set.single(coll.byId(id)), as Fauna wrote it, or coll.byId(id) for
//     short: one document (an id is a string or an integer; a document
//     value interpolated in Set.single works too);
//   - coll.name(terms…): the schema's index of that name, which must be
//     an index of coll (else 404 not_found), matched on the terms
//     (strings, numbers, booleans, null).
//
// The values may be literals ("…" or '…' with FQL's escapes), values the
// driver interpolates (fql`Set.single(spells.byId(${id}))…`, sent as
// {"value":…}; a collection may be a module), or names of the request's
// "arguments". The query is read token by token, so an interpolated value
// is never read as FQL. Any other query, #{…} inside a string included,
// is a 400 invalid_query that says what was found where. A token is
// base64url JSON of the target and the broker's head cursor at minting,
// then "." and its HMAC-SHA256 under TokenKey (random per Handler when
// empty). A tampered token, or one another key signed, is refused with
// 400 invalid_argument. Errors are v10's shape, {"error":{"code",
// "message"}}: 400 invalid_request, invalid_argument, invalid_query or
// invalid_cursor (a cursor unparsable or outside the retained history);
// 401 unauthorized and 403 forbidden from Authorize; 404 not_found; 429
// limit_exceeded; 503 unavailable. The v10 driver picks its error class by
// the code, not the status (unauthorized, forbidden, limit_exceeded,
// invalid_query and invalid_request have classes of their own, the rest
// are a QueryRuntimeError), and retries none of them.
//
// POST /stream/1 {"token", "cursor"? | "start_ts"?} streams the events
// after the cursor, or after the txn start_ts (txns are µs since the
// epoch, which is what start_ts counts; a start_ts later than the head
// starts there, and the events of txns up to start_ts are left out, so it
// is exclusive as in Fauna), or else after the token's minting. POST
// /feed/1 {"token", "page_size"? (default 16, at most 16000), "cursor"? |
// "start_ts"?} answers a page, {"events", "cursor", "has_next", "stats"},
// from the broker's ReadPage. A cursor with a start_ts is refused, as is a
// start_ts older than the log retains (invalid_cursor). Cursors are the
// broker's own, so a reconnect resumes exactly after the last event the
// driver saw.
//
// Lines end in \r\n, one event per write and flush:
//
//   - status: {"type":"status","txn_ts","cursor","stats"} at the start
//     (with the start cursor) and as the heartbeat (with the cursor of the
//     last event sent);
//   - add, update, remove, with "data" the document as {"@doc":{"id",
//     "coll":{"@mod"},"ts":{"@time"}, …fields}}; user fields named id,
//     coll, ts, ttl or data go under "data", and user objects with a key
//     that starts with "@" are wrapped in {"@object":…}. Set sources
//     subscribe with Data and Updates, so a member's change is an update.
//     A document's source maps create, update and delete to add, update
//     and remove; its removed document has id, coll and ts only, where a
//     set's remove carries the document as it was last;
//   - error: {"type":"error","error":{"code","message"}}, the last line;
//     a history_rewrite, which v10 has no event for, ends the stream with
//     an error of that code rather than leaving a gap.
//
// stats are all zero: tidings meters nothing. As with v4, the v10 line of
// a write's event is made once and shared by every v10 stream of the
// Handler that receives it (all v10 sources of one kind subscribe with
// the same options, so they get the same native line; one catching up
// from the log makes its own); status and error lines, and the events of
// a feed page, are made per request.
package fauna
