package transport

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

// wrapped is a middleware's ResponseWriter: it hides Flush and the
// deadlines, and reaches them through Unwrap, as http.ResponseController
// expects.
type wrapped struct {
	http.ResponseWriter
	writes int
}

func (w *wrapped) Write(b []byte) (int, error) { w.writes++; return w.ResponseWriter.Write(b) }
func (w *wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Mounted under a prefix of an existing mux, behind a middleware that wraps
// the ResponseWriter, over HTTP/2 with TLS: the stream is flushed event by
// event all the same.
func TestMountedBehindMiddlewareOverTLS(t *testing.T) {
	_, srv, b := testServer(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/api/tidings/", http.StripPrefix("/api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(&wrapped{ResponseWriter: w}, r)
	})))
	ts := httptest.NewUnstartedServer(mux)
	ts.EnableHTTP2 = true
	ConfigureServer(ts.Config, 0)
	ts.StartTLS()
	defer ts.Close()
	c := ts.Client()
	defer c.CloseIdleConnections()

	resp, err := c.Post(ts.URL+"/api/tidings/stream", "application/json", strings.NewReader(`{"collection":"spells"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.TLS == nil {
		t.Fatalf("%s over HTTP/%d, TLS %v", resp.Status, resp.ProtoMajor, resp.TLS != nil)
	}
	r := bufio.NewReader(resp.Body)
	if l, err := r.ReadString('\n'); err != nil || !strings.Contains(l, `"type":"start"`) {
		t.Fatalf("%q %v", l, err)
	}
	// Nothing more is written until this commit: the event arriving proves
	// the flush went through the wrapper.
	txn := commit(t, b, func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{}`))
	})
	l, err := r.ReadString('\n')
	w, perr := parseWire([]byte(l))
	if err != nil || perr != nil || w.Type != "set" || w.Txn != uint64(txn) {
		t.Fatalf("%q %v %v", l, err, perr)
	}
}
