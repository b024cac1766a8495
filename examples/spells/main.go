// Command spells serves tidings over HTTP on the embedded in-memory
// broker (or, with -data, on a durable file log): the spells collection,
// the spells_by_element index, a few seeded spells, the stream, SSE, feed
// and write endpoints under /tidings/, and a page at / that shows the
// fire, water, earth and air sets live; Electric's shape endpoint at
// /electric/v1/shape (package transport/electric), and a page at
// /electric.html that shows the fire set live through ElectricSQL's own
// client, served from here; the operators' view of the subscriptions at
// /admin/ (package admin: for this machine only, or for whoever has the
// password -admin-token sets); and, on a second port, the same broker to
// Fauna's drivers (package transport/fauna).
//
//	go run ./examples/spells
//
// Pages on other origins are refused unless -allow-origin names them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/examples/spells/site"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/electric"
	"github.com/tidings/tidings/txlog"
)

// The page, Electric's page and its client module: package site's.
var page, electricPage, electricClient = site.Page, site.ElectricPage, site.ElectricClient

// defaultFaunaAddr is where the Fauna front listens unless -fauna-addr
// says otherwise: plain HTTP (h2c), so not 8443, which reads as TLS.
const defaultFaunaAddr = "localhost:8081"

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	faunaAddr := flag.String("fauna-addr", defaultFaunaAddr, "address of the Fauna front for Fauna's drivers (empty: off)")
	data := flag.String("data", "", "directory of a durable log (default: in memory)")
	adminToken := flag.String("admin-token", "", "password (HTTP basic auth, any user) for the operators' view at /admin/ (default: none, and only this machine may see it)")
	var origins []string
	flag.Func("allow-origin", "an origin (scheme://host:port) whose pages may read and write this server (CORS); repeat for more, * for any (default: none)", func(o string) error {
		origins = append(origins, o)
		return nil
	})
	flag.Parse()
	if err := run(*addr, *faunaAddr, *data, origins, *adminToken); err != nil {
		fmt.Fprintln(os.Stderr, "spells:", err)
		os.Exit(1)
	}
}

func run(addr, faunaAddr, data string, allowOrigins []string, adminToken string) error {
	b, err := newBroker(data)
	if err != nil {
		return err
	}
	defer b.Close()
	s, err := listen(b, addr, faunaAddr, allowOrigins, adminToken)
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
	text := fmt.Sprintf(`tidings spells example on %[1]s (open it in a browser;
%[1]s/electric.html shows the fire set through ElectricSQL's client)

Try:
  curl -N -X POST %[1]s/tidings/stream -d '{"index":"spells_by_element","terms":["fire"]}'
  curl -N '%[1]s/tidings/sse?collection=spells&snapshot=true&data=true'
  curl -X POST %[1]s/tidings/write -H 'Content-Type: application/json' -d '{"writes":[{"action":"create","collection":"spells","id":"9","data":{"name":"Spark","element":"fire"}}]}'
  curl -X POST %[1]s/tidings/write -H 'Content-Type: application/json' -d '{"writes":[{"action":"update","collection":"spells","id":"9","data":{"element":"air"}}]}'
  curl '%[2]s'
  curl '%[3]s'

Operators: %[1]s/admin/ lists the open subscriptions, the most behind
first (?format=json for JSON; from this machine only, or with -admin-token).
`, s.url, feedURL(s.url, s.b), shapeURL(s.url))
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
	opt := broker.Options{Schema: site.Schema()}
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
	if err := site.Seed(context.Background(), b); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// handler is site.Mux: the pages, tidings and Electric's shape endpoint.
func handler(b *broker.Broker, allowOrigins []string) (*http.ServeMux, *transport.Server, *electric.Handler) {
	return site.Mux(b, allowOrigins)
}

// static is site.Static.
var static = site.Static

// shapeURL is a shape request that shows something: the fire set's
// initial rows (where=element = 'fire').
func shapeURL(base string) string {
	return base + "/electric/v1/shape?table=spells&where=element%20%3D%20%27fire%27&offset=-1"
}

// feedURL is a feed request that shows something: spell 1's history from
// the start of the log (without a cursor, a feed starts at the head and
// waits for what comes next).
func feedURL(base string, b *broker.Broker) string {
	from := txlog.Cursor{Log: b.LogID()}
	return base + "/tidings/feed?collection=spells&id=1&page_size=16&cursor=" + from.String()
}
