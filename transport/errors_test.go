package transport

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tidings/tidings/txlog"
)

func TestErrorResponses(t *testing.T) {
	foreign := txlog.Cursor{Log: txlog.NewID()}.String()
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			ts, _, b := testServer(t, nil)
			c := client(proto)
			defer c.CloseIdleConnections()
			createSpell(t, b, "1", "fire")
			beyond := txlog.Cursor{Log: b.LogID(), Pos: txlog.AfterTxn(b.Head() + 1000)}.String()
			q := url.QueryEscape
			cases := []struct {
				name, method, path, body string
				header                   http.Header
				status                   int
				code                     string
			}{
				{"malformed JSON", "POST", "/stream", `{"collection":`, nil, 400, CodeInvalidRequest},
				{"not an object", "POST", "/stream", `["spells"]`, nil, 400, CodeInvalidRequest},
				{"empty body", "POST", "/stream", ``, nil, 400, CodeInvalidRequest},
				{"two JSON values", "POST", "/stream", `{"collection":"spells"} {}`, nil, 400, CodeInvalidRequest},
				{"unknown field", "POST", "/stream", `{"collection":"spells","colour":"red"}`, nil, 400, CodeInvalidRequest},
				{"no target", "POST", "/stream", `{}`, nil, 400, CodeInvalidRequest},
				{"only options", "POST", "/stream", `{"snapshot":true,"fields":["diff"]}`, nil, 400, CodeInvalidRequest},
				{"two targets", "POST", "/stream", `{"collection":"spells","index":"spells_by_element","terms":["fire"]}`, nil, 400, CodeInvalidRequest},
				{"collection and document", "POST", "/stream", `{"collection":"spells","document":{"collection":"spells","id":"1"}}`, nil, 400, CodeInvalidRequest},
				{"terms without index", "POST", "/stream", `{"collection":"spells","terms":["fire"]}`, nil, 400, CodeInvalidRequest},
				{"document without id", "POST", "/stream", `{"document":{"collection":"spells"}}`, nil, 400, CodeInvalidRequest},
				{"unknown field name", "POST", "/stream", `{"collection":"spells","fields":["colour"]}`, nil, 400, CodeInvalidRequest},
				{"unknown field in query", "POST", "/stream?fields=colour", `{"collection":"spells"}`, nil, 400, CodeInvalidRequest},
				{"page size", "POST", "/stream", `{"collection":"spells","snapshot":true,"page_size":-1}`, nil, 400, CodeInvalidRequest},
				{"wrong type", "POST", "/stream", `{"collection":1}`, nil, 400, CodeInvalidRequest},
				{"unknown collection", "POST", "/stream", `{"collection":"potions"}`, nil, 404, CodeNotFound},
				{"unknown index", "POST", "/stream", `{"index":"potions_by_colour","terms":["red"]}`, nil, 404, CodeNotFound},
				{"document of unknown collection", "POST", "/stream", `{"document":{"collection":"potions","id":"1"}}`, nil, 404, CodeNotFound},
				{"too many terms", "POST", "/stream", `{"index":"spells_by_element","terms":["fire","water"]}`, nil, 400, CodeInvalidRequest},
				{"too few terms", "POST", "/stream", `{"index":"spells_by_element"}`, nil, 400, CodeInvalidRequest},
				{"missing document", "POST", "/stream", `{"document":{"collection":"spells","id":"404"}}`, nil, 404, CodeNotFound},
				{"bad cursor", "POST", "/stream", `{"collection":"spells","cursor":"not-a-cursor"}`, nil, 410, CodeHistoryUnavailable},
				{"foreign cursor", "POST", "/stream", `{"collection":"spells","cursor":"` + foreign + `"}`, nil, 410, CodeHistoryUnavailable},
				{"foreign cursor, document", "POST", "/stream", `{"document":{"collection":"spells","id":"1"},"cursor":"` + foreign + `"}`, nil, 410, CodeHistoryUnavailable},
				{"cursor beyond the head", "POST", "/stream", `{"collection":"spells","cursor":"` + beyond + `"}`, nil, 410, CodeHistoryUnavailable},
				{"GET a stream", "GET", "/stream", ``, nil, 405, CodeInvalidRequest},
				{"PUT a stream", "PUT", "/stream", `{"collection":"spells"}`, nil, 405, CodeInvalidRequest},
				{"no such endpoint", "GET", "/nowhere", ``, nil, 404, CodeNotFound},

				{"SSE unknown parameter", "GET", "/sse?collection=spells&colour=red", ``, nil, 400, CodeInvalidRequest},
				{"SSE repeated parameter", "GET", "/sse?collection=spells&collection=spells", ``, nil, 400, CodeInvalidRequest},
				{"SSE no target", "GET", "/sse", ``, nil, 400, CodeInvalidRequest},
				{"SSE two targets", "GET", "/sse?collection=spells&index=spells_by_element&terms=" + q(`["fire"]`), ``, nil, 400, CodeInvalidRequest},
				{"SSE terms not JSON", "GET", "/sse?index=spells_by_element&terms=fire", ``, nil, 400, CodeInvalidRequest},
				{"SSE bad boolean", "GET", "/sse?collection=spells&snapshot=maybe", ``, nil, 400, CodeInvalidRequest},
				{"SSE bad page size", "GET", "/sse?collection=spells&page_size=many", ``, nil, 400, CodeInvalidRequest},
				{"SSE unknown field", "GET", "/sse?collection=spells&fields=colour", ``, nil, 400, CodeInvalidRequest},
				{"SSE unknown collection", "GET", "/sse?collection=potions", ``, nil, 404, CodeNotFound},
				{"SSE unknown index", "GET", "/sse?index=potions&terms=" + q(`["x"]`), ``, nil, 404, CodeNotFound},
				{"SSE wrong number of terms", "GET", "/sse?index=spells_by_element&terms=" + q(`["fire",1]`), ``, nil, 400, CodeInvalidRequest},
				{"SSE missing document", "GET", "/sse?collection=spells&id=404", ``, nil, 404, CodeNotFound},
				{"SSE bad cursor", "GET", "/sse?collection=spells&cursor=xyz", ``, nil, 410, CodeHistoryUnavailable},
				{"SSE foreign cursor", "GET", "/sse?collection=spells&cursor=" + foreign, ``, nil, 410, CodeHistoryUnavailable},
				{"SSE bad Last-Event-ID", "GET", "/sse?collection=spells", ``, http.Header{"Last-Event-Id": {"xyz"}}, 410, CodeHistoryUnavailable},
				{"SSE foreign Last-Event-ID", "GET", "/sse?collection=spells", ``, http.Header{"Last-Event-Id": {foreign}}, 410, CodeHistoryUnavailable},
				{"SSE POST", "POST", "/sse?collection=spells", `{}`, nil, 405, CodeInvalidRequest},

				{"write create of an existing document", "POST", "/write", `{"writes":[{"action":"create","collection":"spells","id":"1","data":{}}]}`, nil, 409, CodeConflict},
				{"write update of a missing document", "POST", "/write", `{"writes":[{"action":"update","collection":"spells","id":"404","data":{}}]}`, nil, 404, CodeNotFound},
				{"write delete of a missing document", "POST", "/write", `{"writes":[{"action":"delete","collection":"spells","id":"404"}]}`, nil, 404, CodeNotFound},
				{"write to an unknown collection", "POST", "/write", `{"writes":[{"action":"create","collection":"potions","id":"1","data":{}}]}`, nil, 404, CodeNotFound},
				{"write data not an object", "POST", "/write", `{"writes":[{"action":"create","collection":"spells","id":"2","data":[1,2]}]}`, nil, 400, CodeInvalidRequest},
				{"write data a string", "POST", "/write", `{"writes":[{"action":"upsert","collection":"spells","id":"2","data":"fire"}]}`, nil, 400, CodeInvalidRequest},
				{"write without data", "POST", "/write", `{"writes":[{"action":"create","collection":"spells","id":"2"}]}`, nil, 400, CodeInvalidRequest},
				{"write unknown action", "POST", "/write", `{"writes":[{"action":"explode","collection":"spells","id":"1"}]}`, nil, 400, CodeInvalidRequest},
				{"write no writes", "POST", "/write", `{"writes":[]}`, nil, 400, CodeInvalidRequest},
				{"write unknown field", "POST", "/write", `{"writes":[],"atomic":true}`, nil, 400, CodeInvalidRequest},
				{"write malformed", "POST", "/write", `{"writes":[`, nil, 400, CodeInvalidRequest},
				{"write GET", "GET", "/write", ``, nil, 405, CodeInvalidRequest},
			}
			head := b.Head()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					h := tc.header
					if tc.body != "" {
						h = h.Clone()
						if h == nil {
							h = http.Header{}
						}
						h.Set("Content-Type", "application/json")
					}
					resp := do(t, c, tc.method, ts.URL+tc.path, tc.body, h)
					if tc.status == 405 && resp.Header.Get("Allow") == "" {
						t.Errorf("405 without Allow")
					}
					checkError(t, resp, tc.status, tc.code)
				})
			}
			// A transaction that fails commits nothing: the second write of
			// this one fails, and the first is not there either.
			resp := do(t, c, "POST", ts.URL+"/write", `{"writes":[{"action":"create","collection":"spells","id":"9","data":{}},{"action":"create","collection":"spells","id":"1","data":{}}]}`, nil)
			checkError(t, resp, 409, CodeConflict)
			if _, ok := b.Get(txlog.Ref{Collection: "spells", ID: "9"}); ok || b.Head() != head {
				t.Fatalf("a failed write request committed something: head %d, was %d", b.Head(), head)
			}
			// And one that succeeds answers its txn.
			resp = do(t, c, "POST", ts.URL+"/write", `{"writes":[{"action":"update","collection":"spells","id":"1","data":{"element":"water"}}]}`, nil)
			defer resp.Body.Close()
			var ok struct{ Txn uint64 }
			if err := json.NewDecoder(resp.Body).Decode(&ok); err != nil || resp.StatusCode != 200 ||
				ok.Txn != uint64(b.Head()) || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("write: %s %v txn %d, head %d", resp.Status, err, ok.Txn, b.Head())
			}
		})
	}
}

