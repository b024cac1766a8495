package fauna_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/nodetest"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/fauna"
	"github.com/tidings/tidings/txlog"
)

// The secret the test's Authorize hook accepts.
const secret = "secret"

// httpModes are the ways the drivers reach the server: HTTP/2 without
// TLS (h2c, the Node drivers' default on http://), HTTP/1.1 (the drivers
// given a fetch implementation) and HTTP/2 over TLS (on https://). The
// scripts read the mode from FAUNA_HTTP.
var httpModes = []string{"h2c", "fetch", "tls"}

// testServer is the Fauna front on a real server for the driver tests.
type testServer struct {
	b      *broker.Broker
	h      *fauna.Handler
	ts     *httptest.Server
	mode   string
	port   string
	caFile string // the server's certificate, for Node to trust (tls)

	mu      sync.Mutex
	protos  map[string]int  // "HTTP/2.0 tls" → requests seen
	headers map[string]bool // the names of the headers the driver sent
}

// spellsServer serves a broker with the spells schema through the Fauna
// front on a real server in the given mode, set up with
// transport.ConfigureServer.
func spellsServer(t *testing.T, mode string) *testServer {
	t.Helper()
	return spellsServerWrap(t, mode, func(h http.Handler) http.Handler { return h })
}

// spellsServerWrap is spellsServer with the Handler wrapped.
func spellsServerWrap(t *testing.T, mode string, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	b, err := broker.New(broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{
			{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}},
			{Name: "all_spells", Collection: "spells"},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := &fauna.Handler{Server: &transport.Server{
		Broker: b,
		Authorize: func(r *http.Request, _ subscription.Target) error {
			if transport.BearerToken(r) != secret {
				return transport.ErrUnauthorized
			}
			return nil
		},
		AllowedOrigins: []string{pageOrigin},
	}}
	s := &testServer{b: b, h: h, mode: mode, protos: map[string]int{}, headers: map[string]bool{}}
	inner := wrap(h)
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The test's own requests (mint) are Go's, not the driver's.
		if !strings.HasPrefix(r.UserAgent(), "Go-http-client/") {
			key := r.Proto
			if r.TLS != nil {
				key += " tls"
			}
			s.mu.Lock()
			s.protos[key]++
			for k := range r.Header {
				s.headers[strings.ToLower(k)] = true
			}
			s.mu.Unlock()
		}
		inner.ServeHTTP(w, r)
	}))
	s.ts.Config.Protocols = new(http.Protocols)
	s.ts.Config.Protocols.SetHTTP1(true)
	if mode == "tls" {
		s.ts.Config.Protocols.SetHTTP2(true)
		s.ts.EnableHTTP2 = true
		transport.ConfigureServer(s.ts.Config, 100)
		s.ts.StartTLS()
		s.caFile = filepath.Join(t.TempDir(), "ca.pem")
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
		if err := os.WriteFile(s.caFile, cert, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		s.ts.Config.Protocols.SetUnencryptedHTTP2(true)
		transport.ConfigureServer(s.ts.Config, 100)
		s.ts.Start()
	}
	s.port = s.ts.URL[strings.LastIndexByte(s.ts.URL, ':')+1:]
	t.Cleanup(func() {
		b.Close()
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
	return s
}

// checkProtocol fails the test unless every request the server saw from
// the driver came in the mode's protocol: it must really have used it.
func (s *testServer) checkProtocol(t *testing.T) {
	t.Helper()
	want := map[string]string{"h2c": "HTTP/2.0", "fetch": "HTTP/1.1", "tls": "HTTP/2.0 tls"}[s.mode]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.protos) != 1 || s.protos[want] == 0 {
		t.Fatalf("requests by protocol: %v, want all %s", s.protos, want)
	}
}

// pageOrigin is the origin the test servers allow cross-origin.
const pageOrigin = "https://spells.example"

// checkCORS fails the test unless a page of pageOrigin could send what the
// driver sent: a preflight asking for every header it sent, but those a
// browser sets itself, must be allowed.
func (s *testServer) checkCORS(t *testing.T) {
	t.Helper()
	own := map[string]bool{"accept": true, "accept-encoding": true, "accept-language": true,
		"connection": true, "content-length": true, "user-agent": true, "te": true,
		"keep-alive": true, "sec-fetch-mode": true}
	s.mu.Lock()
	var asked []string
	for k := range s.headers {
		if !own[k] {
			asked = append(asked, k)
		}
	}
	s.mu.Unlock()
	req, _ := http.NewRequest(http.MethodOptions, s.ts.URL+"/stream", nil)
	req.Header.Set("Origin", pageOrigin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", strings.Join(asked, ","))
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	allowed := map[string]bool{}
	for _, h := range strings.Split(resp.Header.Get("Access-Control-Allow-Headers"), ",") {
		allowed[strings.ToLower(strings.TrimSpace(h))] = true
	}
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != pageOrigin {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	for _, h := range asked {
		if !allowed[h] {
			t.Errorf("the driver sent %s, which a preflight does not allow (%s)", h, resp.Header.Get("Access-Control-Allow-Headers"))
		}
	}
}

// forEachMode runs a driver test in every HTTP mode, and checks the
// protocol the driver used, and that CORS allows what it sent, when it is
// done.
func forEachMode(t *testing.T, test func(t *testing.T, s *testServer)) {
	for _, mode := range httpModes {
		t.Run(mode, func(t *testing.T) {
			s := spellsServer(t, mode)
			test(t, s)
			s.checkProtocol(t)
			s.checkCORS(t)
		})
	}
}

// nodeDir holds the pinned Node project with the faunadb driver.
const nodeDir = "testdata/node"

// needNode skips without node or the pinned packages (see nodetest.Need).
func needNode(t *testing.T) {
	t.Helper()
	nodetest.Need(t, nodeDir, "faunadb", "fauna")
}

// line is one thing the driver saw, as driver.js prints it.
type line struct {
	Label       string          `json:"label"`
	Type        string          `json:"type"`
	Txn         txlog.Txn       `json:"txn"`
	Event       txlog.Txn       `json:"event"`
	Action      string          `json:"action"`
	Document    *doc            `json:"document"`
	Diff        *doc            `json:"diff"`
	Prev        *doc            `json:"prev"`
	Snapshot    *doc            `json:"snapshot"`
	Index       json.RawMessage `json:"index"`
	Name        string          `json:"name"`
	Message     string          `json:"message"`
	Status      int             `json:"status"`
	Description string          `json:"description"`
	// What driver10.js prints: Name above is also a v10 document's name.
	TxnTS   txlog.Txn `json:"txn_ts"`
	Cursor  string    `json:"cursor"`
	IsDoc   bool      `json:"isDoc"`
	ID      string    `json:"id"`
	Coll    string    `json:"coll"`
	TS      string    `json:"ts"`
	HasNext bool      `json:"has_next"`
	Events  []line    `json:"events"`
	raw     string
}

type doc struct {
	IsRef      bool            `json:"isRef"`
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	TS         txlog.Txn       `json:"ts"`
	Data       json.RawMessage `json:"data"`
}

// driver is a running driver.js.
type driver struct {
	t     *testing.T
	p     *nodetest.Process
	stdin io.WriteCloser
}

// runDriver starts driver.js on a scenario; it is stopped (and waited
// for) at the end of the test.
func runDriver(t *testing.T, s *testServer, scenario string) *driver {
	t.Helper()
	return runScript(t, s, "driver.js", scenario)
}

// runScript starts a Node script of nodeDir with its arguments, told the
// server's port and mode.
func runScript(t *testing.T, s *testServer, script string, args ...string) *driver {
	t.Helper()
	needNode(t)
	env := []string{"FAUNA_PORT=" + s.port, "FAUNA_HTTP=" + s.mode}
	if s.caFile != "" {
		env = append(env, "NODE_EXTRA_CA_CERTS="+s.caFile)
	}
	p := nodetest.Start(t, nodetest.Options{Dir: nodeDir, Args: append([]string{script}, args...), Env: env, Timeout: 60 * time.Second})
	return &driver{t: t, p: p, stdin: p.Stdin}
}

// next returns the next line the driver printed.
func (d *driver) next() line {
	d.t.Helper()
	raw := d.p.Next(d.t, 30*time.Second)
	var l line
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		l = line{Label: "unparsed", Message: raw}
	}
	l.raw = raw
	if l.Label == "crash" || l.Label == "unparsed" {
		d.t.Fatalf("the driver: %s", l.raw)
	}
	return l
}

// expect returns the next line, which must have the label and type.
func (d *driver) expect(label, typ string) line {
	d.t.Helper()
	l := d.next()
	if l.Label != label || l.Type != typ {
		d.t.Fatalf("got %s, want a %s event of %s", l.raw, typ, label)
	}
	return l
}

// proceed lets the script go on past its next await.
func (d *driver) proceed() {
	d.t.Helper()
	if _, err := io.WriteString(d.stdin, "go\n"); err != nil {
		d.t.Fatal(err)
	}
}

func commit(t *testing.T, b *broker.Broker, fn func(tx *broker.Tx) error) txlog.Txn {
	t.Helper()
	txn, err := b.Commit(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	return txn
}

func sameJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("%s: got %s, want %s", what, got, want)
	}
}

// checkDoc compares a document the driver decoded with the broker's.
func checkDoc(t *testing.T, what string, got *doc, ref txlog.Ref, ts txlog.Txn, data string) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: missing", what)
	}
	if !got.IsRef || got.ID != ref.ID || got.Collection != ref.Collection || got.TS != ts {
		t.Fatalf("%s: got %+v, want %v at %d (ref decoded as a Ref)", what, got, ref, ts)
	}
	if data != "" {
		sameJSON(t, what+" data", got.Data, data)
	}
}

