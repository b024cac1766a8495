package txlog

import "time"

// Clock hands out txns: the next is max(now in µs, last+1), so txns are
// strictly increasing even when the wall clock stands still or jumps back.
//
// A Clock is not safe for concurrent use: a log calls it under its append
// lock, which is also what makes txn order equal append order.
type Clock struct {
	now  func() time.Time
	last Txn
}

// NewClock returns a clock that reads the time from now, or from time.Now
// when now is nil. Tests inject a clock that jumps.
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Next returns a txn greater than every txn it returned or observed before.
func (c *Clock) Next() Txn {
	t := Txn(c.now().UnixMicro())
	if t <= c.last {
		t = c.last + 1
	}
	c.last = t
	return t
}

// Observe makes every later Next greater than t. A log calls it on open
// with its last txn, so that the sequence continues upward across restarts
// even if the wall clock went back while it was down.
func (c *Clock) Observe(t Txn) {
	if t > c.last {
		c.last = t
	}
}

// Last returns the last txn handed out or observed.
func (c *Clock) Last() Txn { return c.last }
