package transport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// A multiplexed stream whose subscriptions start with snapshots, cut by
// the client after each event of the snapshots in turn and resumed the way
// its client would (SSE: the same URL with the last id as Last-Event-ID;
// NDJSON: each subscription with the last cursor it received): every
// subscription ends with its whole snapshot and then the changes, each
// exactly once. Guarantee 2 of the broker's package doc: a snapshot is
// never resumed halfway.
func TestMultiplexedSnapshotResume(t *testing.T) {
	subs := map[string]map[string]any{
		"fire":  {"index": "spells_by_element", "terms": []string{"fire"}, "snapshot": true, "page_size": 1},
		"water": {"index": "spells_by_element", "terms": []string{"water"}, "snapshot": true, "page_size": 2},
	}
	initial := map[string][]string{"fire": {"f1", "f2", "f3", "f4", "f5"}, "water": {"w1", "w2", "w3"}}
	// 2 starts, 5 pages of fire, 2 of water: a cut after each of them.
	const events = 2 + 5 + 2
	for _, kind := range []string{"sse", "ndjson"} {
		for _, proto := range protocols {
			t.Run(kind+"/"+proto, func(t *testing.T) {
				for cut := 1; cut <= events; cut++ {
					ts, _, b := testServer(t, nil)
					c := client(proto)
					for name, ids := range initial {
						for _, id := range ids {
							createSpell(t, b, id, name)
						}
					}
					v := newMuxView()
					s := v.open(t, c, ts.URL, kind, subs)
					for range cut {
						if err := s.next(); err != nil {
							t.Fatalf("cut %d: %v", cut, err)
						}
					}
					s.close()
					// Changes while the client is away, and after it is back.
					createSpell(t, b, "f6", "fire")
					s = v.open(t, c, ts.URL, kind, subs)
					createSpell(t, b, "w4", "water")
					want := map[string][]string{"fire": append(initial["fire"], "f6"), "water": append(initial["water"], "w4")}
					for !v.has(want) {
						if err := s.next(); err != nil {
							t.Fatalf("cut %d: %v; so far %s", cut, err, v)
						}
					}
					s.close()
					if err := v.check(want); err != nil {
						t.Errorf("cut %d of %d: %v", cut, events, err)
					}
					c.CloseIdleConnections()
				}
			})
		}
	}
}

// muxView is what a client of a multiplexed stream holds: per
// subscription, the snapshot it adopted and the changes after it.
type muxView struct {
	subs   map[string]*subView
	lastID string // SSE: what an EventSource sends as Last-Event-ID
}

type subView struct {
	snapshot []string // the members of the snapshot being received
	complete bool     // its last page arrived
	changes  []string // the refs of the set events after it
	cursor   string   // the last cursor received
}

func newMuxView() *muxView { return &muxView{subs: map[string]*subView{}} }

func (v *muxView) sub(name string) *subView {
	if v.subs[name] == nil {
		v.subs[name] = &subView{}
	}
	return v.subs[name]
}

// muxStream is one connection of the view.
type muxStream struct {
	v    *muxView
	resp *http.Response
	br   *bufio.Reader
	sse  *sseParser
}

// open opens the stream, resuming from what the view has received.
func (v *muxView) open(t *testing.T, c *http.Client, base, kind string, subs map[string]map[string]any) *muxStream {
	t.Helper()
	var resp *http.Response
	if kind == "sse" {
		b, _ := json.Marshal(subs)
		var h http.Header
		if v.lastID != "" {
			h = http.Header{"Last-Event-Id": {v.lastID}}
		}
		resp = do(t, c, "GET", base+"/sse?subscriptions="+url.QueryEscape(string(b)), "", h)
	} else {
		req := map[string]map[string]any{}
		for name, sr := range subs {
			sr = maps.Clone(sr)
			if cur := v.sub(name).cursor; cur != "" {
				sr["cursor"] = cur
			}
			req[name] = sr
		}
		b, _ := json.Marshal(map[string]any{"subscriptions": req})
		resp = do(t, c, "POST", base+"/stream", string(b), nil)
	}
	if resp.StatusCode != 200 {
		checkError(t, resp, 200, "")
		t.FailNow()
	}
	s := &muxStream{v: v, resp: resp}
	if kind == "sse" {
		s.sse = newSSEParser(resp.Body)
	} else {
		s.br = bufio.NewReader(resp.Body)
	}
	return s
}

