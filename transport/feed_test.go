package transport

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

type feedBody struct {
	Events  []json.RawMessage `json:"events"`
	Cursor  string            `json:"cursor"`
	HasNext bool              `json:"has_next"`
}

func getFeed(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, feedBody) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var f feedBody
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &f); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
	return resp, f
}

func TestFeedPages(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()

	// Without a cursor the feed starts at the head.
	resp, first := getFeed(t, c, ts.URL+"/feed?collection=spells")
	if resp.StatusCode != 200 || len(first.Events) != 0 || first.HasNext || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("empty feed: %s %+v %s", resp.Status, first, resp.Header.Get("Cache-Control"))
	}
	var txns []txlog.Txn
	for i := range 5 {
		txns = append(txns, commit(t, b, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}, []byte(`{"element":"fire"}`))
		}))
	}
	cursor := first.Cursor
	var got []txlog.Txn
	pages := 0
	for {
		resp, p := getFeed(t, c, ts.URL+"/feed?collection=spells&page_size=2&cursor="+url.QueryEscape(cursor))
		pages++
		for _, e := range p.Events {
			w, err := parseWire(e)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, txlog.Txn(w.Txn))
		}
		if p.HasNext {
			// A full page in the past: cacheable, and it revalidates.
			if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" || resp.Header.Get("ETag") == "" {
				t.Fatalf("a full page is served with %q, etag %q", cc, resp.Header.Get("ETag"))
			}
			again, _ := getFeed(t, c, ts.URL+"/feed?collection=spells&page_size=2&cursor="+url.QueryEscape(cursor), "If-None-Match", resp.Header.Get("ETag"))
			if again.StatusCode != http.StatusNotModified {
				t.Fatalf("revalidation: %s", again.Status)
			}
		}
		cursor = p.Cursor
		if !p.HasNext {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(txns) || pages != 3 {
		t.Fatalf("read %v in %d pages, want %v in 3", got, pages, txns)
	}
}

// Concurrent long-polls wait for the next commit, and share one read.
func TestFeedLongPoll(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h2c")
	defer c.CloseIdleConnections()
	_, head := getFeed(t, c, ts.URL+"/feed?collection=spells")
	u := ts.URL + "/feed?collection=spells&wait=30&cursor=" + url.QueryEscape(head.Cursor)
	const pollers = 8
	var wg sync.WaitGroup
	results := make([]feedBody, pollers)
	bodies := make([]string, pollers)
	for i := range pollers {
		wg.Go(func() {
			resp, f := getFeed(t, c, u)
			results[i] = f
			bodies[i] = resp.Header.Get("ETag")
		})
	}
	// Commit once every poller is waiting in the one collapsed call:
	// polled with a deadline, not a blind sleep.
	srv := ts.Config.Handler.(*Server)
	deadline := time.Now().Add(10 * time.Second)
	for {
		srv.polls.mu.Lock()
		waiting := -1
		for _, call := range srv.polls.calls {
			waiting = call.waiters
		}
		srv.polls.mu.Unlock()
		if waiting == pollers { // the first one waits too
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pollers joined the collapsed call, want %d", waiting, pollers)
		}
		time.Sleep(time.Millisecond)
	}
	txn := commit(t, b, func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "x"}, []byte(`{}`))
	})
	wg.Wait()
	srv.polls.mu.Lock()
	runs := srv.polls.runs
	srv.polls.mu.Unlock()
	if runs != 1 {
		t.Fatalf("%d reads for %d collapsed long-polls, want 1", runs, pollers)
	}
	if st := srv.Stats(); st.FeedPages != 1+pollers || st.FeedCollapsed != pollers-1 {
		t.Fatalf("feed pages %d, collapsed %d; want %d and %d", st.FeedPages, st.FeedCollapsed, 1+pollers, pollers-1)
	}
	for i, f := range results {
		if len(f.Events) != 1 {
			t.Fatalf("poller %d got %d events", i, len(f.Events))
		}
		w, _ := parseWire(f.Events[0])
		if txlog.Txn(w.Txn) != txn || bodies[i] != bodies[0] {
			t.Fatalf("poller %d: txn %d etag %s, want %d %s", i, w.Txn, bodies[i], txn, bodies[0])
		}
	}
}

func TestFeedErrors(t *testing.T) {
	ts, _, _ := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	for q, want := range map[string]int{
		"collection=spells&page_size=5000":            400,
		"collection=spells&wait=forever":              400,
		"collection=spells&wait=3600":                 400,
		"collection=spells&snapshot=true":             400,
		"collection=spells&bogus=1":                   400,
		"collection=potions":                          404,
		"collection=spells&cursor=nope":               410,
		"index=spells_by_element":                     400,
		"collection=spells&cursor=" + foreignCursor(): 410,
	} {
		resp, _ := getFeed(t, c, ts.URL+"/feed?"+q)
		if resp.StatusCode != want {
			t.Errorf("%s: %s, want %d", q, resp.Status, want)
		}
	}
}

func foreignCursor() string { return txlog.Cursor{Log: txlog.NewID()}.String() }
