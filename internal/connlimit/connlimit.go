// Package connlimit counts the streams and subscriptions open on each
// client connection, so that every front (the native transport, the Fauna
// front) served by one http.Server holds a connection to the same limits
// and refuses the stream beyond them at once.
package connlimit

import (
	"context"
	"sync/atomic"
)

type key struct{}

// Counter counts the streams open on one client connection, and their
// subscriptions.
type Counter struct{ streams, subs atomic.Int32 }

// With returns ctx carrying a new Counter: an http.Server's ConnContext
// calls it once per connection.
func With(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, &Counter{})
}

// From returns the connection's Counter, or nil on a server not set up
// with With (then there is no limit).
func From(ctx context.Context) *Counter {
	c, _ := ctx.Value(key{}).(*Counter)
	return c
}

// Streams returns the streams open on the connection now; 0 for a nil
// Counter.
func (c *Counter) Streams() int {
	if c == nil {
		return 0
	}
	return int(c.streams.Load())
}

// Refusal says which limit a stream would pass.
type Refusal uint8

// The limits Acquire enforces.
const (
	Accepted       Refusal = iota
	TooManyStreams         // the connection has maxStreams streams open
	TooManySubs            // the stream would take it past maxSubs subscriptions
)

// Acquire counts a stream of subs subscriptions on the connection, unless
// that would pass maxStreams streams or maxSubs subscriptions. When it
// returns Accepted, release must be called when the stream ends; subsNow is
// the subscriptions the connection would hold (for the refusal's text).
// A nil Counter accepts everything.
func (c *Counter) Acquire(maxStreams, subs, maxSubs int) (release func(), subsNow int, r Refusal) {
	if c == nil {
		return func() {}, 0, Accepted
	}
	if c.streams.Add(1) > int32(maxStreams) {
		c.streams.Add(-1)
		return nil, 0, TooManyStreams
	}
	if n := c.subs.Add(int32(subs)); n > int32(maxSubs) {
		c.subs.Add(-int32(subs))
		c.streams.Add(-1)
		return nil, int(n), TooManySubs
	}
	return func() { c.subs.Add(-int32(subs)); c.streams.Add(-1) }, 0, Accepted
}
