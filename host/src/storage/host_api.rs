//! The host side of the WIT `storage` interface: each call checks its
//! arguments and dispatches to the script's namespace, inside the current turn.

use crate::bindings::aiwebengine::script::storage::{Host, StorageError as WitError};
use crate::host_state::HostState;

use super::StorageError;

fn wit(e: StorageError) -> WitError {
    match e {
        StorageError::Type(m) => WitError::TypeError(m),
        StorageError::Range(m) => WitError::RangeError(m),
        StorageError::Failed(m) => WitError::Failed(m),
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, WitError> {
        self.storage.get(&key).map_err(wit)
    }

    fn set(&mut self, key: String, json: String) -> Result<(), WitError> {
        self.storage.set(&key, json).map_err(wit)
    }

    fn remove(&mut self, key: String) -> Result<bool, WitError> {
        self.storage.remove(&key).map_err(wit)
    }

    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, WitError> {
        if limit > 1000 {
            return Err(WitError::RangeError(format!(
                "storage.list: limit must be at most 1000, got {limit}"
            )));
        }
        self.storage
            .scan(&prefix, after.as_deref(), limit as usize)
            .map_err(wit)
    }

    fn clear(&mut self) -> Result<(), WitError> {
        self.storage.clear().map_err(wit)
    }

    fn discard_turn(&mut self) {
        self.storage.discard_turn();
    }
}
