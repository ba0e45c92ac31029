//! The services a script's sandbox can reach, carried as one value from the
//! app to every script version and its `Store` data, so adding one does not
//! widen every signature in between.

use std::sync::Arc;

use crate::storage::Storage;
use crate::streams::Hub;

#[derive(Clone)]
pub struct Services {
    /// The stream hub: SSE broadcasts.
    pub hub: Arc<Hub>,
    /// Durable per-script storage.
    pub storage: Arc<Storage>,
}
