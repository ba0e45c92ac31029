//! What a script's sandbox can reach outside itself, carried as one value so a
//! new service does not widen every signature between the app and a store.
//!
//! `Services` is engine-wide (built once by `App`); `ScriptServices` is what
//! one script version gets, with its own per-script parts (its fetch slots and
//! the channel finished fetches come back on).

use std::sync::Arc;

use crate::fetch::{Fetcher, ScriptFetch};
use crate::storage::Storage;
use crate::streams::Hub;

/// The engine-wide services.
#[derive(Clone)]
pub struct Services {
    pub hub: Arc<Hub>,
    pub fetch: Arc<Fetcher>,
    /// Durable per-script storage.
    pub storage: Arc<Storage>,
}

impl Services {
    /// The services of one script version.
    pub fn for_script(&self) -> ScriptServices {
        ScriptServices {
            hub: self.hub.clone(),
            fetch: self.fetch.for_script(),
            storage: self.storage.clone(),
        }
    }
}

/// The services one script version's instances use.
#[derive(Clone)]
pub struct ScriptServices {
    pub hub: Arc<Hub>,
    pub fetch: ScriptFetch,
    pub storage: Arc<Storage>,
}
