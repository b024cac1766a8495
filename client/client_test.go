package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// server runs a spells broker behind a transport.Server on loopback,
// speaking HTTP/1.1 and h2c.
func server(t testing.TB, configure func(*transport.Server)) (*httptest.Server, *broker.Broker) {
	t.Helper()
	b, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &transport.Server{Broker: b}
	if configure != nil {
		configure(srv)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	transport.ConfigureServer(ts.Config, srv.MaxStreamsPerConn)
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWindow = 1
		srv.Shutdown(ctx)
		ts.Close()
		b.Close()
	})
	return ts, b
}

func create(t testing.TB, b *broker.Broker, id, element string) txlog.Txn {
	t.Helper()
	txn, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"`+element+`"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	return txn
}

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

// pull reads sub's events on a goroutine: next returns the next one,
// failing the test if none comes within 5 s; stop closes the client and
// waits for the reader.
func pull(t *testing.T, c *Client, sub *Subscription) (next func() subscription.Event, stop func()) {
	events := make(chan subscription.Event)
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for e := range sub.Events() {
			select {
			case events <- e:
			case <-quit:
				return
			}
		}
	}()
	next = func() subscription.Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return subscription.Event{}
	}
	return next, func() { close(quit); c.Close(); <-done }
}
