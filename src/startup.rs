//! Building and running the application: open the store and start the
//! writer, bind the listener, build the app, serve until told to stop, then
//! persist what is left (the stopping is [`shutdown`](crate::shutdown)'s).
//!
//! [`Application::build`] binds before it returns, so tests can ask for port
//! 0 and read the real port back.

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
use crate::middleware;
use crate::page::Page;
use crate::routes;
use crate::shutdown::{self, Drain, Signals};
use crate::state::AppState;
use crate::store::{Committer, CommitterConfig, Store};

/// A bound, not yet running server.
pub struct Application {
    address: SocketAddr,
    server: Server,
    committer: Arc<Committer>,
    drain: Arc<Drain>,
    shutdown_delay: Duration,
}

impl Application {
    /// Opens the data folder, starts the writer and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new().context("failed to register metrics")?);
        let faults = settings
            .fault_injection
            .then(|| Arc::new(Faults::default()));
        let (committer, count) = open_store(&settings, faults.as_ref(), &metrics)?;
        let (listener, address) = bind(settings.listen)?;
        let peers = Peers::new(
            settings.peers.clone(),
            address.port(),
            settings.peer_timeout,
            settings.instance.clone(),
            Arc::clone(&metrics),
        )
        .context("failed to build the HTTP client for peers")?;
        let drain = Arc::new(Drain::default());
        let state = AppState {
            committer: Arc::clone(&committer),
            page: Page::new(&settings.instance, settings.timezone),
            timezone: settings.timezone,
            instance: settings.instance.clone(),
            peers,
            drain: Arc::clone(&drain),
            faults: faults.clone(),
        };
        if faults.is_some() {
            tracing::warn!(
                "fault injection is enabled: /faults can break this instance on purpose"
            );
        }
        let server = run(listener, state, metrics, faults, settings.shutdown_timeout)?;
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
        shutdown::serve_then_persist(self.server, self.committer).await
    }

    /// Serves until SIGTERM or SIGINT, then drains gracefully (see
    /// [`shutdown::stop_on_signal`]).
    ///
    /// `signals` must be installed before the service says it listens: a
    /// SIGTERM that arrives earlier would otherwise kill it outright.
    pub async fn run_until_signalled(self, signals: Signals) -> anyhow::Result<()> {
        actix_web::rt::spawn(shutdown::stop_on_signal(
            signals,
            self.shutdown_delay,
            Arc::clone(&self.drain),
            self.handle(),
        ));
        self.run_until_stopped().await
    }
}

/// Opens the data folder (validating `visits`) and starts the writer;
/// returns it with the count found. Blocks, waiting for the file lock at
/// most the write timeout: nothing else runs yet.
fn open_store(
    settings: &Settings,
    faults: Option<&Arc<Faults>>,
    metrics: &Metrics,
) -> anyhow::Result<(Arc<Committer>, u64)> {
    let hook = faults.map(Faults::store_hook);
    #[cfg(feature = "test-hooks")]
    let hook = crate::test_hooks::wrap(hook);
    let (store, count) = Store::open_with_fault(&settings.data_dir, settings.write_timeout, hook)
        .with_context(|| {
        format!(
            "failed to open the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let config = CommitterConfig {
        max_batch: settings.max_batch,
        write_timeout: settings.write_timeout,
    };
    let committer = Committer::start(store, count, config, metrics.store.clone())
        .context("failed to start the visit writer thread")?;
    Ok((Arc::new(committer), count))
}

/// A listener on `address`, with the address it got (the real port when 0
/// was asked for).
fn bind(address: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener =
        TcpListener::bind(address).with_context(|| format!("failed to listen on {address}"))?;
    let bound = listener
        .local_addr()
        .context("failed to read the bound address")?;
    Ok((listener, bound))
}

/// The HTTP server over a bound `listener`, started but not yet awaited.
fn run(
    listener: TcpListener,
    state: AppState,
    metrics: Arc<Metrics>,
    faults: Option<Arc<Faults>>,
    shutdown_timeout: Duration,
) -> anyhow::Result<Server> {
    let state = web::Data::new(state);
    let metrics = web::Data::from(metrics);
    let faults = faults.map(web::Data::from);
    let server = HttpServer::new(move || {
        let faults = faults.clone();
        App::new()
            .app_data(state.clone())
            .app_data(metrics.clone())
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
    .shutdown_timeout(shutdown_timeout.as_secs())
    .run();
    Ok(server)
}
