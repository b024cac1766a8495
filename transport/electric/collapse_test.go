package electric

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
)

// get fetches a shape URL and returns the response, its body read.
func get(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// shapeURL is the endpoint with the query of a shape.
func shapeURL(base string, q url.Values) string { return base + "?" + q.Encode() }

// TestCollapse: 1,000 concurrent identical live long-polls share one read
// (counted) and get the same status, headers and body.
func TestCollapse(t *testing.T) {
	const n = 1000
	s := newTestServer(t, broker.Options{}, nil)
	m := newModel()
	m.commit(t, s.b, "create", "1", `{"element":"fire"}`)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer c.CloseIdleConnections()
	resp, _ := get(t, c, shapeURL(s.url, url.Values{"table": {"spells"}, "offset": {"-1"}}))
	q := url.Values{"table": {"spells"}, "offset": {resp.Header.Get("Electric-Offset")},
		"handle": {resp.Header.Get("Electric-Handle")}, "live": {"true"}, "cursor": {""}}
	u := shapeURL(s.url, q)
	before := s.h.flights.runs.Load()

	type answer struct {
		status int
		header http.Header
		body   []byte
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, body := get(t, c, u)
			answers[i] = answer{resp.StatusCode, resp.Header, body}
		})
	}
	// Every request waits in the one read before the commit that ends it.
	for deadline := time.Now().Add(30 * time.Second); s.h.flights.waiting(liveKeyOf(q, s)) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests waiting", s.h.flights.waiting(liveKeyOf(q, s)), n)
		}
	}
	txn := m.commit(t, s.b, "create", "2", `{"element":"water"}`)
	wg.Wait()

	if runs := s.h.flights.runs.Load() - before; runs != 1 {
		t.Fatalf("%d reads for %d identical requests, want 1", runs, n)
	}
	first := answers[0]
	var msgs []map[string]any
	if first.status != 200 || json.Unmarshal(first.body, &msgs) != nil || len(msgs) != 2 ||
		first.header.Get("Electric-Offset") != (offset{offsetAt, txn}).String() {
		t.Fatalf("the answer: %d %v %s", first.status, first.header, first.body)
	}
	for i, a := range answers {
		for _, h := range []string{"Electric-Handle", "Electric-Offset", "Electric-Cursor", "Electric-Up-To-Date", "Etag", "Cache-Control"} {
			if a.header.Get(h) != first.header.Get(h) {
				t.Fatalf("answer %d: %s %q, answer 0: %q", i, h, a.header.Get(h), first.header.Get(h))
			}
		}
		if a.status != first.status || !bytes.Equal(a.body, first.body) {
			t.Fatalf("answer %d: %d %s, answer 0: %d %s", i, a.status, a.body, first.status, first.body)
		}
	}
}

// liveKeyOf is the flight key of a live request's query.
func liveKeyOf(q url.Values, s *testServer) string {
	r, _ := http.NewRequest(http.MethodGet, "/v1/shape?"+q.Encode(), nil)
	req, err := parseRequest(r, s.b.Schema())
	if err != nil {
		panic(err)
	}
	return liveKey(req, req.offset.txn)
}
