//! What a script version is given besides its source, carried as one value so
//! a new service does not widen every signature between the app and a store.
//!
//! `Services` is engine-wide (built once by `App`); `ScriptServices` is what
//! one script version gets, with its own per-script parts (its fetch slots,
//! the channel finished fetches come back on, its metrics).

use std::sync::Arc;

use crate::fetch::{Fetcher, ScriptFetch};
use crate::metrics::{Metrics, ScriptMetrics};
use crate::storage::Storage;
use crate::streams::Hub;
use crate::ws_clients::Clients;

/// The engine-wide services.
#[derive(Clone)]
pub struct Services {
    pub hub: Arc<Hub>,
    /// Live WebSocket connections, for `client.send`.
    pub clients: Arc<Clients>,
    pub fetch: Arc<Fetcher>,
    /// Durable per-script storage.
    pub storage: Arc<Storage>,
    pub metrics: Arc<Metrics>,
}

impl Services {
    /// The services of one version of the script `name`.
    pub fn for_script(&self, name: &str) -> ScriptServices {
        ScriptServices {
            hub: self.hub.clone(),
            clients: self.clients.clone(),
            fetch: self.fetch.for_script(),
            storage: self.storage.clone(),
            metrics: self.metrics.script(name),
        }
    }
}

/// The services one script version's instances use.
#[derive(Clone)]
pub struct ScriptServices {
    pub(crate) hub: Arc<Hub>,
    pub(crate) clients: Arc<Clients>,
    pub(crate) fetch: ScriptFetch,
    pub(crate) storage: Arc<Storage>,
    pub(crate) metrics: ScriptMetrics,
}
