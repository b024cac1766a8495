package fauna_test

import (
	"bufio"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/fauna"
	"github.com/tidings/tidings/txlog"
)

// TestLinesShared: ten streams of one set with the same fields receive a
// write's event, and its Fauna line is made once.
func TestLinesShared(t *testing.T) {
	b, err := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &fauna.Handler{Server: &transport.Server{Broker: b}}
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer b.Close()
	var readers []*bufio.Reader
	for range 10 {
		resp := post(t, ts.URL+"/stream?fields=action,document,index", `{"documents":{"collection":"spells"}}`, "")
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		if l, err := r.ReadString('\n'); err != nil || !strings.Contains(l, `"start"`) {
			t.Fatalf("%q %v", l, err)
		}
		readers = append(readers, r)
	}
	if _, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{}`))
	}); err != nil {
		t.Fatal(err)
	}
	var first string
	for i, r := range readers {
		l, err := r.ReadString('\n')
		if err != nil || !strings.Contains(l, `"add"`) || (i > 0 && l != first) {
			t.Fatalf("stream %d: %q %v", i, l, err)
		}
		first = l
	}
	if n := fauna.SharedLines(h); n != 1 {
		t.Fatalf("%d Fauna lines made for one event", n)
	}
}

// TestV10LinesShared: ten v10 streams of one token receive a write's
// event, and its v10 line is made once.
func TestV10LinesShared(t *testing.T) {
	b, h, ts := v10Server(t)
	tok, err := h.Token(subscription.Collection("spells"))
	if err != nil {
		t.Fatal(err)
	}
	var nexts []func() v10Event
	for range 10 {
		next, stop := v10Stream(t, ts.URL, `{"token":"`+tok+`"}`)
		defer stop()
		if e := next(); e.Type != "status" {
			t.Fatalf("start: %+v", e)
		}
		nexts = append(nexts, next)
	}
	// Every v10 stream starts from a cursor, the token's, and so catches
	// up from the log, with events of its own, until it is live; once all
	// are live, a write's line is made once.
	for i := range 5 {
		made := fauna.SharedV10Lines(h)
		created := commit10(t, b, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: string(rune('a' + i))}, []byte(`{"name":"Blaze"}`))
		})
		for j, next := range nexts {
			if e := next(); e.Type != "add" || e.TxnTS != uint64(created) || e.Data.Doc["name"] != "Blaze" {
				t.Fatalf("stream %d: %+v", j, e)
			}
		}
		if fauna.SharedV10Lines(h)-made == 1 {
			return
		}
	}
	t.Fatal("no write of five had its v10 line made once for ten streams")
}
