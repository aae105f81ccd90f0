//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Counters and histograms are updated where things happen; what the health
//! registry already knows (lag, offsets, service states, breaker states, the
//! log's head) is copied into gauges when the metrics are scraped. Gauges
//! are only ever written: whoever needs a state asks its owner.

use crate::domain::Seq;
use crate::health::{ServiceHealth, ServiceState};
use crate::resilience::BreakerState;
use crate::store::WriterReading;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub orders: IntCounterVec,
    events_appended: IntCounter,
    pub events_consumed: IntCounterVec,
    consumer_lag: IntGaugeVec,
    payments_deferred: prometheus::IntGauge,
    consumer_offset: IntGaugeVec,
    pub mailbox_wait: HistogramVec,
    pub mailbox_rejections: IntCounterVec,
    pub rate_limited: IntCounterVec,
    breaker_state: IntGaugeVec,
    pub breaker_transitions: IntCounterVec,
    pub restarts: IntCounterVec,
    /// Failures of one order's event or command, kept to that order.
    pub event_failures: IntCounterVec,
    service_state: IntGaugeVec,
    pub payments: IntCounterVec,
    store_commits: IntCounter,
    store_keys: IntCounter,
    store_keys_by_table: IntCounterVec,
    store_busy: prometheus::Counter,
    stream_exported: prometheus::IntGauge,
    stream_failures: IntCounter,
    failover_leading: prometheus::IntGauge,
    failover_since_snapshot: prometheus::IntGauge,
}

