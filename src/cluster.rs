//! The whole StatefulSet at a glance: every instance's count and the total.
//!
//! Each pod keeps its own count on its own volume. To show the total, an
//! instance asks every peer for `GET /visits` (JSON) concurrently, each with
//! a tight timeout, and caches the answer for a moment so that a burst of
//! page views costs one round of fetches. Peers come from a fixed list
//! (`PEERS`) or from the addresses of a headless Service (`PEERS_DNS`),
//! which in Kubernetes lists exactly the ready pods. The list includes this
//! instance itself; instances are told apart by the name each reports, so
//! nobody is counted twice, and this instance's own number is taken from
//! memory, which is always fresher than what it would answer over HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::config::PeerSource;
use crate::metrics::Metrics;

/// How long a cluster view is reused before peers are asked again.
pub const CACHE_FOR: Duration = Duration::from_millis(1000);

/// The longest a page view waits for the very first answer of the peers
/// (never longer than the peer timeout). Only views served before any
/// peer was asked wait at all; later views use the last known view.
const FIRST_VIEW_WAIT: Duration = Duration::from_millis(250);

/// What `GET /visits` answers in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceCount {
    /// The count.
    pub visits: u64,
    /// The instance's name.
    pub instance: String,
}

/// One instance in the cluster view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodCount {
    /// The instance's name.
    pub instance: String,
    /// Its count.
    pub visits: u64,
    /// The base URL it was reached at (null for this instance when it was
    /// not among the discovered peers).
    pub peer: Option<String>,
}

/// A peer that did not answer in time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unreachable {
    /// The base URL (or `dns:<name>` when discovery itself failed).
    pub peer: String,
    /// The name it reported the last time it answered, if ever.
    pub instance: Option<String>,
    /// What went wrong.
    pub error: String,
}

/// The answer of `GET /visits/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterView {
    /// Every instance that answered, this one always included.
    pub pods: Vec<PodCount>,
    /// The sum of their counts.
    pub total: u64,
    /// Peers that did not answer.
    pub unreachable: Vec<Unreachable>,
}

struct Cached {
    at: Instant,
    others: Vec<PodCount>,
    own_peer: Option<String>,
    unreachable: Vec<Unreachable>,
}

