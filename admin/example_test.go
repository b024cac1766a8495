package admin_test

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/tidings/tidings/admin"
	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
)

// Mount the view next to the transport, behind a check of the
// application's own: here, that the client is on this machine.
func Example() {
	b, _ := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	defer b.Close()
	srv := &transport.Server{Broker: b}
	view := &admin.Handler{Broker: b, Transport: srv}

	mux := http.NewServeMux()
	mux.Handle("/tidings/", srv)
	mux.Handle("/admin/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		view.ServeHTTP(w, r)
	}))
	_ = mux // http.ListenAndServe("localhost:8080", mux)

	// The same figures in Go, as GET /admin/?format=json has them.
	sub, _ := b.Subscribe(context.Background(), subscription.Collection("spells"), subscription.Options{})
	defer sub.Close()
	rep := view.Report(admin.DefaultLimit)
	fmt.Println(rep.Total, rep.Streams, rep.Subscriptions[0].Target, rep.Subscriptions[0].Stream == nil)
	// Output:
	// 1 0 Documents(Collection("spells")) true
}
