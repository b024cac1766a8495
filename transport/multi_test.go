package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/txlog"
)

// namedWire is an event of a multiplexed stream.
type namedWire struct {
	Subscription string `json:"subscription"`
	wireEvent
}

// 120 subscriptions over one NDJSON stream: every event names its
// subscription and reaches it, in order.
func TestMultiplexedNDJSON(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h2c")
	defer c.CloseIdleConnections()
	const n = 120
	subs := map[string]any{}
	for i := range n {
		subs[fmt.Sprint("s", i)] = map[string]any{"index": "spells_by_element", "terms": []string{fmt.Sprint("e", i)}}
	}
	body, _ := json.Marshal(map[string]any{"subscriptions": subs})
	resp, err := c.Post(ts.URL+"/stream", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s", resp.Status)
	}
	r := bufio.NewReader(resp.Body)
	read := func() namedWire {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		var w namedWire
		if err := json.Unmarshal([]byte(l), &w); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		return w
	}
	starts := map[string]bool{}
	for range n {
		w := read()
		if w.Type != "start" || starts[w.Subscription] {
			t.Fatalf("%+v", w)
		}
		starts[w.Subscription] = true
	}
	// One commit that enters 40 of the sets.
	txn := commit(t, b, func(tx *broker.Tx) error {
		for i := 0; i < n; i += 3 {
			if err := tx.Create(txlog.Ref{Collection: "spells", ID: fmt.Sprint(i)}, []byte(fmt.Sprintf(`{"element":"e%d"}`, i))); err != nil {
				return err
			}
		}
		return nil
	})
	got := map[string]bool{}
	for range (n + 2) / 3 {
		w := read()
		if w.Type != "set" || w.Txn != uint64(txn) || got[w.Subscription] {
			t.Fatalf("%+v", w)
		}
		var i int
		fmt.Sscanf(w.Subscription, "s%d", &i)
		if i%3 != 0 {
			t.Fatalf("subscription %s got an event for another set", w.Subscription)
		}
		got[w.Subscription] = true
	}
}

// A multiplexed SSE stream resumes every subscription through the compound
// Last-Event-ID, with nothing lost or repeated.
func TestMultiplexedSSEResume(t *testing.T) {
	ts, _, b := testServer(t, nil)
	c := client("h1")
	defer c.CloseIdleConnections()
	subs := `{"fire":{"index":"spells_by_element","terms":["fire"]},"water":{"index":"spells_by_element","terms":["water"]},"all":{"collection":"spells"}}`
	u := ts.URL + "/sse?subscriptions=" + url.QueryEscape(subs)
	create := func(id, element string) {
		commit(t, b, func(tx *broker.Tx) error {
			return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"element":"`+element+`"}`))
		})
	}
	type got struct{ sub, id string }
	var received []got
	lastID := ""
	// open reads events until want set events have arrived, then cuts
	// the connection from the client side.
	open := func(want int, afterStart func()) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s", resp.Status)
		}
		r := bufio.NewReader(resp.Body)
		sets, starts := 0, 0
		var id, data string
		for sets < want {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasPrefix(l, "id: "):
				id = strings.TrimSpace(l[4:])
			case strings.HasPrefix(l, "data: "):
				data = l[6:]
			case l == "\n" && data != "":
				var w namedWire
				if err := json.Unmarshal([]byte(data), &w); err != nil {
					t.Fatal(err)
				}
				if len(w.Raw) > 0 && w.Raw[0] == '{' {
					json.Unmarshal(w.Raw, &w.Event)
				}
				switch w.Type {
				case "set":
					received = append(received, got{w.Subscription, w.Event.Document.Ref.ID})
					sets++
				case "start":
					if starts++; starts == 3 && afterStart != nil {
						afterStart()
					}
				}
				lastID, data = id, ""
			}
		}
	}
	create("1", "fire") // before the stream: not in it
	open(3, func() {
		create("4", "fire")  // fire, all
		create("5", "earth") // all
	})
	create("6", "water") // water, all
	create("7", "fire")  // fire, all
	open(4, nil)
	// Within one txn the subscriptions' events may interleave either way;
	// each subscription's own sequence is exact.
	bySub := map[string][]string{}
	for _, g := range received {
		bySub[g.sub] = append(bySub[g.sub], g.id)
	}
	want := map[string][]string{"all": {"4", "5", "6", "7"}, "fire": {"4", "7"}, "water": {"6"}}
	if fmt.Sprint(bySub) != fmt.Sprint(want) {
		t.Fatalf("received %v, want %v", bySub, want)
	}
}
