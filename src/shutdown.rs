//! Stopping gracefully: the signals we answer, the drain state every answer
//! reads, and the drain sequence (delay, listener close, in-flight requests,
//! last batch).
//!
//! Signal handling is ours rather than actix's: actix treats SIGINT as a
//! forced stop, but a terminal user pressing Ctrl-C should get the same
//! graceful drain as Kubernetes' SIGTERM.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::store::Committer;

/// A signal that stops the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// What Kubernetes sends: drain after the shutdown delay.
    Term,
    /// Ctrl-C: drain at once.
    Int,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        })
    }
}

/// SIGTERM and SIGINT, installed once so that a second signal is not lost.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers: from now on SIGTERM and SIGINT are ours.
    ///
    /// # Errors
    /// When the runtime cannot register a handler.
    pub fn install() -> anyhow::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("failed to install a SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("failed to install a SIGINT handler")?,
        })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Term,
            _ = self.int.recv() => Signal::Int,
        }
    }
}

/// Whether the service is draining: once started, readiness fails and every
/// answer carries `Connection: close`, so keep-alive clients (ingress
/// controllers, load balancers, other pods) open their next request
/// elsewhere.
#[derive(Debug, Default)]
pub struct Drain(AtomicBool);

impl Drain {
    /// From now on, close every connection after its answer.
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether draining has started.
    pub fn started(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Waits for a signal, then stops `server` gracefully.
///
/// At any signal the drain starts: readiness fails at once and every answer
/// from then on carries `Connection: close`. After SIGTERM the service
/// keeps serving everything, visits included, for `delay`: load balancers
/// and kube-proxy take a moment to stop routing to a pod, and what they
/// still send must not be refused. A second SIGTERM, or
/// a SIGINT, ends the delay early (and a first SIGINT skips it: Ctrl-C stays
/// instant). Then the listener closes and in-flight requests finish within
/// the server's shutdown timeout; [`serve_then_persist`] writes the last
/// batch.
pub async fn stop_on_signal(
    mut signals: Signals,
    delay: Duration,
    drain: Arc<Drain>,
    server: ServerHandle,
) {
    let signal = signals.next().await;
    drain.start();
    if signal == Signal::Term && !delay.is_zero() {
        tracing::info!(
            %signal,
            delay_secs = delay.as_secs(),
            "shutdown delay started: not ready, still serving, closing every connection after its answer"
        );
        let ended = tokio::select! {
            () = tokio::time::sleep(delay) => "the delay passed".to_owned(),
            signal = signals.next() => signal.to_string(),
        };
        tracing::info!(
            ended_by = ended,
            "shutdown delay ended: closing the listener, finishing in-flight requests"
        );
    } else {
        tracing::info!(%signal, "stopping: finishing in-flight requests");
    }
    server.stop(true).await;
}

/// Serves until `server` stops, then persists the last batch and stops the
/// writer.
///
/// If the writer dies first, no visit can be counted again: the server is
/// stopped (gracefully; every visit is refused at once by now) and the
/// error names the cause, so that the process exits non-zero and is
/// restarted rather than serving 503s while it looks alive.
pub async fn serve_then_persist(
    mut server: Server,
    committer: Arc<Committer>,
) -> anyhow::Result<()> {
    let handle = server.handle();
    let (served, died) = tokio::select! {
        served = &mut server => (served, None),
        cause = committer.writer_died() => {
            // The server's own future carries out the stop: poll both.
            let ((), served) = tokio::join!(handle.stop(true), server);
            (served, Some(cause))
        }
    };
    tokio::task::spawn_blocking(move || committer.stop())
        .await
        .context("the writer shutdown panicked")?;
    if let Some(cause) = died {
        anyhow::bail!("the visit writer died ({cause}); exiting so that the process is restarted");
    }
    served.context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_the_system_names_them() {
        assert_eq!(Signal::Term.to_string(), "SIGTERM");
        assert_eq!(Signal::Int.to_string(), "SIGINT");
    }

    #[test]
    fn a_drain_once_started_stays_started() {
        let drain = Drain::default();
        assert!(!drain.started());
        drain.start();
        assert!(drain.started());
    }
}
