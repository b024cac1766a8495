// Package client subscribes to a tidings server over HTTP: the same
// targets, options and events as the in-process broker, read with a Go
// iterator, resumed by itself from the last cursor after any break, and
// spread over as many connections as the server's stream limit needs.
//
// A Client reads the NDJSON stream by default, or Server-Sent Events with
// SSE set. After a network error, an end of the body, or an error event
// shutting_down or stream_lifetime, it reconnects from the last cursor
// with a jittered, growing delay (a server's Retry-After wins), and
// delivers no event twice. history_unavailable ends the stream with a
// *StreamError for which errors.Is(err, txlog.ErrHistoryUnavailable)
// holds: subscribe again with a snapshot. When the server answers 429
// too_many_streams, the client learns that connection's limit and opens
// another, so any number of subscriptions simply work.
package client
