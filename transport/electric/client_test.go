package electric

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/nodetest"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// nodeDir holds the pinned Node project with @electric-sql/client.
const nodeDir = "testdata/node"

// needNode skips without node or the pinned packages (see nodetest.Need).
func needNode(t *testing.T) {
	t.Helper()
	nodetest.Need(t, nodeDir, "@electric-sql/client")
}

// spellsSchema is the schema of the client tests: spells, and an index on
// element.
var spellsSchema = index.Schema{
	Collections: []string{"spells", "potions"},
	Indexes:     []index.Definition{{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}}},
}

// testServer is the Electric front on a real server, under /electric/.
type testServer struct {
	b   *broker.Broker
	h   *Handler
	ts  *httptest.Server
	url string // of the shape endpoint

	cur atomic.Pointer[Handler] // what the server serves: h, until restart

	live, sse atomic.Int32 // live requests seen, and those with live_sse
}

// checkMode fails the test unless the client really used the mode: SSE
// requests for sse, live requests and none of them SSE for longpoll.
func (s *testServer) checkMode(t *testing.T, mode string) {
	t.Helper()
	live, sse := s.live.Load(), s.sse.Load()
	if live == 0 || (mode == "sse") != (sse > 0) || mode == "longpoll" && sse != 0 {
		t.Fatalf("%d live requests, %d of them SSE, in mode %s", live, sse, mode)
	}
}

func newTestServer(t *testing.T, opt broker.Options, h *Handler) *testServer {
	t.Helper()
	s := &testServer{}
	s.start(t, opt, h)
	mux := http.NewServeMux()
	mux.Handle("/electric/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Get("live") == "true" {
			s.live.Add(1)
			if q.Get("live_sse") == "true" {
				s.sse.Add(1)
			}
		}
		s.cur.Load().ServeHTTP(w, r)
	}))
	s.ts = httptest.NewServer(mux)
	s.url = s.ts.URL + "/electric/v1/shape"
	t.Cleanup(func() {
		s.b.Close()
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
	return s
}

// start makes the broker and the Handler the server serves.
func (s *testServer) start(t *testing.T, opt broker.Options, h *Handler) {
	t.Helper()
	if opt.Schema.Collections == nil {
		opt.Schema = spellsSchema
	}
	b, err := broker.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = &Handler{}
	}
	h.Server = &transport.Server{Broker: b}
	s.b, s.h = b, h
	s.cur.Store(h)
}

// restart closes the broker and serves a new one, on a new in-memory log,
// on the same URL: what a restarted server without a durable log is.
func (s *testServer) restart(t *testing.T) {
	t.Helper()
	old := s.b
	s.start(t, broker.Options{}, nil)
	old.Close()
}

// model is the test's own account of the spells: what it committed, and
// the state after each txn, to judge the rows the client shows.
type model struct {
	mu     sync.Mutex
	docs   map[string]map[string]any
	states []modelState
}

type modelState struct {
	txn  txlog.Txn
	docs map[string]map[string]any
}

func newModel() *model { return &model{docs: map[string]map[string]any{}} }

// commit commits one write to spells through the broker, applies it to
// the model and records the state at its txn.
func (m *model) commit(t *testing.T, b *broker.Broker, op, id string, data string) txlog.Txn {
	t.Helper()
	ref := txlog.Ref{Collection: "spells", ID: id}
	m.mu.Lock()
	defer m.mu.Unlock()
	txn, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		switch op {
		case "create":
			return tx.Create(ref, []byte(data))
		case "replace":
			return tx.Replace(ref, []byte(data))
		case "delete":
			return tx.Delete(ref)
		}
		return fmt.Errorf("op %s", op)
	})
	if err != nil {
		t.Fatal(err)
	}
	if op == "delete" {
		delete(m.docs, id)
	} else {
		var d map[string]any
		json.Unmarshal([]byte(data), &d)
		m.docs[id] = d
	}
	snap := map[string]map[string]any{}
	maps.Copy(snap, m.docs)
	m.states = append(m.states, modelState{txn, snap})
	return txn
}