var spell1 = txlog.Ref{Collection: "spells", ID: "1"}

// TestDriverDocumentStream: a v4 document stream with fields
// action,document,diff,prev sees its start, then an update as the broker
// committed it.
func TestDriverDocumentStream(t *testing.T) { forEachMode(t, testDriverDocumentStream) }

func testDriverDocumentStream(t *testing.T, s *testServer) {
	b := s.b
	created := commit(t, b, func(tx *broker.Tx) error {
		return tx.Create(spell1, []byte(`{"name":"Fire Beak","element":"fire","tags":{"@tag":"not a tag"}}`))
	})
	d := runDriver(t, s, "doc")
	start := d.expect("doc", "start")
	if start.Txn < created || start.Event != start.Txn {
		t.Fatalf("start: %s (created at %d)", start.raw, created)
	}
	updated := commit(t, b, func(tx *broker.Tx) error {
		return tx.Update(spell1, []byte(`{"cost":10}`))
	})
	v := d.expect("doc", "version")
	if v.Txn != updated || v.Action != "update" {
		t.Fatalf("version: %s, want an update at %d", v.raw, updated)
	}
	now, _ := b.Get(spell1)
	checkDoc(t, "document", v.Document, spell1, updated, string(now.Data))
	checkDoc(t, "diff", v.Diff, spell1, updated, `{"cost":10}`)
	checkDoc(t, "prev", v.Prev, spell1, created, `{"name":"Fire Beak","element":"fire","tags":{"@tag":"not a tag"}}`)
	d.proceed()
}

