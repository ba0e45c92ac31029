//! The host side of the WIT `storage` interface: each call checks its
//! arguments and dispatches to the script's namespace, inside the current turn.

use crate::bindings::aiwebengine::script::storage::{Host, StorageError as WitError};
use crate::metrics::{StorageMetrics, StorageOp};
use crate::script::state::HostState;
use crate::storage::StorageError;

/// Counts one call and, when it threw, its error.
fn counted<T>(
    metrics: &StorageMetrics,
    op: StorageOp,
    result: Result<T, StorageError>,
) -> Result<T, WitError> {
    metrics.op(op);
    result.map_err(|e| {
        metrics.error(&e);
        wit(e)
    })
}

fn wit(e: StorageError) -> WitError {
    match e {
        StorageError::Type(m) => WitError::TypeError(m),
        StorageError::Range(m) => WitError::RangeError(m),
        StorageError::Failed(m) => WitError::Failed(m),
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, WitError> {
        counted(
            &self.storage.metrics,
            StorageOp::Get,
            self.storage.get(&key),
        )
    }

    fn set(&mut self, key: String, json: String) -> Result<(), WitError> {
        let result = self.storage.set(&key, json);
        counted(&self.storage.metrics, StorageOp::Set, result)
    }

    fn remove(&mut self, key: String) -> Result<bool, WitError> {
        let result = self.storage.remove(&key);
        counted(&self.storage.metrics, StorageOp::Delete, result)
    }

    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, WitError> {
        let result = match limit {
            0..=1000 => self.storage.scan(&prefix, after.as_deref(), limit as usize),
            _ => Err(StorageError::Range(format!(
                "storage.list: limit must be at most 1000, got {limit}"
            ))),
        };
        counted(&self.storage.metrics, StorageOp::List, result)
    }

    fn clear(&mut self) -> Result<(), WitError> {
        let result = self.storage.clear();
        counted(&self.storage.metrics, StorageOp::Clear, result)
    }

    fn discard_turn(&mut self) {
        self.storage.discard_turn();
    }
}