// rowsAt is the rows a shape holds at txn: the documents filter keeps,
// each as a row, sorted by id.
func (m *model) rowsAt(txn txlog.Txn, filter func(map[string]any) bool) []map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	var docs map[string]map[string]any
	for _, s := range m.states {
		if s.txn <= txn {
			docs = s.docs
		}
	}
	var rows []map[string]any
	for _, id := range slices.Sorted(maps.Keys(docs)) {
		if filter != nil && !filter(docs[id]) {
			continue
		}
		row := map[string]any{"id": id}
		for k, v := range docs[id] {
			if k != "id" {
				row[k] = v
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// clientLine is one line shape.js printed.
type clientLine struct {
	Type     string           `json:"type"`
	Offset   string           `json:"offset"`
	Handle   string           `json:"handle"`
	Rows     []map[string]any `json:"rows"`
	Messages []struct {
		Op      string         `json:"op"`
		Key     string         `json:"key"`
		Value   map[string]any `json:"value"`
		Control string         `json:"control"`
		LSN     string         `json:"lsn"`
	} `json:"messages"`
	Status  int    `json:"status"`
	Name    string `json:"name"`
	Message string `json:"message"`
	raw     string
}

// client is a running shape.js.
type client struct {
	t *testing.T
	p *nodetest.Process

	refetches int         // must-refetch messages it printed, among the lines read
	last      *clientLine // the last rows notification read
}

// stop ends the client and waits for it.
func (c *client) stop() {
	io.WriteString(c.p.Stdin, "stop\n")
	<-c.p.Done()
}

// read returns the client's next line, parsed.
func (c *client) read(timeout time.Duration) clientLine {
	c.t.Helper()
	raw := c.p.Next(c.t, timeout)
	var l clientLine
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		c.t.Fatalf("the client: %s", raw)
	}
	l.raw = raw
	for _, msg := range l.Messages {
		if msg.Control == "must-refetch" {
			c.refetches++
		}
	}
	return l
}

// runClient starts shape.js on a shape, from offset and handle if given;
// it is stopped at the end of the test.
func runClient(t *testing.T, url, mode string, params map[string]any, resume ...string) *client {
	t.Helper()
	needNode(t)
	p, _ := json.Marshal(params)
	proc := nodetest.Start(t, nodetest.Options{Dir: nodeDir, Args: append([]string{"shape.js", url, mode, string(p)}, resume...), Grace: 5 * time.Second})
	return &client{t: t, p: proc}
}

// next returns the next line of the given type, skipping others.
func (c *client) next(typ string) clientLine {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		l := c.read(time.Until(deadline))
		if l.Type == "error" && typ != "error" {
			c.t.Fatalf("the client: %s", l.raw)
		}
		if l.Type == typ {
			return l
		}
	}
}

// offsetTxn reads the txn of an offset T_0.
func offsetTxn(t *testing.T, o string) txlog.Txn {
	t.Helper()
	s, ok := strings.CutSuffix(o, "_0")
	n, err := strconv.ParseUint(s, 10, 64)
	if !ok || err != nil {
		t.Fatalf("offset %q", o)
	}
	return txlog.Txn(n)
}

// untilRows reads rows notifications until the client holds the rows of
// the state at txn (at once if it holds them already: a commit that
// changes no row of the shape notifies nothing); each notification must
// equal the model's state at its offset.
func (c *client) untilRows(m *model, txn txlog.Txn, filter func(map[string]any) bool) clientLine {
	c.t.Helper()
	want := m.rowsAt(txn, filter)
	if c.last != nil && sameRows(c.last.Rows, want) {
		return *c.last
	}
	for {
		l := c.next("rows")
		at := offsetTxn(c.t, l.Offset)
		if !sameRows(l.Rows, m.rowsAt(at, filter)) {
			c.t.Fatalf("rows at %s: %s\nwant %v", l.Offset, l.raw, m.rowsAt(at, filter))
		}
		c.last = &l
		if sameRows(l.Rows, want) {
			return l
		}
	}
}

// sameRows compares rows as JSON values, top-level nulls left out: an
// update sends a field the write removed as null, which the client merges
// in, so there a removed field reads null where the document has none.
func sameRows(got, want []map[string]any) bool {
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	for _, rows := range [][]map[string]any{got, want} {
		for _, r := range rows {
			maps.DeleteFunc(r, func(_ string, v any) bool { return v == nil })
		}
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	var gv, wv any
	json.Unmarshal(g, &gv)
	json.Unmarshal(w, &wv)
	return reflect.DeepEqual(gv, wv)
}

// TestClientCollection: a Shape of a collection, in long-poll and in SSE
// mode, starts with the rows there are and follows inserts, updates (one
// removing a field) and deletes; at every up-to-date its rows equal the
// broker's state.
func TestClientCollection(t *testing.T) {
	for _, mode := range []string{"longpoll", "sse"} {
		t.Run(mode, func(t *testing.T) {
			s := newTestServer(t, broker.Options{}, nil)
			m := newModel()
			m.commit(t, s.b, "create", "1", `{"name":"Fire Beak","element":"fire","cost":3}`)
			m.commit(t, s.b, "create", "2", `{"name":"Tide","element":"water"}`)
			c := runClient(t, s.url, mode, map[string]any{"table": "spells"})
			c.untilRows(m, m.states[1].txn, nil)
			txn := m.commit(t, s.b, "create", "3", `{"name":"Gust","element":"air","tags":["a"]}`)
			c.untilRows(m, txn, nil)
			txn = m.commit(t, s.b, "replace", "1", `{"name":"Fire Beak","element":"fire"}`)
			c.untilRows(m, txn, nil)
			txn = m.commit(t, s.b, "delete", "2", "")
			c.untilRows(m, txn, nil)
			s.checkMode(t, mode)
		})
	}
}

var modes = []string{"longpoll", "sse"}

func isFire(d map[string]any) bool { return d["element"] == "fire" }

// TestClientWhere: a Shape of an index-equality where (a literal, or $1
// and params) follows documents that enter it (created, or changed into
// it), change in it (a field removed) and leave it (changed out of it, or
// deleted); documents outside it never show.
func TestClientWhere(t *testing.T) {
	for _, mode := range modes {
		for _, params := range []map[string]any{
			{"table": "spells", "where": "element = 'fire'"},
			{"table": "spells", "where": `"element" = $1`, "params": []string{"fire"}},
		} {
			t.Run(mode+"/"+params["where"].(string), func(t *testing.T) {
				s := newTestServer(t, broker.Options{}, nil)
				m := newModel()
				m.commit(t, s.b, "create", "1", `{"name":"Fire Beak","element":"fire","cost":3}`)
				txn := m.commit(t, s.b, "create", "2", `{"name":"Tide","element":"water"}`)
				c := runClient(t, s.url, mode, params)
				c.untilRows(m, txn, isFire)
				for _, w := range []struct{ op, id, data string }{
					{"create", "3", `{"name":"Blaze","element":"fire"}`},
					{"create", "4", `{"name":"Gust","element":"air"}`},
					{"replace", "2", `{"name":"Tide","element":"fire"}`},      // moves in
					{"replace", "1", `{"name":"Fire Beak","element":"fire"}`}, // cost removed
					{"replace", "3", `{"name":"Blaze","element":"earth"}`},    // moves out
					{"delete", "2", ""},
					{"replace", "4", `{"name":"Gust","element":"air","cost":1}`}, // outside
				} {
					txn = m.commit(t, s.b, w.op, w.id, w.data)
					c.untilRows(m, txn, isFire)
				}
				s.checkMode(t, mode)
			})
		}
	}
}

// TestClientDocument: a Shape of one document (where id = '1') holds that
// document alone, from before it exists to after it is gone.
func TestClientDocument(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newTestServer(t, broker.Options{}, nil)
			m := newModel()
			txn := m.commit(t, s.b, "create", "2", `{"element":"water"}`)
			c := runClient(t, s.url, mode, map[string]any{"table": "spells", "where": "id = '1'"})
			one := func(d map[string]any) bool { return d["name"] == "one" }
			c.untilRows(m, txn, one)
			for _, w := range []struct{ op, data string }{
				{"create", `{"name":"one","element":"fire","cost":3}`},
				{"replace", `{"name":"one","element":"air"}`},
				{"delete", ""},
				{"create", `{"name":"one"}`},
			} {
				txn = m.commit(t, s.b, w.op, "1", w.data)
				c.untilRows(m, txn, one)
			}
			s.checkMode(t, mode)
		})
	}
}

