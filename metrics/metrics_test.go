package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/metrics"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/transport"
	"github.com/tidings/tidings/txlog"
)

// A scrape of /metrics over HTTP, parsed as Prometheus text, says what
// the test did: three commits, two streams open (one SSE, one NDJSON), a
// request refused with 404, a subscriber that reads nothing three
// commits and some milliseconds behind, and the commit latencies in a
// histogram with the broker's buckets.
func TestPrometheusScrape(t *testing.T) {
	b := newBroker(t)
	srv := &transport.Server{Broker: b}
	base, metricsURL := serve(t, b, srv)
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)

	// Two streams, read up to their start.
	nd, err := c.Post(base+"/stream", "application/json", strings.NewReader(`{"collection":"spells"}`))
	if err != nil {
		t.Fatal(err)
	}
	sse, err := c.Get(base + "/sse?collection=spells")
	if err != nil {
		t.Fatal(err)
	}
	for _, resp := range []*http.Response{nd, sse} {
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Request.URL, resp.Status)
		}
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() && !strings.Contains(lines.Text(), `"type":"start"`) {
		}
		if lines.Err() != nil || !strings.Contains(lines.Text(), `"type":"start"`) {
			t.Fatalf("%s: no start event: %q, %v", resp.Request.URL, lines.Text(), lines.Err())
		}
	}
	// Refused once.
	resp, err := c.Get(base + "/sse?collection=nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown collection: %s, want 404", resp.Status)
	}

	// A subscriber that never reads: every commit stays queued for it.
	slow, err := b.Subscribe(context.Background(), subscription.Collection("spells"), subscription.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	for i := range 3 {
		commit(t, b, fmt.Sprint(i))
	}
	// Delivery is asynchronous: wait for every commit to reach every queue.
	for deadline := time.Now().Add(10 * time.Second); slow.Stats().Queued < 3 || b.Stats().LastQueue.Count < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("commits not queued: %+v, %+v", slow.Stats(), b.Stats().LastQueue)
		}
		time.Sleep(time.Millisecond)
	}
	const waited = 20 * time.Millisecond
	time.Sleep(waited)

	fams := scrape(t, c, metricsURL)

	checkValue(t, fams, "tidings_commits_total", nil, dto.MetricType_COUNTER, 3)
	checkValue(t, fams, "tidings_subscriptions_open", nil, dto.MetricType_GAUGE, 3)
	checkValue(t, fams, "tidings_streams_open", map[string]string{"tidings_protocol": "ndjson"}, dto.MetricType_GAUGE, 1)
	checkValue(t, fams, "tidings_streams_open", map[string]string{"tidings_protocol": "sse"}, dto.MetricType_GAUGE, 1)
	checkValue(t, fams, "tidings_requests_refused_total", map[string]string{"http_response_status_code": "404"}, dto.MetricType_COUNTER, 1)
	if n := len(fams["tidings_requests_refused_total"].GetMetric()); n != 1 {
		t.Errorf("tidings_requests_refused_total has %d series, want 1", n)
	}
	checkValue(t, fams, "tidings_subscription_behind_max", nil, dto.MetricType_GAUGE, 3)
	if v := value(t, fams, "tidings_subscriptions_behind", nil, dto.MetricType_GAUGE); v < 1 {
		t.Errorf("tidings_subscriptions_behind = %v, want at least 1", v)
	}
	if v := value(t, fams, "tidings_subscription_lag_max_seconds", nil, dto.MetricType_GAUGE); v < waited.Seconds() || v > 10 {
		t.Errorf("tidings_subscription_lag_max_seconds = %v, want at least %v", v, waited.Seconds())
	}
	if v := value(t, fams, "tidings_subscription_queue_max", nil, dto.MetricType_GAUGE); v < 3 {
		t.Errorf("tidings_subscription_queue_max = %v, want at least 3", v)
	}
	if v := value(t, fams, "tidings_queue_size_bytes", nil, dto.MetricType_GAUGE); v <= 0 {
		t.Errorf("tidings_queue_size_bytes = %v, want some", v)
	}
	if v := value(t, fams, "tidings_streams_written_bytes_total", nil, dto.MetricType_COUNTER); v <= 0 {
		t.Errorf("tidings_streams_written_bytes_total = %v, want some", v)
	}
	for _, name := range []string{"tidings_conflicts_total", "tidings_overflows_total", "tidings_streams_write_timeouts_total",
		"tidings_feed_pages_total", "tidings_feed_collapsed_total", "tidings_subscriptions_catching_up"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}

	// The histograms: the broker's bounds, 1µs·2^i up to 2^24µs, then +Inf.
	want := b.Stats().Commit
	h := histogram(t, fams, "tidings_commit_duration_seconds")
	if h.GetSampleCount() != 3 || math.Abs(h.GetSampleSum()-want.Sum.Seconds()) > 1e-9 {
		t.Errorf("commit histogram: count %d, sum %v; want 3, %v", h.GetSampleCount(), h.GetSampleSum(), want.Sum.Seconds())
	}
	buckets := h.GetBucket()
	if len(buckets) != len(want.Bounds)+1 {
		t.Fatalf("commit histogram has %d buckets, want %d", len(buckets), len(want.Bounds)+1)
	}
	var cumulative uint64
	for i, bk := range buckets {
		cumulative += want.Counts[i]
		bound := math.Inf(1)
		if i < len(want.Bounds) {
			bound = float64(int64(1)<<i) * 1e-6
		}
		got := bk.GetUpperBound()
		if math.IsInf(got, 1) != math.IsInf(bound, 1) || math.Abs(got-bound) > bound*1e-9 || bk.GetCumulativeCount() != cumulative {
			t.Errorf("bucket %d: le=%v count %d; want le=%v count %d", i, bk.GetUpperBound(), bk.GetCumulativeCount(), bound, cumulative)
		}
	}
	for _, name := range []string{"tidings_commit_fsync_duration_seconds", "tidings_queue_first_duration_seconds", "tidings_queue_last_duration_seconds"} {
		histogram(t, fams, name)
	}
	// Every commit reached the three subscriptions' queues.
	if n := histogram(t, fams, "tidings_queue_last_duration_seconds").GetSampleCount(); n != 3 {
		t.Errorf("tidings_queue_last_duration_seconds count %d, want 3", n)
	}
}

