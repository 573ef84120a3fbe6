//! Building and running the application: open the store, start the writer,
//! bind the listener, serve until told to stop, then persist what is left.
//!
//! [`Application::build`] binds before it returns, so tests can ask for port
//! 0 and read the real port back. Signal handling is ours rather than
//! actix's: actix treats SIGINT as a forced stop, but a terminal user
//! pressing Ctrl-C should get the same graceful drain as Kubernetes' SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use chrono_tz::Tz;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::middleware;
use crate::page::Page;
use crate::peers::Peers;
use crate::routes;
use crate::store::{Committer, CommitterConfig, Store};

/// Everything a request handler may need, shared by all workers.
pub struct AppState {
    /// The group-commit writer.
    pub committer: Arc<Committer>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The page template.
    pub page: Page,
    /// The zone to show.
    pub timezone: Tz,
    /// This instance's name.
    pub instance: String,
    /// The other instances.
    pub peers: Peers,
}

/// A bound, not yet running server.
pub struct Application {
    address: SocketAddr,
    server: Server,
    committer: Arc<Committer>,
}

impl Application {
    /// Opens the data folder, starts the writer and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new().context("failed to register metrics")?);
        let dir = settings.data_dir.clone();
        let write_timeout = settings.write_timeout;
        let (store, count) = tokio::task::spawn_blocking(move || Store::open(dir, write_timeout))
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
            Arc::clone(&metrics),
        ));

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("failed to listen on {}", settings.listen))?;
        let address = listener
            .local_addr()
            .context("failed to read the bound address")?;

        let page = Page::new(&settings.instance, settings.timezone);
        let state = web::Data::new(AppState {
            committer: Arc::clone(&committer),
            metrics: Arc::clone(&metrics),
            page,
            timezone: settings.timezone,
            instance: settings.instance.clone(),
            peers: Peers::new(
                settings.peers.clone(),
                address.port(),
                settings.peer_timeout,
                settings.instance.clone(),
                metrics,
            ),
        });

        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(middleware::observe))
                // Outermost, so the answers `observe` refuses get them too.
                .wrap(middleware::default_headers())
                .configure(routes::configure)
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
    pub async fn run_until_signalled(self) -> anyhow::Result<()> {
        let handle = self.handle();
        let committer = Arc::clone(&self.committer);
        actix_web::rt::spawn(async move {
            let signal = wait_for_stop_signal().await;
            tracing::info!(signal, "stopping: finishing in-flight requests");
            committer.begin_shutdown();
            handle.stop(true).await;
        });
        self.run_until_stopped().await
    }
}

async fn wait_for_stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).expect("installing a SIGTERM handler never fails on Unix");
    let mut int =
        signal(SignalKind::interrupt()).expect("installing a SIGINT handler never fails on Unix");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