// TestClientRestart: the server restarts on a new in-memory log; the
// client's next request gets 409 (its handle is of the old log), and it
// syncs the new broker's rows from the start.
func TestClientRestart(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newTestServer(t, broker.Options{}, nil)
			m := newModel()
			txn := m.commit(t, s.b, "create", "1", `{"element":"fire"}`)
			c := runClient(t, s.url, mode, map[string]any{"table": "spells"})
			old := c.untilRows(m, txn, nil)
			s.restart(t)
			m = newModel()
			txn = m.commit(t, s.b, "create", "2", `{"element":"water"}`)
			l := c.untilRows(m, txn, nil)
			if l.Handle == old.Handle {
				t.Fatalf("the same handle %s after the restart", l.Handle)
			}
			c.sawRefetch()
		})
	}
}

// sawRefetch checks that the client was told to start again: a
// must-refetch among the messages it has printed.
func (c *client) sawRefetch() {
	c.t.Helper()
	if c.refetches == 0 {
		c.t.Fatal("no must-refetch")
	}
}

// TestClientRetention: a client that comes back with an offset the log no
// longer holds (retention dropped it) gets 409 and syncs from the start.
func TestClientRetention(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newTestServer(t, broker.Options{Log: txlog.NewMemory(txlog.MemoryOptions{MaxRecords: 4})}, nil)
			m := newModel()
			txn := m.commit(t, s.b, "create", "1", `{"element":"fire"}`)
			c := runClient(t, s.url, mode, map[string]any{"table": "spells"})
			l := c.untilRows(m, txn, nil)
			c.stop()
			for i := range 8 {
				txn = m.commit(t, s.b, "create", strconv.Itoa(10+i), `{"element":"air"}`)
			}
			c = runClient(t, s.url, mode, map[string]any{"table": "spells"}, l.Offset, l.Handle)
			c.untilRows(m, txn, nil)
			c.sawRefetch()
		})
	}
}

// TestClientBadWhere: a where this server does not serve is a 400 that
// the client raises, naming where.
func TestClientBadWhere(t *testing.T) {
	s := newTestServer(t, broker.Options{}, nil)
	c := runClient(t, s.url, "longpoll", map[string]any{"table": "spells", "where": "element = 'fire' OR element = 'air'"})
	l := c.next("error")
	if l.Status != 400 || !strings.Contains(l.raw, "where") {
		t.Fatalf("got %s, want a 400 about where", l.raw)
	}
}