func TestErrorBodyTooLarge(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			ts, _, _ := testServer(t, func(s *Server) { s.MaxBodyBytes = 64 })
			c := client(proto)
			defer c.CloseIdleConnections()
			long := strings.Repeat("x", 200)
			for _, tc := range []struct{ name, path, body string }{
				{"stream", "/stream", `{"collection":"spells","cursor":"` + long + `"}`},
				{"stream, trailing space", "/stream", `{"collection":"spells"}` + strings.Repeat(" ", 200)},
				{"stream, long fields", "/stream", `{"collection":"spells","fields":["` + long + `"]}`},
				{"write", "/write", `{"writes":[{"action":"create","collection":"spells","id":"` + long + `","data":{}}]}`},
				{"write, trailing space", "/write", `{"writes":[{"action":"delete","collection":"spells","id":"1"}]}` + strings.Repeat(" ", 200)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp := do(t, c, "POST", ts.URL+tc.path, tc.body, http.Header{"Content-Type": {"application/json"}})
					checkError(t, resp, http.StatusRequestEntityTooLarge, CodeBodyTooLarge)
				})
			}
			// Within the limit, it is served.
			resp := do(t, c, "POST", ts.URL+"/stream", `{"collection":"spells"}`, nil)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("a small body: %s", resp.Status)
			}
		})
	}
}

