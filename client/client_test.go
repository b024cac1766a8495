package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// The client's stream survives the server ending it (MaxLifetime) again
// and again, and delivers every commit once, in order.
func TestResumesAcrossLifetimes(t *testing.T) {
	for _, mode := range []struct{ h2c, sse bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("h2c=%v,sse=%v", mode.h2c, mode.sse), func(t *testing.T) {
			ts, b := server(t, func(s *transport.Server) { s.MaxLifetime = 30 * time.Millisecond })
			c := &Client{URL: ts.URL, H2C: mode.h2c, SSE: mode.sse, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
			defer c.Close()
			fire, _ := subscription.Match("spells_by_element", "fire")
			sub, err := c.Subscribe(context.Background(), fire, subscription.Options{})
			if err != nil {
				t.Fatal(err)
			}
			const n = 40
			var want []txlog.Txn
			committed := make(chan struct{})
			var got []txlog.Txn
			first := true
			for e := range sub.Events() {
				if first {
					if e.Type != subscription.TypeStart {
						t.Fatalf("first event %s", e.JSON)
					}
					first = false
					go func() {
						defer close(committed)
						for i := range n {
							want = append(want, create(t, b, fmt.Sprint(i), "fire"))
							time.Sleep(2 * time.Millisecond) // spread the commits over several lifetimes
						}
					}()
					continue
				}
				if e.Type != subscription.TypeSet {
					continue
				}
				got = append(got, e.Txn)
				if len(got) == n {
					break
				}
			}
			<-committed
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

func TestHistoryUnavailableIsTyped(t *testing.T) {
	ts, _ := server(t, nil)
	c := &Client{URL: ts.URL}
	defer c.Close()
	sub, err := c.Subscribe(context.Background(), subscription.Collection("spells"),
		subscription.Options{Cursor: txlog.Cursor{Log: txlog.NewID()}.String()})
	if err != nil {
		t.Fatal(err)
	}
	for e := range sub.Events() {
		t.Fatalf("an event from a foreign cursor: %s", e.JSON)
	}
	if !errors.Is(sub.Err(), txlog.ErrHistoryUnavailable) {
		t.Fatalf("Err() = %v", sub.Err())
	}
}
