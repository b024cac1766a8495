package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/client"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// Read a remote broker with the in-process types: only the receiver of
// Subscribe changes.
func Example() {
	b, _ := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	defer b.Close()
	srv := &transport.Server{Broker: b}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	c := &client.Client{URL: hs.URL}
	defer c.Close()
	sub, _ := c.Subscribe(context.Background(), subscription.Collection("spells"), subscription.Options{})
	n := 0
	for e := range sub.Events() {
		fmt.Println(strings.TrimSpace(e.Type.String() + " " + e.Action))
		if e.Type == subscription.TypeStart {
			b.Commit(context.Background(), func(tx *broker.Tx) error {
				return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{}`))
			})
		}
		if n++; n == 2 {
			break
		}
	}
	// Output:
	// start
	// set add
}
