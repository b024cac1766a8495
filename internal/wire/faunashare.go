package wire

import "sync"

// FaunaLines shares the Fauna v4 line of an event (AppendFaunaV4 and its
// \r\n) among the subscribers that receive it, so that it is made once
// per write and field set, as the native line is. The broker hands the
// same native bytes, freshly allocated and never reused, to every
// subscriber of a write with the same fields; those bytes name the event.
// A cached entry holds them, so their address cannot be reused while it
// is cached. The zero value is ready to use; the newest
// DefaultFaunaLines events are kept.
type FaunaLines struct {
	mu   sync.Mutex
	m    map[faunaKey][]byte
	ring []faunaKey
	next int
}

// DefaultFaunaLines is the number of events a FaunaLines keeps: enough
// for the writes in flight to every subscriber of a busy broker.
const DefaultFaunaLines = 4096

type faunaKey struct {
	p       *byte
	n       int
	variant string
}

// Line returns the Fauna v4 line of the native event line native, ending
// in \r\n, for a stream of the given Documents collection ("" for any
// other). The bytes are shared: the caller must not modify them.
func (c *FaunaLines) Line(native []byte, collection string) ([]byte, error) {
	return c.Shared(native, collection, func(native []byte) ([]byte, error) {
		line, err := AppendFaunaV4(nil, native, collection)
		return append(line, '\r', '\n'), err
	})
}

// Shared returns the line build makes of native, made once per event
// and variant and shared as Line's are. A FaunaLines is for one wire
// shape: Line's and another build's lines must not share one.
func (c *FaunaLines) Shared(native []byte, variant string, build func(native []byte) ([]byte, error)) ([]byte, error) {
	if len(native) == 0 {
		return nil, ErrNoFaunaForm
	}
	k := faunaKey{&native[0], len(native), variant}
	c.mu.Lock()
	line, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return line, nil
	}
	// Made outside the lock: two subscribers may both make it, once.
	line, err := build(native)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[faunaKey][]byte)
		c.ring = make([]faunaKey, DefaultFaunaLines)
	}
	if _, ok := c.m[k]; !ok {
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = k
		c.next = (c.next + 1) % len(c.ring)
		c.m[k] = line
	}
	return c.m[k], nil
}

// Len returns the number of events kept.
func (c *FaunaLines) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
