//! Building and running the application: open the store, start the writer,
//! bind the listener, serve until told to stop, then persist what is left.
//!
//! [`Application::build`] binds before it returns, so tests can ask for port
//! 0 and read the real port back. Signal handling is ours rather than
//! actix's: actix treats SIGINT as a forced stop, but a terminal user
//! pressing Ctrl-C should get the same graceful drain as Kubernetes' SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::cluster::Peers;
use crate::config::Settings;
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::middleware::{self, Drain};
use crate::page::Page;
use crate::routes;
use crate::state::AppState;
use crate::store::{Committer, CommitterConfig, Store};

/// A bound, not yet running server.
pub struct Application {
    address: SocketAddr,
    server: Server,
    committer: Arc<Committer>,
    drain: web::Data<Drain>,
    shutdown_delay: Duration,
}

impl Application {
    /// Opens the data folder, starts the writer and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new().context("failed to register metrics")?);
        let dir = settings.data_dir.clone();
        let write_timeout = settings.write_timeout;
        let faults = settings
            .fault_injection
            .then(|| Arc::new(Faults::default()));
        let hook = faults.as_ref().map(Faults::store_hook);
        let (store, count) =
            tokio::task::spawn_blocking(move || Store::open_with_fault(dir, write_timeout, hook))
                .await
                .context("the store opener panicked")?
                .with_context(|| {
                    format!(
                        "failed to open the data directory {}",
                        settings.data_dir.display()
                    )
                })?;
        let committer = Arc::new(Committer::start(
            store,
            count,
            CommitterConfig {
                max_batch: settings.max_batch,
                stall_after: settings.write_timeout,
            },
            metrics.store.clone(),
        ));

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("failed to listen on {}", settings.listen))?;
        let address = listener
            .local_addr()
            .context("failed to read the bound address")?;

        let page = Page::new(&settings.instance, settings.timezone);
        let state = web::Data::new(AppState {
            committer: Arc::clone(&committer),
            page,
            timezone: settings.timezone,
            instance: settings.instance.clone(),
            peers: Peers::new(
                settings.peers.clone(),
                address.port(),
                settings.peer_timeout,
                settings.instance.clone(),
                Arc::clone(&metrics),
            ),
        });
        let metrics = web::Data::from(metrics);
        let drain = web::Data::new(Drain::default());
        let app_drain = drain.clone();

        if faults.is_some() {
            tracing::warn!(
                "fault injection is enabled: /faults can break this instance on purpose"
            );
        }
        let faults = faults.map(web::Data::from);
        let server = HttpServer::new(move || {
            let faults = faults.clone();
            App::new()
                .app_data(state.clone())
                .app_data(metrics.clone())
                .app_data(app_drain.clone())
                .wrap(from_fn(middleware::observe))
                // Outermost, so the answers `observe` refuses get them too.
                .wrap(middleware::default_headers())
                .configure(routes::configure)
                .configure(move |cfg| {
                    if let Some(faults) = faults {
                        cfg.app_data(faults);
                        routes::faults::configure(cfg);
                    }
                })
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)
        .context("failed to start serving")?
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .run();

        tracing::info!(
            addr = %address,
            instance = %settings.instance,
            data_dir = %settings.data_dir.display(),
            timezone = settings.timezone.name(),
            visits = count,
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        Ok(Application {
            address,
            server,
            committer,
            drain,
            shutdown_delay: settings.shutdown_delay,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then persists the last batch and stops the writer.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        let committer = self.committer;
        tokio::task::spawn_blocking(move || committer.stop())
            .await
            .context("the writer shutdown panicked")?;
        served.context("the HTTP server failed")?;
        tracing::info!("stopped");
        Ok(())
    }

    /// Serves until SIGTERM or SIGINT, then drains gracefully.
    ///
    /// After SIGTERM, readiness fails at once but the service keeps serving
    /// everything, visits included, for the shutdown delay, answering with
    /// `Connection: close`: load balancers and kube-proxy take a moment to
    /// stop routing to a pod, and what they still send must not be
    /// refused. A second SIGTERM, or a SIGINT, ends the delay early (and a
    /// first SIGINT skips it: Ctrl-C stays instant). Then the listener
    /// closes, in-flight requests finish within the shutdown timeout, and
    /// the last batch is persisted.
    ///
    /// `signals` must be installed before the service says it listens: a
    /// SIGTERM that arrives earlier would otherwise kill it outright.
    pub async fn run_until_signalled(self, signals: StopSignals) -> anyhow::Result<()> {
        let handle = self.handle();
        let committer = Arc::clone(&self.committer);
        let drain = self.drain.clone();
        let delay = self.shutdown_delay;
        actix_web::rt::spawn(async move {
            let mut signals = signals;
            let signal = signals.next().await;
            committer.begin_shutdown();
            if signal == "SIGTERM" && !delay.is_zero() {
                drain.start();
                tracing::info!(
                    signal,
                    delay_secs = delay.as_secs(),
                    "shutdown delay started: not ready, still serving, closing every connection after its answer"
                );
                let ended = tokio::select! {
                    () = tokio::time::sleep(delay) => "the delay passed",
                    signal = signals.next() => signal,
                };
                tracing::info!(
                    ended_by = ended,
                    "shutdown delay ended: closing the listener, finishing in-flight requests"
                );
            } else {
                tracing::info!(signal, "stopping: finishing in-flight requests");
            }
            handle.stop(true).await;
        });
        self.run_until_stopped().await
    }
}

/// SIGTERM and SIGINT, installed once so that a second signal is not lost.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers: from now on SIGTERM and SIGINT are ours.
    pub fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            term: signal(SignalKind::terminate())
                .expect("installing a SIGTERM handler never fails on Unix"),
            int: signal(SignalKind::interrupt())
                .expect("installing a SIGINT handler never fails on Unix"),
        }
    }

    /// Waits for the next signal and names it.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
