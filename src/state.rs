//! What request handlers share: built once by [`startup`](crate::startup),
//! read by [`routes`](crate::routes). Routes depend on this module, never on
//! the module that wires them.

use std::sync::Arc;

use chrono_tz::Tz;

use crate::cluster::Peers;
use crate::page::Page;
use crate::store::Committer;

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
}