func TestErrorShuttingDown(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			t.Run("server", func(t *testing.T) {
				ts, srv, _ := testServer(t, nil)
				c := client(proto)
				defer c.CloseIdleConnections()
				if err := srv.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				for _, r := range []struct{ method, path, body string }{
					{"POST", "/stream", `{"collection":"spells"}`},
					{"GET", "/sse?collection=spells", ``},
				} {
					resp := do(t, c, r.method, ts.URL+r.path, r.body, nil)
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("%s: 503 without Retry-After", r.path)
					}
					checkError(t, resp, http.StatusServiceUnavailable, CodeShuttingDown)
				}
			})
			t.Run("broker", func(t *testing.T) {
				ts, _, b := testServer(t, nil)
				c := client(proto)
				defer c.CloseIdleConnections()
				b.Close()
				for _, r := range []struct{ method, path, body string }{
					{"POST", "/stream", `{"collection":"spells"}`},
					{"GET", "/sse?collection=spells", ``},
					{"POST", "/write", `{"writes":[{"action":"create","collection":"spells","id":"1","data":{}}]}`},
				} {
					resp := do(t, c, r.method, ts.URL+r.path, r.body, nil)
					checkError(t, resp, http.StatusServiceUnavailable, CodeShuttingDown)
				}
			})
		})
	}
}
