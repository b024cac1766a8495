package metrics

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tidings/tidings/broker"
)

// Producer produces the broker's latency histograms (see the package
// doc, "Latency histograms") for a reader of the OpenTelemetry SDK.
type Producer struct {
	b     *broker.Broker
	start time.Time
}

var _ sdkmetric.Producer = (*Producer)(nil)

// NewProducer returns a Producer of b's latency histograms. Their start
// time is now: make it when the broker is made, since the broker counts
// from its start.
func NewProducer(b *broker.Broker) *Producer {
	return &Producer{b: b, start: time.Now()}
}

// Produce returns the four histograms of b.Stats, in one scope named
// ScopeName. It is safe to call concurrently.
func (p *Producer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	st := p.b.Stats()
	now := time.Now()
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: ScopeName},
		Metrics: []metricdata.Metrics{
			p.histogram("tidings.commit.duration", "Time Commit takes, from its call to its return, for commits that wrote something.", st.Commit, now),
			p.histogram("tidings.commit.fsync.duration", "Part of a commit spent waiting for the log to make it durable.", st.Fsync, now),
			p.histogram("tidings.queue.first.duration", "Time from a commit's start to its first event in a subscriber's queue.", st.FirstQueue, now),
			p.histogram("tidings.queue.last.duration", "Time from a commit's start to its last event in a subscriber's queue.", st.LastQueue, now),
		},
	}}, nil
}

// histogram converts l: the same buckets, bounds in seconds, and the
// observations above the last bound in the implied +Inf bucket.
func (p *Producer) histogram(name, desc string, l broker.Latencies, now time.Time) metricdata.Metrics {
	bounds := make([]float64, len(l.Bounds))
	for i, d := range l.Bounds {
		bounds[i] = d.Seconds()
	}
	return metricdata.Metrics{
		Name:        name,
		Description: desc,
		Unit:        "s",
		Data: metricdata.Histogram[float64]{
			Temporality: metricdata.CumulativeTemporality,
			DataPoints: []metricdata.HistogramDataPoint[float64]{{
				Attributes:   *attribute.EmptySet(),
				StartTime:    p.start,
				Time:         now,
				Count:        l.Count,
				Bounds:       bounds,
				BucketCounts: l.Counts,
				Sum:          l.Sum.Seconds(),
			}},
		},
	}
}
