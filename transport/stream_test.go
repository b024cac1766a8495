package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

// testServer runs a Server for a spells broker on a real socket, speaking
// HTTP/1.1 and unencrypted HTTP/2 (h2c).
func testServer(t testing.TB, configure func(*Server)) (*httptest.Server, *Server, *broker.Broker) {
	t.Helper()
	b := newSpellsBroker(t)
	srv := &Server{Broker: b, AuthorizeWrite: allowWrites}
	if configure != nil {
		configure(srv)
	}
	return serveBroker(t, srv), srv, b
}

// client returns an HTTP client speaking only the given protocol: "h1" or
// "h2c".
func client(proto string) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	if proto == "h2c" {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return &http.Client{Transport: tr}
}

var protocols = []string{"h1", "h2c"}

func commit(t testing.TB, b *broker.Broker, fn func(tx *broker.Tx) error) txlog.Txn {
	t.Helper()
	txn, err := b.Commit(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	return txn
}

// wireEvent is an event as a client decodes it.
type wireEvent struct {
	Type   string          `json:"type"`
	Txn    uint64          `json:"txn"`
	Cursor string          `json:"cursor"`
	Raw    json.RawMessage `json:"event"`
	Event  wireBody        `json:"-"`
}

type wireBody struct {
	Action   string `json:"action"`
	Code     string `json:"code"`
	Cursor   string `json:"cursor"`
	Document struct {
		Ref txlog.Ref `json:"ref"`
	} `json:"document"`
}

// parseWire decodes an event line, and its body where it is an object.
func parseWire(line []byte) (wireEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(line, &w); err != nil {
		return w, err
	}
	if len(w.Raw) > 0 && w.Raw[0] == '{' {
		if err := json.Unmarshal(w.Raw, &w.Event); err != nil {
			return w, err
		}
	}
	return w, nil
}

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

// allowWrites lets every write through.
func allowWrites(*http.Request, *WriteRequest) error { return nil }
