//! Prometheus metrics, in the service's own registry.
//!
//! A registry of our own (rather than the process-global default) keeps
//! tests independent of each other and makes `/metrics` show exactly what
//! this service defines plus the standard `process_*` metrics.
//!
//! # Security
//! `/metrics` is unauthenticated on purpose, like every Prometheus target;
//! restrict who can reach it with a NetworkPolicy, not in the service.
//! Label values never come from the client: the route label is the matched
//! pattern or `unmatched`, and unusual methods are folded into `OTHER`, so a
//! scanner cannot grow the number of series.

use actix_web::http::{Method, StatusCode};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::store::StoreMetrics;

/// HTTP latency buckets: from 100 µs (a probe) to 5 s (a visit stuck behind
/// a lock timeout).
const HTTP_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// The label value for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    /// The store's metrics: count, durable writes and their errors.
    pub store: StoreMetrics,
    /// Requests by method, route pattern and status.
    pub http_requests: IntCounterVec,
    /// Request latency by method and route pattern.
    pub http_duration: HistogramVec,
    /// Peers found by the last discovery.
    pub peers_discovered: IntGauge,
    /// Failed fetches of a peer's count.
    pub peer_fetch_errors: IntCounter,
    /// Injected faults switched on or off, by fault and action.
    pub fault_changes: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric, including the process collector.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let store = StoreMetrics::new()?;
        let http_requests = IntCounterVec::new(
            Opts::new("moscow_time_http_requests_total", "HTTP requests answered."),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "moscow_time_http_request_duration_seconds",
                "Time from request to response.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let peers_discovered = IntGauge::new(
            "moscow_time_peers_discovered",
            "Instances found by the last peer discovery, this one included.",
        )?;
        let peer_fetch_errors = IntCounter::new(
            "moscow_time_peer_fetch_errors_total",
            "Fetches of a peer's count that failed or timed out.",
        )?;
        let fault_changes = IntCounterVec::new(
            Opts::new(
                "moscow_time_fault_changes_total",
                "Injected faults switched on (set) or off (cleared); only with fault injection enabled.",
            ),
            &["fault", "action"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "moscow_time_build_info",
                "Always 1; the version of the running build.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        store.register(&registry)?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(peers_discovered.clone()))?;
        registry.register(Box::new(peer_fetch_errors.clone()))?;
        registry.register(Box::new(fault_changes.clone()))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            store,
            http_requests,
            http_duration,
            peers_discovered,
            peer_fetch_errors,
            fault_changes,
        })
    }

    /// Records one answered request.
    pub fn observe_request(&self, method: &Method, route: &str, status: StatusCode, seconds: f64) {
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// A bounded set of method label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_metric_is_exported() {
        let m = Metrics::new().unwrap();
        m.observe_request(&Method::GET, "/", StatusCode::OK, 0.001);
        m.store.persist_duration.observe(0.001);
        let text = m.render().unwrap();
        for name in [
            "moscow_time_visits_total",
            "moscow_time_http_requests_total{method=\"GET\",route=\"/\",status=\"200\"} 1",
            "moscow_time_http_request_duration_seconds_bucket",
            "moscow_time_persist_duration_seconds_bucket",
            "moscow_time_persist_batch_size",
            "moscow_time_persist_errors_total",
            "moscow_time_visits_late_total",
            "moscow_time_persist_in_flight_seconds",
            "moscow_time_build_info{version=\"",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    #[test]
    fn unusual_methods_share_one_label_value() {
        let m = Metrics::new().unwrap();
        for name in ["FOO", "BAR", "BAZ"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            m.observe_request(
                &method,
                UNMATCHED_ROUTE,
                StatusCode::METHOD_NOT_ALLOWED,
                0.0,
            );
        }
        let text = m.render().unwrap();
        assert!(
            text.contains("method=\"OTHER\",route=\"unmatched\",status=\"405\"} 3"),
            "{text}"
        );
    }
}
