package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/metrics"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// Serve a broker's and its HTTP server's metrics on /metrics, in
// Prometheus text format, through OpenTelemetry's Prometheus exporter.
func Example() {
	b, _ := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	defer b.Close()
	srv := &transport.Server{Broker: b}
	defer srv.Shutdown(context.Background())

	// The exporter is the SDK's reader; the Producer adds the latency
	// histograms, and Register the rest.
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(registry),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes), // tidings_commits_total
		otelprom.WithProducer(metrics.NewProducer(b)),
	)
	if err != nil {
		panic(err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer provider.Shutdown(context.Background())
	if _, err := metrics.Register(provider.Meter(metrics.ScopeName), b, srv); err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/tidings/", srv)
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer hs.Shutdown(context.Background())

	b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: "1"}, []byte(`{"name":"Fire Beak"}`))
	})

	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "tidings_commits_total") || strings.HasPrefix(l, "tidings_commit_duration_seconds_count") {
			fmt.Println(l)
		}
	}
	// Output:
	// tidings_commit_duration_seconds_count{otel_scope_name="github.com/tidings/tidings/metrics",otel_scope_schema_url="",otel_scope_version=""} 1
	// tidings_commits_total{otel_scope_name="github.com/tidings/tidings/metrics",otel_scope_schema_url="",otel_scope_version=""} 1
}
