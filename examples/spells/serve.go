package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tidings/tidings/admin"
	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/transport/electric"
	"github.com/tidings/tidings/transport/fauna"
)

// servers are the example's two HTTP servers on one broker: the pages,
// the native transport and the Electric front, and the Fauna front on a
// port of its own (the drivers post to absolute paths, so it owns the
// root of its origin).
type servers struct {
	b        *broker.Broker
	srv      *transport.Server
	electric *electric.Handler
	fauna    *fauna.Handler
	http     []*http.Server
	errc     chan error // what a server's Serve returned
	url      string     // the page's and the native transport's origin
	faunaURL string     // the Fauna front's origin; empty when it is off
}

// listen serves b on addr and, unless faunaAddr is empty, the Fauna front
// on faunaAddr, to pages of allowOrigins too, with the operators' view at
// /admin/ (see operatorsOnly for who may see it). Either address may have
// port 0: the URLs have the port listened on.
func listen(b *broker.Broker, addr, faunaAddr string, allowOrigins []string, adminToken string) (*servers, error) {
	mux, srv, eh := handler(b, allowOrigins)
	mux.Handle("/admin/", operatorsOnly(adminToken, &admin.Handler{Broker: b, Transport: srv}))
	s := &servers{b: b, srv: srv, electric: eh, errc: make(chan error, 2)}
	var err error
	if s.url, err = s.serve(addr, mux); err != nil {
		return nil, err
	}
	if faunaAddr != "" {
		// The front shares srv's broker, limits and Authorize hook; the
		// example has none, so any secret the drivers send will do.
		s.fauna = &fauna.Handler{Server: srv}
		if s.faunaURL, err = s.serve(faunaAddr, s.fauna); err != nil {
			s.http[0].Close()
			return nil, err
		}
	}
	return s, nil
}

// serve listens on addr and serves h there over HTTP/1.1 and unencrypted
// HTTP/2 (the Go client and Fauna's Node drivers speak h2c on http://),
// with the per-connection stream limit; it returns the server's URL.
func (s *servers) serve(addr string, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	transport.ConfigureServer(hs, 0)
	s.http = append(s.http, hs)
	go func() { s.errc <- hs.Serve(l) }()
	host, _, _ := net.SplitHostPort(addr)
	if host == "" {
		host = "localhost"
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return "http://" + net.JoinHostPort(host, port), nil
}

// shutdown ends the live responses of every front (native and v4 Fauna
// streams with shutting_down, the native ones with their cursor; v10
// Fauna streams cleanly, and their drivers reconnect; Electric's SSE
// responses end and its long-polls answer 503, and its client comes back
// with its offset), then closes the broker, then the servers, whose
// connections are left with nothing that never ends.
func (s *servers) shutdown(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.srv.Shutdown(ctx) })
	wg.Go(func() { s.electric.Shutdown(ctx) })
	if s.fauna != nil {
		wg.Go(func() { s.fauna.Shutdown(ctx) })
	}
	wg.Wait()
	s.b.Close()
	for _, hs := range s.http {
		hs.Shutdown(ctx)
	}
}

// operatorsOnly lets the requests of operators through to h. With a
// token, those that give it as the password of HTTP basic auth (any user
// name: a browser asks for it, curl takes -u admin:TOKEN), compared in
// constant time; without one, those from a loopback address, this
// machine. (Behind a reverse proxy on the same machine every request
// comes from loopback: give a token there.)
func operatorsOnly(token string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token)) // hashed, so that the comparison does not tell the length either
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			_, password, ok := r.BasicAuth()
			if got := sha256.Sum256([]byte(password)); !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="tidings admin", charset="UTF-8"`)
				http.Error(w, "401 unauthorized", http.StatusUnauthorized)
				return
			}
		} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || !isLoopback(host) {
			http.Error(w, "403 forbidden: /admin/ answers this machine only, unless the server has -admin-token", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