/// Latency buckets from 0.5 ms to 10 s.
const SECONDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Registers a metric built without labels.
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.expect("a valid metric");
    r.register(Box::new(metric.clone())).expect("registered once");
    metric
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(SECONDS.to_vec()), labels)
        .expect("a valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let events_appended =
            registered(&r, IntCounter::new("fulfil_events_appended_total", "Events appended to the log"));
        let store_commits =
            registered(&r, IntCounter::new("fulfil_store_commits_total", "Writes committed to the store"));
        let store_keys = registered(
            &r,
            IntCounter::new("fulfil_store_keys_written_total", "Keys written or removed, events included"),
        );
        let store_busy = registered(
            &r,
            prometheus::Counter::new(
                "fulfil_store_writer_busy_seconds_total",
                "Time the store's writer lock was held; its rate is the store's load (1 = saturated)",
            ),
        );
        let stream_exported = registered(
            &r,
            prometheus::IntGauge::new(
                "fulfil_stream_exported_event",
                "The last event published to the stream ([stream]); the log's head minus it is the backlog",
            ),
        );
        let stream_failures = registered(
            &r,
            IntCounter::new(
                "fulfil_stream_failures_total",
                "Times publishing to the stream failed and started over",
            ),
        );
        let failover_leading = registered(
            &r,
            prometheus::IntGauge::new(
                "fulfil_failover_leading",
                "1 while this node leads in failover mode (stream.mode); followers answer 0 themselves",
            ),
        );
        let failover_since_snapshot = registered(
            &r,
            prometheus::IntGauge::new(
                "fulfil_failover_copies_since_snapshot",
                "On a failover leader: copies of the store the stream holds past the newest snapshot (a follower writes one every stream.snapshot_every, the leader after two rounds without; growing without end means none can)",
            ),
        );
        Metrics {
            stream_exported,
            stream_failures,
            failover_leading,
            failover_since_snapshot,
            http_requests: counter(
                &r,
                "fulfil_http_requests_total",
                "HTTP requests",
                &["route", "method", "status"],
            ),
            http_duration: histogram(
                &r,
                "fulfil_http_request_duration_seconds",
                "HTTP request latency",
                &["route", "method"],
            ),
            orders: counter(&r, "fulfil_orders_total", "Orders entering each status", &["status"]),
            events_appended,
            store_keys_by_table: counter(
                &r,
                "fulfil_store_keys_by_table_total",
                "Keys written or removed, by table (\"(log)\": the log's records)",
                &["table"],
            ),
            events_consumed: counter(
                &r,
                "fulfil_events_consumed_total",
                "Events applied by each service",
                &["service"],
            ),
            payments_deferred: {
                let g = prometheus::IntGauge::new(
                    "fulfil_payments_deferred",
                    "Deferred card payments waiting for the gateway",
                )
                .expect("a valid gauge");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            consumer_lag: gauge(
                &r,
                "fulfil_consumer_lag_events",
                "Events a service has not processed yet",
                &["service"],
            ),
            consumer_offset: gauge(
                &r,
                "fulfil_consumer_offset",
                "The last event a service processed",
                &["service"],
            ),
            mailbox_wait: histogram(
                &r,
                "fulfil_mailbox_wait_seconds",
                "Time callers waited for room at a service",
                &["service"],
            ),
            mailbox_rejections: counter(
                &r,
                "fulfil_mailbox_rejections_total",
                "Calls refused because a service stayed full",
                &["service"],
            ),
            rate_limited: counter(
                &r,
                "fulfil_rate_limited_total",
                "Calls refused by a rate limit",
                &["limit"],
            ),
            breaker_state: gauge(
                &r,
                "fulfil_breaker_state",
                "1 for the breaker's current state",
                &["breaker", "state"],
            ),
            breaker_transitions: counter(
                &r,
                "fulfil_breaker_transitions_total",
                "Circuit breaker state changes",
                &["breaker", "to"],
            ),
            restarts: counter(
                &r,
                "fulfil_service_restarts_total",
                "Service restarts after a failure",
                &["service"],
            ),
            event_failures: counter(
                &r,
                "fulfil_order_failures_total",
                "Failures of one order's event or command, kept to that order (no restart)",
                &["service"],
            ),
            service_state: gauge(
                &r,
                "fulfil_service_state",
                "1 for each service's current state",
                &["service", "state"],
            ),
            payments: counter(&r, "fulfil_payments_total", "Card payment outcomes", &["outcome"]),
            store_commits,
            store_keys,
            store_busy,
            registry: r,
        }
    }

    pub fn observe_http(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.http_duration.with_label_values(&[route, method]).observe(took.as_secs_f64());
    }

    /// The stream export has published every event up to `seq`.
    pub fn stream_exported(&self, seq: Seq) {
        self.stream_exported.set(i64::try_from(seq).unwrap_or(i64::MAX));
    }

    /// The last event published to the stream (0: none yet).
    pub fn stream_exported_event(&self) -> Seq {
        self.stream_exported.get().max(0) as Seq
    }

    /// This node leads its failover cluster.
    pub fn set_leading(&self) {
        self.failover_leading.set(1);
    }

    /// Copies the stream holds past the newest snapshot, as the leader
    /// last looked.
    pub fn set_copies_since_snapshot(&self, copies: u64) {
        self.failover_since_snapshot.set(copies as i64);
    }

    pub fn stream_failed(&self) {
        self.stream_failures.inc();
    }

    pub fn breaker_moved(&self, breaker: &str, to: BreakerState) {
        self.breaker_transitions.with_label_values(&[breaker, to.as_str()]).inc();
    }

    /// The text exposition, with gauges refreshed from the health registry's
    /// snapshot (`services`, `breakers`), the log's head and the store's
    /// writer counters.
    pub fn render(
        &self,
        services: &BTreeMap<&'static str, ServiceHealth>,
        breakers: &BTreeMap<&'static str, BreakerState>,
        log_head: Seq,
        writer: WriterReading,
    ) -> String {
        let appended = self.events_appended.get();
        self.events_appended.inc_by(log_head.saturating_sub(appended));
        self.store_commits.inc_by(writer.commits.saturating_sub(self.store_commits.get()));
        self.store_keys.inc_by(writer.keys.saturating_sub(self.store_keys.get()));
        for (table, keys) in &writer.by_table {
            let counter = self.store_keys_by_table.with_label_values(&[table]);
            counter.inc_by(keys.saturating_sub(counter.get()));
        }
        self.store_busy.inc_by((writer.busy.as_secs_f64() - self.store_busy.get()).max(0.0));
        for (breaker, now) in breakers {
            for state in [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen] {
                self.breaker_state
                    .with_label_values(&[breaker, state.as_str()])
                    .set(i64::from(state == *now));
            }
        }
        if let Some(backlog) = services.get(crate::service::Service::Payment.name()).and_then(|h| h.backlog) {
            self.payments_deferred.set(backlog as i64);
        }
        for (service, h) in services {
            self.consumer_lag.with_label_values(&[service]).set(h.lag as i64);
            self.consumer_offset.with_label_values(&[service]).set(h.offset as i64);
            for state in ServiceState::ALL {
                let name = state.as_str();
                self.service_state.with_label_values(&[service, name]).set(i64::from(h.state == state));
            }
        }
        let mut families = self.registry.gather();
        families.push(write_holds(&writer));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// How long each store write held the writer lock, as a histogram read off
/// the store's own counts ([`WriterReading::holds_within`]). sled makes every
/// read in the node wait while a write commits, so this histogram's tail is
/// the node's latency tail (README, performance).
fn write_holds(writer: &WriterReading) -> prometheus::proto::MetricFamily {
    use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
    let buckets = SECONDS.iter().map(|&le| {
        let mut b = Bucket::default();
        b.set_upper_bound(le);
        b.set_cumulative_count(writer.holds_within(std::time::Duration::from_secs_f64(le)));
        b
    });
    let mut histogram = Histogram::default();
    histogram.set_bucket(buckets.collect());
    histogram.set_sample_count(writer.commits);
    histogram.set_sample_sum(writer.busy.as_secs_f64());
    let mut metric = Metric::default();
    metric.set_histogram(histogram);
    let mut family = MetricFamily::default();
    family.set_name("fulfil_store_write_hold_seconds".into());
    family.set_help("How long each store write held the writer lock; every read waits while one does".into());
    family.set_field_type(MetricType::HISTOGRAM);
    family.set_metric(vec![metric]);
    family
}