// Without a transport.Server, Register exports the broker's figures
// alone; unregistered, it stops observing them.
func TestRegisterBrokerOnly(t *testing.T) {
	b := newBroker(t)
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(metrics.NewProducer(b)))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	reg, err := metrics.Register(provider.Meter(metrics.ScopeName), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, b, "1")

	names := collect(t, reader)
	if names["tidings.commits"] != 1 || names["tidings.commit.duration"] != 1 {
		t.Fatalf("collected %v", names)
	}
	for name := range names {
		if strings.HasPrefix(name, "tidings.streams") || strings.HasPrefix(name, "tidings.requests") || strings.HasPrefix(name, "tidings.feed") {
			t.Errorf("%s exported without a server", name)
		}
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if names := collect(t, reader); names["tidings.commits"] != 0 || names["tidings.commit.duration"] != 1 {
		t.Fatalf("after Unregister: %v", names)
	}

	if _, err := metrics.Register(provider.Meter(metrics.ScopeName), nil, nil); err == nil {
		t.Fatal("Register without a broker: no error")
	}
}

// collect returns the number of data points of each metric collected.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]int {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != metrics.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				names[m.Name] += len(d.DataPoints)
			case metricdata.Gauge[int64]:
				names[m.Name] += len(d.DataPoints)
			case metricdata.Gauge[float64]:
				names[m.Name] += len(d.DataPoints)
			case metricdata.Histogram[float64]:
				names[m.Name] += len(d.DataPoints)
			default:
				t.Errorf("%s: %T", m.Name, m.Data)
			}
		}
	}
	return names
}

func newBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Options{Schema: index.Schema{Collections: []string{"spells"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func commit(t *testing.T, b *broker.Broker, id string) {
	t.Helper()
	_, err := b.Commit(context.Background(), func(tx *broker.Tx) error {
		return tx.Create(txlog.Ref{Collection: "spells", ID: id}, []byte(`{"name":"Fire Beak"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serve starts, on a real listener, srv under /tidings/ and the metrics
// of b and srv under /metrics, as the example does; it returns the two
// URLs, and shuts everything down when the test ends.
func serve(t *testing.T, b *broker.Broker, srv *transport.Server) (base, metricsURL string) {
	t.Helper()
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(registry),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithProducer(metrics.NewProducer(b)),
	)
	if err != nil {
		t.Fatal(err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	if _, err := metrics.Register(provider.Meter(metrics.ScopeName), b, srv); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/tidings/", srv)
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	transport.ConfigureServer(hs, 100)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := hs.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-served; err != http.ErrServerClosed {
			t.Error(err)
		}
		if err := provider.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String() + "/tidings", "http://" + ln.Addr().String() + "/metrics"
}

// scrape gets url and parses it as Prometheus text.
func scrape(t *testing.T, c *http.Client, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	if f := expfmt.ResponseFormat(resp.Header); f.FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("%s: format %s, want text", url, f)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// series returns the one series of family name whose labels include
// labels.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, typ dto.MetricType) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s", name)
	}
	if f.GetType() != typ {
		t.Fatalf("%s is a %s, want %s", name, f.GetType(), typ)
	}
	var found *dto.Metric
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if have["otel_scope_name"] != metrics.ScopeName {
			t.Fatalf("%s: scope labels %v", name, have)
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if match {
			if found != nil {
				t.Fatalf("%s%v: more than one series", name, labels)
			}
			found = m
		}
	}
	if found == nil {
		t.Fatalf("%s%v: no series", name, labels)
	}
	return found
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, typ dto.MetricType) float64 {
	t.Helper()
	m := series(t, fams, name, labels, typ)
	if typ == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func checkValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, typ dto.MetricType, want float64) {
	t.Helper()
	if v := value(t, fams, name, labels, typ); v != want {
		t.Errorf("%s%v = %v, want %v", name, labels, v, want)
	}
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	return series(t, fams, name, nil, dto.MetricType_HISTOGRAM).GetHistogram()
}