func (s *muxStream) close() { s.resp.Body.Close() }

// next reads one event (skipping heartbeats) into the view.
func (s *muxStream) next() error {
	var line string
	for line == "" {
		if s.sse != nil {
			ev, err := s.sse.next()
			if err != nil {
				return err
			}
			line = ev.Data
			s.v.lastID = s.sse.lastID
		} else {
			l, err := s.br.ReadString('\n')
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			if strings.Contains(l, `"type":"status"`) {
				continue
			}
			line = l
		}
	}
	var w struct {
		Subscription string          `json:"subscription"`
		Type         string          `json:"type"`
		Cursor       string          `json:"cursor"`
		Raw          json.RawMessage `json:"event"`
	}
	var e struct {
		Code     string `json:"code"`
		Document struct {
			Ref struct{ ID string } `json:"ref"`
		} `json:"document"`
		Data []struct {
			Document struct {
				Ref struct{ ID string } `json:"ref"`
			} `json:"document"`
		} `json:"data"`
		Last bool `json:"last"`
	}
	if err := json.Unmarshal([]byte(line), &w); err != nil {
		return fmt.Errorf("%q: %v", line, err)
	}
	if len(w.Raw) > 0 && w.Raw[0] == '{' {
		if err := json.Unmarshal(w.Raw, &e); err != nil {
			return fmt.Errorf("%q: %v", line, err)
		}
	}
	sv := s.v.sub(w.Subscription)
	switch w.Type {
	case "start":
		if w.Cursor == "" {
			// A snapshot follows: whatever was received of an earlier
			// one is dropped, as a client starting again does.
			*sv = subView{}
		}
	case "snapshot":
		if sv.complete {
			return fmt.Errorf("%s: a snapshot page after the last one", w.Subscription)
		}
		for _, m := range e.Data {
			sv.snapshot = append(sv.snapshot, m.Document.Ref.ID)
		}
		sv.complete = e.Last
		if e.Last != (w.Cursor != "") {
			return fmt.Errorf("%s: a snapshot page (last %v) with cursor %q", w.Subscription, e.Last, w.Cursor)
		}
	case "set":
		if !sv.complete {
			return fmt.Errorf("%s: a change before the snapshot's last page", w.Subscription)
		}
		sv.changes = append(sv.changes, e.Document.Ref.ID)
	case "error":
		return fmt.Errorf("%s: error event %s", w.Subscription, e.Code)
	default:
		return fmt.Errorf("unexpected %q", line)
	}
	if w.Cursor != "" {
		sv.cursor = w.Cursor
	}
	return nil
}

// has reports whether every subscription has received all of want.
func (v *muxView) has(want map[string][]string) bool {
	for name, ids := range want {
		sv := v.subs[name]
		if sv == nil || !sv.complete {
			return false
		}
		got := append(slices.Clone(sv.snapshot), sv.changes...)
		for _, id := range ids {
			if !slices.Contains(got, id) {
				return false
			}
		}
	}
	return true
}

// check reports what differs from want: each member exactly once, in the
// snapshot or as a change after it.
func (v *muxView) check(want map[string][]string) error {
	for name, ids := range want {
		sv := v.subs[name]
		got := append(slices.Clone(sv.snapshot), sv.changes...)
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			return fmt.Errorf("%s: snapshot %v then changes %v, want each of %v once", name, sv.snapshot, sv.changes, ids)
		}
	}
	return nil
}

func (v *muxView) String() string {
	var sb strings.Builder
	for name, sv := range v.subs {
		fmt.Fprintf(&sb, "%s: snapshot %v (complete %v), changes %v; ", name, sv.snapshot, sv.complete, sv.changes)
	}
	return sb.String()
}
