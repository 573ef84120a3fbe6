//! What request handlers share: built once by [`startup`](crate::startup),
//! read by [`routes`](crate::routes). Routes depend on this module, never on
//! the module that wires them.

use std::fmt;
use std::sync::Arc;

use chrono_tz::Tz;

use crate::cluster::Peers;
use crate::faults::Faults;
use crate::page::Page;
use crate::shutdown::Drain;
use crate::store::{Committer, Health};

/// Everything a request handler may need, shared by all workers.
pub struct AppState {
    /// The group-commit writer.
    pub committer: Arc<Committer>,
    /// The page template.
    pub page: Page,
    /// The zone to show.
    pub timezone: Tz,
    /// This instance's name.
    pub instance: String,
    /// The other instances.
    pub peers: Peers,
    /// Whether the instance is draining (after SIGTERM or SIGINT).
    pub drain: Arc<Drain>,
    /// The injected faults, when fault injection is enabled.
    pub faults: Option<Arc<Faults>>,
}

/// Whether this instance should be sent visits and, if not, why: the one
/// answer readiness gives, from everything that takes an instance out of
/// rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Visits are welcome.
    Ready,
    /// A signal arrived: the instance drains and goes away.
    Draining,
    /// The `unready` fault is injected.
    FaultInjected,
    /// The store cannot take visits, with its reason.
    Store(String),
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Ready => f.write_str("ready"),
            Readiness::Draining => f.write_str("not ready: shutting down"),
            Readiness::FaultInjected => f.write_str("not ready: fault injected"),
            Readiness::Store(reason) => write!(f, "not ready: {reason}"),
        }
    }
}

impl AppState {
    /// Whether this instance should be sent visits now, and why not.
    pub fn readiness(&self) -> Readiness {
        if self.drain.started() {
            Readiness::Draining
        } else if self.faults.as_ref().is_some_and(|f| f.unready()) {
            Readiness::FaultInjected
        } else {
            match self.committer.health() {
                Health::Ready => Readiness::Ready,
                Health::NotReady(reason) => Readiness::Store(reason),
            }
        }
    }
}
