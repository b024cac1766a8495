package metrics

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/transport"
)

// ScopeName is the instrumentation scope of these metrics: the name to
// give the Meter passed to Register, and the scope of what a Producer
// produces.
const ScopeName = "github.com/tidings/tidings/metrics"

// Attribute keys of the instruments.
const (
	// ProtocolKey is the protocol of a stream: transport.ProtocolSSE or
	// transport.ProtocolNDJSON.
	ProtocolKey = attribute.Key("tidings.protocol")
	// StatusCodeKey is the HTTP status a request was refused with, as in
	// OpenTelemetry's semantic conventions.
	StatusCodeKey = attribute.Key("http.response.status_code")
)

// Register creates the instruments listed in the package doc on meter,
// observed from b and, unless it is nil, from srv, and registers the
// callback that reads them. b must not be nil. Unregister the returned
// Registration to stop observing them (the instruments stay, with no
// more values).
//
// The callback calls b.Stats, b.Subscriptions and srv.Stats once per
// collection; b.Subscriptions holds the broker's commit lock only while
// it lists the subscriptions.
func Register(meter metric.Meter, b *broker.Broker, srv *transport.Server) (metric.Registration, error) {
	if b == nil {
		return nil, errors.New("metrics: Register needs a broker")
	}
	var (
		errs []error
		all  []metric.Observable
	)
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		all = append(all, c)
		return c
	}
	upDown := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		c, err := meter.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		all = append(all, c)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		all = append(all, g)
		return g
	}

	commits := counter("tidings.commits", "{commit}", "Transactions committed since the broker started.")
	conflicts := counter("tidings.conflicts", "{commit}", "Commits run again because another node appended first to a shared log.")
	delivered := counter("tidings.events.delivered", "{event}", "Events handed to subscribers.")
	overflows := counter("tidings.overflows", "{overflow}", "Times a subscriber's queue overflowed, so that it went on from the log.")
	subs := upDown("tidings.subscriptions.open", "{subscription}", "Open subscriptions.")
	catching := upDown("tidings.subscriptions.catching_up", "{subscription}", "Subscriptions reading the log after an overflow or a resume.")
	buffered := upDown("tidings.queue.size", "By", "Bytes of events waiting in subscribers' queues.")

	behindSubs := upDown("tidings.subscriptions.behind", "{subscription}", "Subscriptions that have not been handed every commit delivered.")
	behindMax := gauge("tidings.subscription.behind.max", "{commit}", "The most commits any subscription is behind.")
	lagMax, err := meter.Float64ObservableGauge("tidings.subscription.lag.max", metric.WithUnit("s"),
		metric.WithDescription("How long ago the oldest commit not yet handed to a subscription was made, the longest over subscriptions."))
	errs = append(errs, err)
	all = append(all, lagMax)
	queueMax := gauge("tidings.subscription.queue.max", "{event}", "The most events queued for any subscription.")

	var (
		open, refused                               metric.Int64Observable
		timeouts, written, feedPages, feedCollapsed metric.Int64Observable
	)
	if srv != nil {
		open = upDown("tidings.streams.open", "{stream}", "Streams open now, by protocol.")
		refused = counter("tidings.requests.refused", "{request}", "Requests answered with an error, by HTTP status.")
		timeouts = counter("tidings.streams.write_timeouts", "{stream}", "Streams cut off because a write missed the write timeout.")
		written = counter("tidings.streams.written", "By", "Bytes written by streams (events, heartbeats, endings; not headers).")
		feedPages = counter("tidings.feed.pages", "{page}", "Feed requests answered with a page.")
		feedCollapsed = counter("tidings.feed.collapsed", "{page}", "Feed pages answered by a read another request started.")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	protocols := map[string]metric.ObserveOption{
		transport.ProtocolSSE:    metric.WithAttributes(ProtocolKey.String(transport.ProtocolSSE)),
		transport.ProtocolNDJSON: metric.WithAttributes(ProtocolKey.String(transport.ProtocolNDJSON)),
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := b.Stats()
		o.ObserveInt64(commits, st.Commits)
		o.ObserveInt64(conflicts, st.Conflicts)
		o.ObserveInt64(delivered, st.EventsDelivered)
		o.ObserveInt64(overflows, st.Overflows)
		o.ObserveInt64(subs, st.Subscriptions)
		o.ObserveInt64(catching, st.CatchingUp)
		o.ObserveInt64(buffered, st.BytesBuffered)

		var a aggregate
		for s := range b.Subscriptions() {
			a.add(s)
		}
		o.ObserveInt64(behindSubs, a.behind)
		o.ObserveInt64(behindMax, a.behindMax)
		o.ObserveFloat64(lagMax, a.lagMax.Seconds())
		o.ObserveInt64(queueMax, int64(a.queueMax))

		if srv == nil {
			return nil
		}
		ss := srv.Stats()
		for p, n := range ss.Open {
			opt, ok := protocols[p]
			if !ok {
				opt = metric.WithAttributes(ProtocolKey.String(p))
			}
			o.ObserveInt64(open, n, opt)
		}
		for status, n := range ss.Refused {
			o.ObserveInt64(refused, n, metric.WithAttributes(StatusCodeKey.Int(status)))
		}
		o.ObserveInt64(timeouts, ss.WriteTimeouts)
		o.ObserveInt64(written, ss.BytesWritten)
		o.ObserveInt64(feedPages, ss.FeedPages)
		o.ObserveInt64(feedCollapsed, ss.FeedCollapsed)
		return nil
	}, all...)
}

// aggregate is what Register exports of the subscriptions' figures.
type aggregate struct {
	behind, behindMax int64
	lagMax            time.Duration
	queueMax          int
}

func (a *aggregate) add(s broker.SubscriptionStats) {
	if s.Behind > 0 {
		a.behind++
	}
	a.behindMax = max(a.behindMax, s.Behind)
	a.lagMax = max(a.lagMax, s.Lag)
	a.queueMax = max(a.queueMax, s.Queued)
}
