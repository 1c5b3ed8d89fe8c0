//! Prometheus metrics: requests by interaction, resource type and status; latency; upstream errors.
//!
//! Every label has a bounded set of values (interaction names, R4 type names, status codes), so the
//! series count cannot be driven up by clients.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of one finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// FHIR interaction name, or `admin`/`unrouted`.
    pub interaction: &'static str,
    /// R4 resource type, or `none`.
    pub resource_type: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// Labels of a latency observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InteractionLabels {
    /// FHIR interaction name.
    pub interaction: &'static str,
}

/// Labels of an upstream failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// `unreachable`, `timeout` or `bad_response`.
    pub kind: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The gateway's metric set and its registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Finished requests.
    pub requests: Family<RequestLabels, Counter>,
    /// Whole-request latency in seconds.
    pub duration: Family<InteractionLabels, Histogram, fn() -> Histogram>,
    /// Time to the upstream's response head, in seconds.
    pub upstream_duration: Family<InteractionLabels, Histogram, fn() -> Histogram>,
    /// Upstream failures.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Requests being processed now.
    pub in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Panics caught and turned into 500 responses.
    pub panics: Counter<u64, AtomicU64>,
    /// Writes the upstream accepted that could not be anchored.
    pub unanchored_writes: Counter<u64, AtomicU64>,
    /// Consent versions anchored but not indexed (not in force).
    pub unindexed_consents: Counter<u64, AtomicU64>,
    /// Indexed consents whose content no longer matched the ledger (ignored; a security alert).
    pub consent_integrity_alerts: Counter<u64, AtomicU64>,
    /// Ledger entries made durable since start (set from the sequencer when scraped).
    pub ledger_entries: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Ledger batches (one fsync each) since start: entries / batches is the mean batch size.
    pub ledger_batches: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("anchorgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let upstream_duration =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let in_flight = Gauge::default();
        let panics = Counter::default();
        let unanchored_writes = Counter::default();
        registry.register(
            "requests",
            "FHIR and admin requests served",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Whole-request latency",
            duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time until the upstream's response head",
            upstream_duration.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream failures by kind",
            upstream_errors.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being processed",
            in_flight.clone(),
        );
        registry.register(
            "panics",
            "Panics caught and answered with 500",
            panics.clone(),
        );
        registry.register(
            "unanchored_writes",
            "Writes accepted by the upstream that could not be anchored in the ledger",
            unanchored_writes.clone(),
        );
        let unindexed_consents = Counter::default();
        registry.register(
            "unindexed_consents",
            "Consent versions anchored but not indexed, hence not in force",
            unindexed_consents.clone(),
        );
        let consent_integrity_alerts = Counter::default();
        registry.register(
            "consent_integrity_alerts",
            "Indexed consents ignored because they no longer match their ledger commitment",
            consent_integrity_alerts.clone(),
        );
        let ledger_entries = Gauge::default();
        registry.register(
            "ledger_entries_committed",
            "Ledger entries made durable since start",
            ledger_entries.clone(),
        );
        let ledger_batches = Gauge::default();
        registry.register(
            "ledger_batches_committed",
            "Ledger batches made durable (one fsync each) since start",
            ledger_batches.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            upstream_duration,
            upstream_errors,
            in_flight,
            panics,
            unanchored_writes,
            unindexed_consents,
            consent_integrity_alerts,
            ledger_entries,
            ledger_batches,
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, labels: RequestLabels, elapsed: Duration) {
        self.duration
            .get_or_create(&InteractionLabels {
                interaction: labels.interaction,
            })
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