// TestDriverRefSpellings: a ref value and Ref("collections/spells/1")
// stream the same document.
func TestDriverRefSpellings(t *testing.T) { forEachMode(t, testDriverRefSpellings) }

func testDriverRefSpellings(t *testing.T, s *testServer) {
	b := s.b
	commit(t, b, func(tx *broker.Tx) error { return tx.Create(spell1, []byte(`{"element":"fire"}`)) })
	d := runDriver(t, s, "refs")
	seen := map[string]bool{}
	for range 2 {
		l := d.next()
		if l.Type != "start" {
			t.Fatalf("want starts, got %s", l.raw)
		}
		seen[l.Label] = true
	}
	deleted := commit(t, b, func(tx *broker.Tx) error { return tx.Delete(spell1) })
	for range 2 {
		l := d.next()
		if l.Type != "version" || l.Action != "delete" || l.Txn != deleted {
			t.Fatalf("want the delete at %d, got %s", deleted, l.raw)
		}
		checkDoc(t, "document", l.Document, spell1, deleted, "")
		seen[l.Label+" delete"] = true
	}
	if len(seen) != 4 {
		t.Fatalf("saw %v", seen)
	}
	d.proceed()
}

// TestDriverSetStreams: Match on terms, a term-less Match, and Documents
// see a spell added and removed.
func TestDriverSetStreams(t *testing.T) { forEachMode(t, testDriverSetStreams) }

