// Package metrics exports the figures of a tidings broker and its HTTP
// server as OpenTelemetry metrics, for whatever the operator already
// scrapes or receives: Prometheus through OpenTelemetry's Prometheus
// exporter, OTLP, or any other reader of the OpenTelemetry SDK. It is a
// module of its own, so that the library keeps its few dependencies.
//
// Register creates observable instruments on a metric.Meter, read at each
// collection from broker.Broker.Stats, broker.Broker.Subscriptions and
// transport.Server.Stats. Nothing is added to the commit or delivery
// path: every figure is one the core already keeps.
//
// # Instruments
//
// Of the broker (Stats):
//
//	tidings.commits                    counter         {commit}
//	tidings.conflicts                  counter         {commit}
//	tidings.events.delivered           counter         {event}
//	tidings.overflows                  counter         {overflow}
//	tidings.subscriptions.open         up-down counter {subscription}
//	tidings.subscriptions.catching_up  up-down counter {subscription}
//	tidings.queue.size                 up-down counter By
//
// Of its subscriptions, as aggregates rather than a series each, so that
// the number of series does not grow with the number of subscribers
// (Subscriptions, read once per collection):
//
//	tidings.subscriptions.behind       up-down counter {subscription}  those with commits not yet handed to them
//	tidings.subscription.behind.max    gauge           {commit}        the most commits any is behind
//	tidings.subscription.lag.max       gauge           s               the longest any is behind, in time
//	tidings.subscription.queue.max     gauge           {event}         the most events queued for any
//
// Of the HTTP server (Stats), when one is given:
//
//	tidings.streams.open               up-down counter {stream}   tidings.protocol: "sse" or "ndjson"
//	tidings.requests.refused           counter         {request}  http.response.status_code
//	tidings.streams.write_timeouts     counter         {stream}
//	tidings.streams.written            counter         By
//	tidings.feed.pages                 counter         {page}
//	tidings.feed.collapsed             counter         {page}
//
// A status has a tidings.requests.refused series from its first refusal
// on. Behind and lag are the broker's (broker.SubscriptionStats): exact
// within its last broker.RecentCommits commits, a floor beyond.
//
// Through OpenTelemetry's Prometheus exporter with the translation
// strategy otlptranslator.UnderscoreEscapingWithSuffixes, tidings.commits
// is scraped as tidings_commits_total, tidings.subscription.lag.max as
// tidings_subscription_lag_max_seconds, tidings.streams.open as
// tidings_streams_open{tidings_protocol="sse"}, and
// tidings.commit.duration as the histogram
// tidings_commit_duration_seconds. The example sets that strategy
// explicitly: the exporter's default depends on the name validation
// scheme of the Prometheus libraries, and its doc says it will change.
//
// # Latency histograms
//
// The broker keeps four latency histograms (broker.Stats' Commit, Fsync,
// FirstQueue and LastQueue): fixed buckets, 1µs·2^i, counted since it
// started. The OpenTelemetry metric API has no observable histogram: a
// histogram instrument records one value at a time, and the broker hands
// out only cumulative bucket counts. Replaying those counts into a
// histogram instrument would invent values (a sum of bucket bounds, not
// of durations) and re-bucket them into the SDK's own bounds; adding a
// histogram instrument to the commit path would put the API, and a
// dependency, in the core.
//
// So the histograms are exported by a Producer, a
// go.opentelemetry.io/otel/sdk/metric.Producer: at each collection it
// reads broker.Stats and returns the four as metricdata.Histogram data
// points, cumulative, with the broker's own bounds (in seconds), counts
// and sum, exactly:
//
//	tidings.commit.duration            histogram s  Commit
//	tidings.commit.fsync.duration      histogram s  Fsync
//	tidings.queue.first.duration       histogram s  FirstQueue: commit start to its first event queued
//	tidings.queue.last.duration        histogram s  LastQueue: commit start to its last event queued
//
// A Producer is a part of the SDK, not the API: it is given to a reader
// (sdkmetric.WithProducer for a ManualReader or PeriodicReader, and the
// Prometheus exporter's WithProducer option, as in the example), and
// views do not apply to what it produces. Its start time is when it was
// made, so make it with the broker.
//
// Register and NewProducer are independent: a program that wants only
// one of the two uses only that one.
package metrics
