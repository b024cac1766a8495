package transport_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// Mount a Server under a prefix of your mux, and read an NDJSON stream.
func Example() {
	b, _ := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	defer b.Close()
	srv := &transport.Server{Broker: b}
	mux := http.NewServeMux()
	mux.Handle("/tidings/", srv)
	hs := httptest.NewUnstartedServer(mux)
	transport.ConfigureServer(hs.Config, 100) // the 101st stream of a connection gets 429
	hs.Start()
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	resp, err := http.Post(hs.URL+"/tidings/stream", "application/json", strings.NewReader(`{"collection":"spells"}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	lines.Scan()
	fmt.Println(resp.Header.Get("Content-Type"), strings.HasPrefix(lines.Text(), `{"type":"start"`))

	b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{"name":"Fire Beak"}`))
	})
	lines.Scan()
	fmt.Println(strings.Contains(lines.Text(), `"action":"add"`))
	// Output:
	// application/x-ndjson true
	// true
}

// With Detach, an HTTP/1.1 stream leaves net/http once it has started:
// its response is chunked and ends with the connection, and the broker's
// delivery workers write it, so that an idle stream holds no goroutine.
func ExampleServer_detach() {
	b, _ := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	defer b.Close()
	srv := &transport.Server{Broker: b, Detach: true}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background()) // ends detached streams too

	resp, err := http.Get(hs.URL + "/sse?collection=spells")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"), resp.TransferEncoding, resp.Close)
	b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{"name":"Fire Beak"}`))
	})
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "event: set") {
			fmt.Println(lines.Text())
			break
		}
	}
	// Output:
	// text/event-stream [chunked] true
	// event: set
}