func testDriverSetStreams(t *testing.T, s *testServer) {
	b := s.b
	d := runDriver(t, s, "set")
	for range 3 {
		if l := d.next(); l.Type != "start" {
			t.Fatalf("want starts, got %s", l.raw)
		}
	}
	ref := txlog.Ref{Collection: "spells", ID: "2"}
	created := commit(t, b, func(tx *broker.Tx) error { return tx.Create(ref, []byte(`{"element":"fire"}`)) })
	watered := commit(t, b, func(tx *broker.Tx) error { return tx.Update(ref, []byte(`{"element":"water"}`)) })
	deleted := commit(t, b, func(tx *broker.Tx) error { return tx.Delete(ref) })
	want := map[string][]string{
		"match":     {fmt.Sprintf("add %d", created), fmt.Sprintf("remove %d", watered)},
		"documents": {fmt.Sprintf("add %d", created), fmt.Sprintf("remove %d", deleted)},
		"all":       {fmt.Sprintf("add %d", created), fmt.Sprintf("remove %d", deleted)},
	}
	got := map[string][]string{}
	for range 6 {
		l := d.next()
		if l.Type != "set" {
			t.Fatalf("want set events, got %s", l.raw)
		}
		checkDoc(t, l.Label+" document", l.Document, ref, l.Txn, "")
		switch l.Label {
		case "match":
			sameJSON(t, "match index", l.Index, `{"terms":["fire"],"values":[]}`)
		case "documents":
			sameJSON(t, "documents index", l.Index, `{"terms":[{"ref":"spells"}],"values":[]}`)
		}
		got[l.Label] = append(got[l.Label], l.Action+" "+strconv.FormatUint(uint64(l.Txn), 10))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	d.proceed()
}

// TestDriverDocumentHelper: client.stream.document() gets its snapshot
// (through POST / with a Get) and then the next version.
func TestDriverDocumentHelper(t *testing.T) { forEachMode(t, testDriverDocumentHelper) }

func testDriverDocumentHelper(t *testing.T, s *testServer) {
	b := s.b
	created := commit(t, b, func(tx *broker.Tx) error { return tx.Create(spell1, []byte(`{"element":"fire"}`)) })
	d := runDriver(t, s, "document")
	d.expect("document", "start")
	snap := d.expect("document", "snapshot")
	checkDoc(t, "snapshot", snap.Snapshot, spell1, created, `{"element":"fire"}`)
	updated := commit(t, b, func(tx *broker.Tx) error { return tx.Update(spell1, []byte(`{"cost":3}`)) })
	v := d.expect("document", "version")
	if v.Txn != updated || v.Action != "update" {
		t.Fatalf("version: %s", v.raw)
	}
	checkDoc(t, "document", v.Document, spell1, updated, `{"element":"fire","cost":3}`)
	d.proceed()
}

// TestDriverErrors: refusals before the stream reach the driver as its
// typed errors: 404 for a missing document and an unknown index, 400 for a
// bare Collection, 401 for a wrong secret, 429 for the 101st stream of
// one connection (over HTTP/2).
func TestDriverErrors(t *testing.T) { forEachMode(t, testDriverErrors) }

func testDriverErrors(t *testing.T, s *testServer) {
	b := s.b
	commit(t, b, func(tx *broker.Tx) error { return tx.Create(spell1, []byte(`{"element":"fire"}`)) })
	d := runDriver(t, s, "errors")
	for _, c := range []struct {
		label, name string
		status      int
	}{
		{"missing", "NotFound", 404},
		{"unknown-index", "NotFound", 404},
		{"bare-collection", "BadRequest", 400},
		{"unauthorized", "Unauthorized", 401},
	} {
		l := d.expect(c.label, "error")
		if l.Name != c.name || l.Status != c.status {
			t.Fatalf("%s: got %s, want %s (%d)", c.label, l.raw, c.name, c.status)
		}
		d.proceed()
	}
	if s.mode == "fetch" {
		// Over HTTP/1.1 each stream has a connection of its own: there
		// is no per-connection limit to meet.
		d.expect("done", "done")
		return
	}
	for range 100 {
		d.expect("limit", "start")
	}
	d.proceed()
	l := d.expect("over", "error")
	if l.Name != "TooManyRequests" || l.Status != 429 {
		t.Fatalf("the 101st stream: got %s", l.raw)
	}
	d.proceed()
}
