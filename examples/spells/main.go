// Command spells serves tidings over HTTP on the embedded in-memory
// broker (or, with -data, on a durable file log): the spells collection,
// the spells_by_element index, a few seeded spells, the stream, SSE, feed
// and write endpoints under /tidings/, and a page at / that shows the
// fire, water, earth and air sets live; and, on a second port, the same
// broker to Fauna's drivers (package transport/fauna).
//
//	go run ./examples/spells
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

//go:embed page.html
var page []byte

// defaultFaunaAddr is where the Fauna front listens unless -fauna-addr
// says otherwise: plain HTTP (h2c), so not 8443, which reads as TLS.
const defaultFaunaAddr = "localhost:8081"

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	faunaAddr := flag.String("fauna-addr", defaultFaunaAddr, "address of the Fauna front for Fauna's drivers (empty: off)")
	data := flag.String("data", "", "directory of a durable log (default: in memory)")
	flag.Parse()
	if err := run(*addr, *faunaAddr, *data); err != nil {
		fmt.Fprintln(os.Stderr, "spells:", err)
		os.Exit(1)
	}
}

func run(addr, faunaAddr, data string) error {
	b, err := newBroker(data)
	if err != nil {
		return err
	}
	defer b.Close()
	s, err := listen(b, addr, faunaAddr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Print(banner(s))

	select {
	case err = <-s.errc: // a server failed: stop the other one too
	case <-ctx.Done():
		slog.Info("spells: shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.shutdown(sctx)
	return err
}

// banner is what the example prints on start: where it is and what to try.
func banner(s *servers) string {
	text := fmt.Sprintf(`tidings spells example on %[1]s (open it in a browser)

Try:
  curl -N -X POST %[1]s/tidings/stream -d '{"index":"spells_by_element","terms":["fire"]}'
  curl -N '%[1]s/tidings/sse?collection=spells&snapshot=true&data=true'
  curl -X POST %[1]s/tidings/write -H 'Content-Type: application/json' -d '{"writes":[{"action":"create","collection":"spells","id":"9","data":{"name":"Spark","element":"fire"}}]}'
  curl -X POST %[1]s/tidings/write -H 'Content-Type: application/json' -d '{"writes":[{"action":"update","collection":"spells","id":"9","data":{"element":"air"}}]}'
  curl '%[2]s'
`, s.url, feedURL(s.url, s.b))
	if s.faunaURL != "" {
		text += fmt.Sprintf(`
Fauna front on %s (faunadb v4 streams, fauna v10 event sources;
any secret): README.md, "From Fauna's drivers", streams spell 1 from it.
`, s.faunaURL)
	}
	return text
}

// newBroker returns the broker with the spells schema and seeded spells,
// in memory or, with a data directory, on a file log.
func newBroker(data string) (*broker.Broker, error) {
	opt := broker.Options{Schema: index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{{
			Name: "spells_by_element", Collection: "spells", Terms: []string{"element"},
		}},
	}}
	if data != "" {
		l, err := txlog.OpenFile(data, txlog.FileOptions{})
		if err != nil {
			return nil, err
		}
		opt.Log = l
	}
	b, err := broker.New(opt)
	if err != nil {
		return nil, err
	}
	if err := seed(b); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// handler serves the page at / and tidings under /tidings/.
func handler(b *broker.Broker) (*http.ServeMux, *transport.Server) {
	srv := &transport.Server{Broker: b,
		// The page moves spells. Anyone who reaches this demo may write;
		// an application checks its caller here. Other origins' pages
		// cannot: writes must be application/json, which CORS (off here)
		// decides.
		AuthorizeWrite: func(*http.Request, *transport.WriteRequest) error { return nil },
	}
	mux := http.NewServeMux()
	mux.Handle("/tidings/", srv)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	return mux, srv
}

// seed creates a few spells, once: a restart on a data directory keeps
// what is there.
func seed(b *broker.Broker) error {
	spells := []struct{ id, name, element string }{
		{"1", "Fire Beak", "fire"}, {"2", "Water Dart", "water"}, {"3", "Stone Skin", "earth"},
		{"4", "Gust", "air"}, {"5", "Fireball", "fire"}, {"6", "Mist", "water"},
	}
	_, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
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

// feedURL is a feed request that shows something: spell 1's history from
// the start of the log (without a cursor, a feed starts at the head and
// waits for what comes next).
func feedURL(base string, b *broker.Broker) string {
	from := txlog.Cursor{Log: b.LogID()}
	return base + "/tidings/feed?collection=spells&id=1&page_size=16&cursor=" + from.String()
}
