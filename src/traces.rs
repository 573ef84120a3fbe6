//! OpenTelemetry traces over OTLP/HTTP (protobuf), enabled only when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` are honoured, and the exporter reads the
//! other standard `OTEL_*` variables itself.
//!
//! Unset, nothing here runs on the request path: no span is created
//! ([`enabled`] is one atomic load). Set, every request gets a server span
//! named after its route, each durable write a span linked from every visit
//! it persisted, and each peer fetch a client span whose W3C `traceparent`
//! the peer continues, so one page view's trace spans every pod it asked.
//! Spans leave on a background thread in batches; a collector that is down
//! costs a warning at most once a minute and never slows or fails a
//! request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The variables that switch tracing on.
pub const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// How often an exporter failure may be logged at most.
const WARN_EVERY: Duration = Duration::from_secs(60);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are being recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the environment asks for traces.
pub fn requested() -> bool {
    ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

/// Builds the tracer provider that exports to the configured endpoint.
/// Call outside any async runtime (the HTTP client is a blocking one).
pub fn provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("moscow-time");
    }
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(QuietExporter {
            inner: exporter,
            last_warning: Mutex::new(None),
        })
        .build();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(provider)
}

/// A tracing layer that records spans into `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("moscow-time"))
        .with_threads(false)
        .with_location(false)
}

/// Makes the W3C trace context in `headers` (if any) the parent of `span`.
pub fn continue_from(span: &tracing::Span, headers: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(headers);
    let _ = span.set_parent(parent);
}

/// The W3C trace context headers (`traceparent`) that make a peer continue `span`.
pub fn headers_for(span: &tracing::Span) -> Vec<(String, String)> {
    let mut headers = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    headers.into_iter().collect()
}

/// The trace and span ids of `span`, for log lines.
pub fn ids(span: &tracing::Span) -> (String, String) {
    use opentelemetry::trace::TraceContextExt;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    (
        span_context.trace_id().to_string(),
        span_context.span_id().to_string(),
    )
}

/// The OTLP exporter, logging its failures at most once a minute.
#[derive(Debug)]
struct QuietExporter {
    inner: opentelemetry_otlp::SpanExporter,
    last_warning: Mutex<Option<Instant>>,
}

impl QuietExporter {
    fn warn(&self, error: &dyn std::fmt::Display) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(error = %error, "exporting traces failed; spans are dropped (said at most once a minute)");
        }
    }
}

impl SpanExporter for QuietExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            self.warn(error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
