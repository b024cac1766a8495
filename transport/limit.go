package transport

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/tidings/tidings/internal/connlimit"
)

// Deadlines ConfigureServer sets where the server has none.
const (
	// DefaultReadHeaderTimeout bounds the time to read a request's
	// headers: a client that trickles them is cut off.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a connection with no request in flight
	// (no stream open) after this long.
	DefaultIdleTimeout = 2 * time.Minute
)

// ConfigureServer prepares srv so that a Server mounted on it can hold each
// client connection to maxStreamsPerConn streams and answer the next one at
// once with 429 too_many_streams.
//
// It tags every connection with a stream counter (srv.ConnContext, chained
// with any already set), and makes HTTP/2 advertise more concurrent streams
// than the limit: a server that advertised exactly the limit could never
// see the extra stream, since well-behaved clients never send it and
// simply wait, which is the silent hang to avoid.
//
// It also sets the deadlines a public server needs where srv has none:
// ReadHeaderTimeout (DefaultReadHeaderTimeout) and IdleTimeout
// (DefaultIdleTimeout). It leaves ReadTimeout and WriteTimeout alone, and
// they should stay 0: on a connection with a stream they would end the
// stream when they pass. Request bodies are bounded by Server.BodyTimeout
// instead, and each write of a stream by Server.WriteTimeout.
func ConfigureServer(srv *http.Server, maxStreamsPerConn int) {
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = DefaultIdleTimeout
	}
	if maxStreamsPerConn <= 0 {
		maxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		return connlimit.With(ctx)
	}
	if srv.HTTP2 == nil {
		srv.HTTP2 = &http.HTTP2Config{}
	}
	if want := 2 * maxStreamsPerConn; srv.HTTP2.MaxConcurrentStreams < want {
		srv.HTTP2.MaxConcurrentStreams = want
	}
}

// acquire counts a stream of subs subscriptions on r's connection. It
// returns the refusal (429) when the connection is at maxStreams streams,
// or the stream would take it past maxSubs subscriptions; otherwise
// release must be called when the stream ends. On a server not set up with
// ConfigureServer there is no counter and no limit.
func acquire(r *http.Request, maxStreams, subs, maxSubs int) (release func(), refused *Error) {
	release, n, refusal := connlimit.From(r.Context()).Acquire(maxStreams, subs, maxSubs)
	switch refusal {
	case connlimit.TooManyStreams:
		return nil, &Error{http.StatusTooManyRequests, CodeTooManyStreams,
			fmt.Sprintf("this connection has %d streams open already; open another connection", maxStreams)}
	case connlimit.TooManySubs:
		return nil, &Error{http.StatusTooManyRequests, CodeTooManySubscriptions,
			fmt.Sprintf("this connection would hold %d subscriptions, more than %d; open another connection", n, maxSubs)}
	}
	return release, nil
}
