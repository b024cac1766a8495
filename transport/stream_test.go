package transport

import (
	"bufio"
	"fmt"
	"strings"
	"testing"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

func TestNDJSONStream(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			ts, _, b := testServer(t, nil)
			c := client(proto)
			defer c.CloseIdleConnections()
			resp, err := c.Post(ts.URL+"/stream", "application/json", strings.NewReader(`{"index":"spells_by_element","terms":["fire"]}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if want := map[string]int{"h1": 1, "h2c": 2}[proto]; resp.ProtoMajor != want {
				t.Fatalf("spoke HTTP/%d, want %d", resp.ProtoMajor, want)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
			}
			r := bufio.NewReader(resp.Body)
			line := func() wireEvent { return readNDJSON(t, r) }
			if w := line(); w.Type != "start" {
				t.Fatalf("first event %+v", w)
			}
			txn := commit(t, b, func(tx *broker.Tx) error {
				return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{"element":"fire"}`))
			})
			if w := line(); w.Type != "set" || w.Event.Action != "add" || w.Txn != uint64(txn) || w.Cursor == "" {
				t.Fatalf("event %+v", w)
			}
		})
	}
}

func TestSSEStream(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			ts, _, b := testServer(t, nil)
			c := client(proto)
			defer c.CloseIdleConnections()
			resp, err := c.Get(ts.URL + "/sse?collection=spells")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
			}
			r := bufio.NewReader(resp.Body)
			block := func() string {
				t.Helper()
				var sb strings.Builder
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if l == "\n" {
						return sb.String()
					}
					sb.WriteString(l)
				}
			}
			if got := block(); !strings.HasPrefix(got, "retry: 2000\nid: ") || !strings.Contains(got, "event: start\ndata: {\"type\":\"start\"") {
				t.Fatalf("retry and start %q", got)
			}
			txn := commit(t, b, func(tx *broker.Tx) error {
				return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{"element":"fire"}`))
			})
			got := block()
			if !strings.Contains(got, "event: set\n") || !strings.Contains(got, fmt.Sprintf(`"txn":%d`, txn)) {
				t.Fatalf("event %q", got)
			}
		})
	}
}
