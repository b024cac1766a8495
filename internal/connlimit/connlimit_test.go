package connlimit

import (
	"context"
	"testing"
)

func TestAcquire(t *testing.T) {
	c := From(With(context.Background()))
	rel1, _, r := c.Acquire(2, 1, 10)
	if r != Accepted {
		t.Fatal(r)
	}
	rel2, _, r := c.Acquire(2, 1, 10)
	if r != Accepted {
		t.Fatal(r)
	}
	if _, _, r := c.Acquire(2, 1, 10); r != TooManyStreams {
		t.Fatalf("third stream: %d", r)
	}
	rel2()
	if _, n, r := c.Acquire(2, 10, 10); r != TooManySubs || n != 11 {
		t.Fatalf("subscriptions: %d %d", r, n)
	}
	rel1()
	if c.streams.Load() != 0 || c.subs.Load() != 0 {
		t.Fatal("not released")
	}
	var none *Counter
	if _, _, r := none.Acquire(0, 1, 0); r != Accepted {
		t.Fatal("a nil counter refused")
	}
}
