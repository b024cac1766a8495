package transport

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
)

type connKey struct{}

// connStreams counts the streams open on one client connection.
type connStreams struct{ n atomic.Int32 }

// ConfigureServer prepares srv so that a Server mounted on it can hold each
// client connection to maxStreamsPerConn streams and answer the next one at
// once with 429 too_many_streams.
//
// It tags every connection with a stream counter (srv.ConnContext, chained
// with any already set), and makes HTTP/2 advertise more concurrent streams
// than the limit: a server that advertised exactly the limit could never
// see the extra stream, since well-behaved clients never send it and
// simply wait, which is the silent hang to avoid.
func ConfigureServer(srv *http.Server, maxStreamsPerConn int) {
	if maxStreamsPerConn <= 0 {
		maxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		return context.WithValue(ctx, connKey{}, &connStreams{})
	}
	if srv.HTTP2 == nil {
		srv.HTTP2 = &http.HTTP2Config{}
	}
	if want := 2 * maxStreamsPerConn; srv.HTTP2.MaxConcurrentStreams < want {
		srv.HTTP2.MaxConcurrentStreams = want
	}
}

// acquire counts a stream on r's connection. It returns false when the
// connection is at max; release must be called when the stream ends. On a
// server not set up with ConfigureServer there is no counter and no limit.
func acquire(r *http.Request, max int) (release func(), ok bool) {
	c, _ := r.Context().Value(connKey{}).(*connStreams)
	if c == nil {
		return func() {}, true
	}
	if c.n.Add(1) > int32(max) {
		c.n.Add(-1)
		return nil, false
	}
	return func() { c.n.Add(-1) }, true
}