/// Discovers peers and fetches their counts.
///
/// A page view does not wait on the network: it is served from the last
/// known view, and if that is older than [`CACHE_FOR`] one background task
/// refreshes it. Only the views served before the very first answer wait,
/// at most [`FIRST_VIEW_WAIT`], and then say the peers were not asked yet.
/// `GET /visits/cluster`, which the open page polls, waits for a fresh view
/// (at most the peer timeout); concurrent callers share one refresh.
pub struct Peers {
    inner: Arc<Fetcher>,
    /// Held by whoever refreshes, so there is only ever one refresh.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

struct Fetcher {
    source: PeerSource,
    port: u16,
    timeout: Duration,
    instance: String,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Woken each time a refresh stores a new view.
    refreshed: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    cached: Option<Arc<Cached>>,
    /// The name each peer URL reported the last time it answered; only
    /// peers of the last discovery are kept, so it never grows beyond the
    /// set (pod IPs change with every restart).
    last_names: HashMap<String, String>,
}

impl Peers {
    /// Peers from `source`; DNS peers are reached on `port`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (its TLS-free setup leaves
    /// little that can fail, but the system's resolver or resources might).
    pub fn new(
        source: PeerSource,
        port: u16,
        timeout: Duration,
        instance: String,
        metrics: Arc<Metrics>,
    ) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Peers {
            inner: Arc::new(Fetcher {
                source,
                port,
                timeout,
                instance,
                client,
                metrics,
                state: Mutex::new(State::default()),
                refreshed: tokio::sync::Notify::new(),
            }),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Whether any peers are configured.
    pub fn enabled(&self) -> bool {
        self.inner.source != PeerSource::None
    }

    /// The cluster view, with this instance's count `own`, from a view no
    /// older than [`CACHE_FOR`] (waiting for a refresh if needed).
    ///
    /// Concurrent callers share one refresh: whoever finds the view stale
    /// takes the refresh lock, and everyone who waited on that lock finds
    /// the view fresh and uses it, so any number of callers cost at most
    /// one round of peer fetches per [`CACHE_FOR`].
    pub async fn view(&self, own: u64) -> ClusterView {
        let cached = match self.cached().filter(|c| c.at.elapsed() < CACHE_FOR) {
            Some(cached) => cached,
            None => self.refresh_now().await,
        };
        self.assemble(&cached, own)
    }

    /// What the page shows, with this instance's count `own`: the last
    /// known view, or `None` when the peers have not answered yet. Starts a
    /// background refresh when the view is stale. Only before the first
    /// view exists does it wait, at most [`FIRST_VIEW_WAIT`], for it.
    pub async fn page_view(&self, own: u64) -> Option<ClusterView> {
        let cached = self.cached();
        if cached.as_ref().is_none_or(|c| c.at.elapsed() >= CACHE_FOR) {
            self.refresh_in_background();
        }
        let cached = match cached {
            Some(cached) => cached,
            None => self.first_view().await?,
        };
        Some(self.assemble(&cached, own))
    }

    /// Waits (briefly) for the first refresh to store a view.
    async fn first_view(&self) -> Option<Arc<Cached>> {
        let refreshed = self.inner.refreshed.notified();
        tokio::pin!(refreshed);
        refreshed.as_mut().enable();
        if let Some(cached) = self.cached() {
            return Some(cached);
        }
        let wait = FIRST_VIEW_WAIT.min(self.inner.timeout);
        let _ = tokio::time::timeout(wait, refreshed).await;
        self.cached()
    }

    fn assemble(&self, cached: &Cached, own: u64) -> ClusterView {
        let mut pods = Vec::with_capacity(cached.others.len() + 1);
        pods.push(PodCount {
            instance: self.inner.instance.clone(),
            visits: own,
            peer: cached.own_peer.clone(),
        });
        pods.extend(cached.others.iter().cloned());
        pods.sort_by(|a, b| a.instance.cmp(&b.instance));
        ClusterView {
            total: pods.iter().map(|p| p.visits).sum(),
            pods,
            unreachable: cached.unreachable.clone(),
        }
    }

    fn cached(&self) -> Option<Arc<Cached>> {
        self.inner.state().cached.clone()
    }

    /// Refreshes now, or waits for the refresh in progress and uses it.
    async fn refresh_now(&self) -> Arc<Cached> {
        let _refreshing = self.refreshing.lock().await;
        if let Some(cached) = self.cached().filter(|c| c.at.elapsed() < CACHE_FOR) {
            return cached;
        }
        self.inner.refresh().await
    }

    /// Starts a refresh on its own task unless one is running.
    fn refresh_in_background(&self) {
        let Ok(refreshing) = Arc::clone(&self.refreshing).try_lock_owned() else {
            return;
        };
        let fetcher = Arc::clone(&self.inner);
        tokio::spawn(
            async move {
                let _refreshing = refreshing;
                fetcher.refresh().await;
            }
            .instrument(tracing::Span::current()),
        );
    }
}

impl Fetcher {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn discover(&self, deadline: tokio::time::Instant) -> Result<Vec<String>, String> {
        match &self.source {
            PeerSource::None => Ok(Vec::new()),
            PeerSource::List(urls) => Ok(urls
                .iter()
                .map(|u| u.as_str().trim_end_matches('/').to_owned())
                .collect()),
            PeerSource::Dns(name) => {
                let lookup = tokio::net::lookup_host((name.as_str(), self.port));
                let addrs = tokio::time::timeout_at(deadline, lookup)
                    .await
                    .map_err(|_| format!("resolving {name} timed out"))?
                    .map_err(|e| format!("resolving {name} failed: {e}"))?;
                let mut peers: Vec<String> = addrs.map(|a| format!("http://{a}")).collect();
                peers.sort();
                peers.dedup();
                Ok(peers)
            }
        }
    }

