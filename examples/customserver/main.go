// Command customserver mounts tidings on an existing http.ServeMux under a
// prefix, next to the application's own routes: HTTP/2 over TLS (with a
// self-signed certificate made at start, unless -cert and -key are given)
// and unencrypted HTTP/2 (h2c) on a second port, Authorize and
// AuthorizeWrite hooks that want a token (a bearer header, a cookie or
// access_token), CORS with credentials for one origin, and a graceful
// shutdown on SIGINT and SIGTERM that ends every stream with its cursor.
//
//	go run ./examples/customserver
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
)

func main() {
	tlsAddr := flag.String("tls", "localhost:8443", "address for HTTP/2 over TLS")
	h2cAddr := flag.String("h2c", "localhost:8081", "address for HTTP/1.1 and h2c")
	cert := flag.String("cert", "", "certificate file (default: self-signed)")
	key := flag.String("key", "", "key file")
	token := flag.String("token", "secret", "the bearer token streams must present")
	origin := flag.String("origin", "http://localhost:3000", "the origin allowed cross-origin")
	flag.Parse()
	if err := run(*tlsAddr, *h2cAddr, *cert, *key, *token, *origin); err != nil {
		fmt.Fprintln(os.Stderr, "customserver:", err)
		os.Exit(1)
	}
}

func run(tlsAddr, h2cAddr, certFile, keyFile, token, origin string) error {
	b, err := newBroker()
	if err != nil {
		return err
	}
	defer b.Close()

	mux, srv := handler(b, token, origin)
	tlsServer := &http.Server{Addr: tlsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	transport.ConfigureServer(tlsServer, 0)
	if certFile == "" {
		c, err := selfSigned()
		if err != nil {
			return err
		}
		tlsServer.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}}
	}
	h2cServer := &http.Server{Addr: h2cAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	h2cServer.Protocols = new(http.Protocols)
	h2cServer.Protocols.SetHTTP1(true)
	h2cServer.Protocols.SetUnencryptedHTTP2(true)
	transport.ConfigureServer(h2cServer, 0)

	errc := make(chan error, 2)
	go func() { errc <- tlsServer.ListenAndServeTLS(certFile, keyFile) }()
	go func() { errc <- h2cServer.ListenAndServe() }()
	fmt.Printf(`tidings under /api/tidings/ on https://%s (HTTP/2, TLS) and http://%s (h2c)
  curl -k -N -H 'Authorization: Bearer %s' -X POST https://%[1]s/api/tidings/stream -d '{"collection":"orders"}'
  curl --http2-prior-knowledge -N -H 'Authorization: Bearer %[3]s' -X POST http://%[2]s/api/tidings/stream -d '{"collection":"orders"}'
  curl -k -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' -X POST https://%[1]s/api/tidings/write -d '{"writes":[{"action":"create","collection":"orders","id":"1","data":{"total":12}}]}'
`, tlsAddr, h2cAddr, token)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	// Streams first (they never go idle, so http.Server.Shutdown would wait
	// for them): each ends with shutting_down and its cursor, spread over
	// a jittered window so that clients do not reconnect all at once.
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	tlsServer.Shutdown(sctx)
	h2cServer.Shutdown(sctx)
	return nil
}

// newBroker is an in-memory broker with the orders collection.
func newBroker() (*broker.Broker, error) {
	return broker.New(broker.Options{Schema: index.Schema{Collections: []string{"orders"}}})
}

// handler is the application's own mux, with tidings under /api/tidings/:
// streams and writes want the token, and one origin may use them from a
// browser.
func handler(b *broker.Broker, token, origin string) (*http.ServeMux, *transport.Server) {
	srv := &transport.Server{
		Broker:         b,
		AllowedOrigins: []string{origin},
		// A page on origin sends the cookie with EventSource only if it
		// asks (withCredentials), and the browser hands it the response
		// only if the server answers with the exact origin and
		// Access-Control-Allow-Credentials: true.
		AllowCredentials: true,
		// Streams and writes want the token, however the client sends it:
		// a bearer header (fetch, the Go client), or, from a browser's
		// EventSource, which sends no custom headers, a cookie or the
		// access_token query parameter. A cookie rides along on requests
		// from other origins' pages too; what keeps their writes out is
		// that the write endpoint takes only application/json, which a
		// browser must preflight, and CORS allows only origin.
		Authorize: func(r *http.Request, t subscription.Target) error {
			return checkToken(r, token)
		},
		AuthorizeWrite: func(r *http.Request, req *transport.WriteRequest) error {
			return checkToken(r, token)
		},
		Logger: slog.Default(),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/api/tidings/", srv)
	return mux, srv
}

// selfSigned makes a certificate for localhost, for the demo only.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// checkToken accepts a request that carries the token as a bearer header,
// an access_token query parameter, or the cookie "token".
func checkToken(r *http.Request, token string) error {
	got := transport.BearerToken(r)
	if got == "" {
		if c, err := r.Cookie("token"); err == nil {
			got = c.Value
		}
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return transport.ErrUnauthorized
	}
	return nil
}
