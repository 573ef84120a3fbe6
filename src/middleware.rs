//! What happens around every request: size limits, metrics, one log line,
//! and the security headers every answer carries.
//!
//! The size limits run before routing, so an oversized request to `/` is
//! answered 414/431 and never counts. actix itself closes connections whose
//! head exceeds 128 KiB; the tighter limits here are the ones we promise.

use std::time::Instant;

use tracing::Instrument;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{Error, web};

use crate::metrics::{Metrics, UNMATCHED_ROUTE};
use crate::routes::plain;
use crate::state::AppState;

/// The longest request target we accept, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The largest header section we accept, in bytes (names, values, `: ` and CRLF).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most of a client-supplied field (path, method) one log line carries.
/// A refused 60 KiB target must not become a 60 KiB log line: containerd
/// and Docker split lines over 16 KiB into partial records, and a client
/// could flood the logs.
const MAX_LOGGED_FIELD_BYTES: usize = 1024;

/// Headers on every answer, the refused ones included. Every answer is
/// dynamic (a count, the time, health), so none may be cached.
pub fn default_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("cache-control", "no-store"))
        .add(("x-content-type-options", "nosniff"))
        .add(("referrer-policy", "no-referrer"))
        .add(("x-frame-options", "DENY"))
        .add(("cross-origin-resource-policy", "same-origin"))
}

fn oversized(req: &ServiceRequest) -> Option<(StatusCode, &'static str)> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Some((StatusCode::URI_TOO_LONG, "request URI too long\n"));
    }
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_len > MAX_HEADER_BYTES {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large\n",
        ));
    }
    None
}

/// `text`, cut to [`MAX_LOGGED_FIELD_BYTES`] (on a character boundary)
/// with `...` marking the cut.
fn for_log(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_LOGGED_FIELD_BYTES {
        return text.into();
    }
    let mut end = MAX_LOGGED_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end]).into()
}

/// Enforces the size limits, then records metrics and logs one line.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let span = crate::traces::enabled().then(|| server_span(&req));
    let mut response = match (oversized(&req), &span) {
        (Some((status, body)), _) => req.into_response(plain(status, body)),
        (None, Some(span)) => next
            .call(req)
            .instrument(span.clone())
            .await?
            .map_into_boxed_body(),
        (None, None) => next.call(req).await?.map_into_boxed_body(),
    };
    if response
        .request()
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.drain.started())
    {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    let request = response.request();
    let status = response.status();
    let route = request.match_pattern();
    let route = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
    let elapsed = started.elapsed();
    if let Some(metrics) = request.app_data::<web::Data<Metrics>>() {
        metrics.observe_request(request.method(), route, status, elapsed.as_secs_f64());
    }
    // The path is client-supplied: `escape_debug` neutralises control
    // characters in text logs; the JSON formatter escapes it as a string.
    let method = for_log(request.method().as_str());
    let path = for_log(request.path());
    let path = path.escape_debug();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    match &span {
        Some(span) => {
            span.record("http.response.status_code", status.as_u16());
            let (trace_id, span_id) = crate::traces::ids(span);
            tracing::info!(%method, %path, route, status = status.as_u16(), duration_ms, trace_id, span_id, "request");
        }
        None => {
            tracing::info!(%method, %path, route, status = status.as_u16(), duration_ms, "request")
        }
    }
    Ok(response)
}

/// A server span following the HTTP semantic conventions, named after the
/// route (never the raw path), continuing the caller's trace if it sent one.
fn server_span(req: &ServiceRequest) -> tracing::Span {
    let method = req.method().as_str();
    let route = req.match_pattern();
    let route = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = %for_log(req.path()),
        http.response.status_code = tracing::field::Empty,
    );
    crate::traces::continue_from(&span, &HeaderExtractor(req.headers()));
    span
}

/// Request headers, as OpenTelemetry's propagators read them.
struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
