//! Logging: `tracing` to stdout, JSON lines for collectors or plain text for
//! a terminal, filtered by `RUST_LOG` (default [`DEFAULT_FILTER`]).
//!
//! stdout carries nothing but log lines, so `kubectl logs` is parseable.
//! Client-supplied text (paths) is logged as fields, which the JSON
//! formatter escapes; the request logger also escapes control characters
//! itself, so a hostile path cannot forge a line in text mode either.
//!
//! Lines are handed to a background thread that writes them through a
//! buffer and flushes whenever it has caught up: one `write(2)` per burst of
//! lines instead of one per request, which is a third of the CPU time of a
//! probe at high request rates. The queue is bounded and not lossy: if
//! stdout stops draining, request handling waits rather than logs vanish.

use std::io::BufWriter;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// `info`, except actix's HTTP/1 parser, which logs every malformed request
/// a scanner sends at ERROR level ("stream error: ..."): those are the
/// client's errors, answered with 4xx, and must not page anyone. Set
/// `RUST_LOG` to see them again.
pub const DEFAULT_FILTER: &str = "info,actix_http::h1=off";

/// Lines queued for the writer thread at most (a few MiB at worst).
const QUEUED_LINES: usize = 16 * 1024;

/// Keeps the log writer running; dropping it flushes every queued line.
#[must_use = "logs are lost unless the guard lives until the program ends"]
pub struct LogGuard {
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    _worker: WorkerGuard,
}

impl Drop for LogGuard {
    /// Sends the last spans (before the log writer flushes, so that a
    /// failure to send them is still logged).
    fn drop(&mut self) {
        if let Some(traces) = self.traces.take() {
            let _ = traces.shutdown();
        }
    }
}

/// Installs the global subscriber. Call once, before anything logs, and
/// keep the guard until the end of `main`.
pub fn init(format: LogFormat) -> Result<LogGuard, Box<dyn std::error::Error + Send + Sync>> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    let traces = if crate::traces::requested() {
        Some(crate::traces::provider()?)
    } else {
        None
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces.as_ref().map(crate::traces::layer))
        .try_init()?;
    Ok(LogGuard {
        traces,
        _worker: worker,
    })
}
