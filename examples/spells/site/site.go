// Package site is the spells example's application: its schema, its
// seeded spells, and the HTTP handler that serves the page, tidings and
// Electric's shape endpoint. The example command (one broker) and the
// cluster example (a node per process on one JetStream stream) serve it.
package site

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/electric"
	"github.com/tidings/tidings/txlog"
)

// Page shows the fire, water, earth and air sets live, and moves spells.
//
//go:embed page.html
var Page []byte

// ElectricPage shows the fire set through ElectricSQL's client, whose ES
// module ElectricClient is (electric/README.md says where it comes from).
var (
	//go:embed electric.html
	ElectricPage []byte
	//go:embed electric/index.browser.mjs
	ElectricClient []byte
)

// Schema is the spells collection and its index by element.
func Schema() index.Schema {
	return index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{{
			Name: "spells_by_element", Collection: "spells", Terms: []string{"element"},
		}},
	}
}

// Seed creates a few spells, those that do not exist: a broker restarted
// on its log, or a node joining others, keeps what is there.
func Seed(ctx context.Context, b *broker.Broker) error {
	spells := []struct{ id, name, element string }{
		{"1", "Fire Beak", "fire"}, {"2", "Water Dart", "water"}, {"3", "Stone Skin", "earth"},
		{"4", "Gust", "air"}, {"5", "Fireball", "fire"}, {"6", "Mist", "water"},
	}
	_, err := b.Commit(ctx, func(tx *broker.Tx) error {
		for _, s := range spells {
			ref := txlog.Ref{Collection: "spells", ID: s.id}
			if _, ok := tx.Get(ref); ok {
				continue
			}
			data := fmt.Sprintf(`{"name":%q,"element":%q}`, s.name, s.element)
			if err := tx.Create(ref, []byte(data)); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// Mux serves the pages at / and /electric.html (with the client's module
// at /electric-client.mjs), tidings under /tidings/ and Electric's shape
// endpoint at /electric/v1/shape. Pages of allowOrigins may use them from
// their own origin (CORS).
func Mux(b *broker.Broker, allowOrigins []string) (*http.ServeMux, *transport.Server, *electric.Handler) {
	srv := &transport.Server{Broker: b,
		// The page moves spells. Anyone who reaches this demo may write;
		// an application checks its caller here. Other origins' pages
		// cannot, unless allowOrigins lists them: writes must be
		// application/json, which CORS decides.
		AuthorizeWrite: func(*http.Request, *transport.WriteRequest) error { return nil },
		AllowedOrigins: allowOrigins,
	}
	// Electric's front shares srv's broker, CORS and limits.
	eh := &electric.Handler{Server: srv}
	mux := http.NewServeMux()
	mux.Handle("/tidings/", srv)
	mux.Handle("/electric/", eh)
	mux.HandleFunc("GET /{$}", Static("text/html; charset=utf-8", Page))
	mux.HandleFunc("GET /electric.html", Static("text/html; charset=utf-8", ElectricPage))
	mux.HandleFunc("GET /electric-client.mjs", Static("text/javascript; charset=utf-8", ElectricClient))
	return mux, srv, eh
}

// Static answers with body.
func Static(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}
}

// Observer, for tests, is a script to add to Page before </body>: every
// 100 ms it POSTs what the page shows (the four sets, the history, the
// status line, the notice and the move form's error) to /report, so that
// a test reads back what the page shows. An answer with a body is a move
// for it to make through the page's form, as a user would.
const Observer = `<script>
setInterval(async () => {
  const state = {};
  for (const id of ["fire", "water", "earth", "air", "history", "status", "notice", "moveerror"]) {
    const el = document.getElementById(id);
    state[id] = el ? el.innerText : "";
  }
  const r = await fetch("/report", {method: "POST", body: JSON.stringify(state)});
  if (r.status === 200) {
    const move = await r.json();
    document.getElementById("spell").value = move.spell;
    document.getElementById("element").value = move.element;
    document.getElementById("move").requestSubmit();
  }
}, 100);
</script>`