    /// Asks every peer once and stores the result as the last known view.
    /// One deadline, the peer timeout from now, covers the DNS lookup and
    /// every request: a refresh takes at most the peer timeout.
    async fn refresh(&self) -> Arc<Cached> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut unreachable = Vec::new();
        let peers = match self.discover(deadline).await {
            Ok(peers) => peers,
            Err(error) => {
                self.metrics.peer_fetch_errors.inc();
                let name = match &self.source {
                    PeerSource::Dns(name) => name.clone(),
                    _ => String::new(),
                };
                unreachable.push(Unreachable {
                    peer: format!("dns:{name}"),
                    instance: None,
                    error,
                });
                Vec::new()
            }
        };
        self.metrics.peers_discovered.set(peers.len() as i64);
        let answers = join_all(peers.iter().map(|peer| async move {
            tokio::time::timeout_at(deadline, self.fetch(peer))
                .await
                .unwrap_or_else(|_| {
                    Err(PeerFailure {
                        shown: "timed out".into(),
                        logged: format!("no answer within the peer timeout of {:?}", self.timeout),
                    })
                })
        }))
        .await;
        let mut state = self.state();
        state.last_names.retain(|peer, _| peers.contains(peer));
        let last_names = &mut state.last_names;
        let mut others: Vec<PodCount> = Vec::with_capacity(peers.len());
        let mut own_peer = None;
        for (peer, answer) in peers.into_iter().zip(answers) {
            match answer {
                Ok(count) => {
                    last_names.insert(peer.clone(), count.instance.clone());
                    if count.instance == self.instance {
                        own_peer = Some(peer);
                    } else if !others.iter().any(|p| p.instance == count.instance) {
                        others.push(PodCount {
                            instance: count.instance,
                            visits: count.visits,
                            peer: Some(peer),
                        });
                    }
                }
                Err(failure) => {
                    self.metrics.peer_fetch_errors.inc();
                    tracing::warn!(peer = %peer, error = %failure.logged, "a peer did not answer");
                    unreachable.push(Unreachable {
                        instance: last_names.get(&peer).cloned(),
                        peer,
                        error: failure.shown,
                    });
                }
            }
        }
        let cached = Arc::new(Cached {
            at: Instant::now(),
            others,
            own_peer,
            unreachable,
        });
        state.cached = Some(Arc::clone(&cached));
        drop(state);
        self.refreshed.notify_waiters();
        cached
    }

    async fn fetch(&self, peer: &str) -> Result<InstanceCount, PeerFailure> {
        let url = format!("{peer}/visits");
        let mut request = self
            .client
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json");
        let span = crate::traces::enabled().then(|| {
            tracing::info_span!(
                "peer fetch",
                otel.name = "GET /visits",
                otel.kind = "client",
                http.request.method = "GET",
                url.full = %url,
                http.response.status_code = tracing::field::Empty,
            )
        });
        let send = match &span {
            Some(span) => {
                for (name, value) in crate::traces::headers_for(span) {
                    request = request.header(name, value);
                }
                request.send().instrument(span.clone()).await
            }
            None => request.send().await,
        };
        let response = send.map_err(|e| PeerFailure::from_request(&e))?;
        if let Some(span) = &span {
            span.record("http.response.status_code", response.status().as_u16());
        }
        if !response.status().is_success() {
            let answered = format!("answered {}", response.status());
            return Err(PeerFailure {
                logged: answered.clone(),
                shown: answered,
            });
        }
        response
            .json::<InstanceCount>()
            .await
            .map_err(|e| PeerFailure::from_request(&e))
    }
}

/// Why a peer did not answer: a few words for the page and
/// `/visits/cluster` (see [`routes`](crate::routes) on what clients are
/// told), and the whole cause chain for the log.
struct PeerFailure {
    shown: String,
    logged: String,
}

impl PeerFailure {
    fn from_request(error: &reqwest::Error) -> Self {
        let shown = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "connection failed"
        } else if error.is_decode() {
            "answered something that is not a count"
        } else {
            "the request failed"
        };
        PeerFailure {
            shown: shown.into(),
            logged: crate::errors::error_chain(error),
        }
    }
}
