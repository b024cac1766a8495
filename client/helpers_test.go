package client

import (
	"context"
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

// Helpers that the tests of several files use: a server to talk to,
// commits, and reading a subscription. A helper that one file's tests use
// stays in that file.

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

// create commits a spell of the given element, failing the test on an
// error.
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
