//! Logging: `tracing` to stdout, JSON lines for collectors or plain text for
//! a terminal, filtered by `RUST_LOG` (default [`DEFAULT_FILTER`]).
//!
//! stdout carries nothing but log lines, so `kubectl logs` is parseable.
//! Client-supplied text (paths) is logged as fields, which the JSON
//! formatter escapes; the request logger also escapes control characters
//! itself, so a hostile path cannot forge a line in text mode either.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `info`, except actix's HTTP/1 parser, which logs every malformed request
/// a scanner sends at ERROR level ("stream error: ..."): those are the
/// client's errors, answered with 4xx, and must not page anyone. Set
/// `RUST_LOG` to see them again.
pub const DEFAULT_FILTER: &str = "info,actix_http::h1=off";

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: LogFormat) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    }
}
