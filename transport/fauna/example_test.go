package fauna_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/fauna"
	"github.com/tidings/tidings/txlog"
)

// A Fauna v4 document stream, as the faunadb drivers open it: POST /stream
// with the FQL wire JSON of Ref(Collection("spells"), "1").
func Example() {
	b, _ := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	defer b.Close()
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(ref, []byte(`{"name":"Fire Beak","element":"fire"}`))
	})

	// The front owns the root of its origin: its own server. A real one
	// enables h2c and calls transport.ConfigureServer (see the package doc).
	ts := httptest.NewServer(&fauna.Handler{Server: &transport.Server{Broker: b}})
	defer ts.Close()

	resp, err := http.Post(ts.URL+"/stream?fields=action,document,diff", "",
		strings.NewReader(`{"ref":{"collection":"spells"},"id":"1"}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewReader(resp.Body)
	start, _ := lines.ReadString('\n')
	fmt.Println(strings.HasPrefix(start, `{"type":"start","txn":`))

	b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Update(ref, []byte(`{"cost":10}`))
	})
	line, _ := lines.ReadString('\n')
	var e struct {
		Type  string
		Event struct {
			Action   string
			Document struct {
				Ref  map[string]any
				Data json.RawMessage
			}
			Diff struct{ Data json.RawMessage }
		}
	}
	json.Unmarshal([]byte(line), &e)
	fmt.Println(e.Type, e.Event.Action, string(e.Event.Document.Data), string(e.Event.Diff.Data))
	_, tagged := e.Event.Document.Ref["@ref"]
	fmt.Println("ref tagged:", tagged)
	// Output:
	// true
	// version update {"name":"Fire Beak","element":"fire","cost":10} {"cost":10}
	// ref tagged: true
}
