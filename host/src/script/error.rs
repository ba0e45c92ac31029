//! How loading a script, or a call into it, can fail.

use std::time::Duration;

use crate::bindings::ScriptError;
use crate::limits::Limit;

/// Why a script could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    /// One line: what went wrong, with the script's file and line when known.
    pub message: String,
    /// The JS stack or the trap's backtrace, for the log.
    pub detail: Option<String>,
}

/// Why a call into a script produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{}", .0.message)]
    Exception(ScriptError),
    #[error("exceeded {}", .0.phrase())]
    Limit(Limit),
    #[error("the script crashed: {0}")]
    Trap(String),
    #[error("too many requests are queued for this script")]
    Busy,
    #[error("the script is restarting after repeated failures")]
    Restarting(Duration),
    #[error("the script was unloaded")]
    Gone,
    /// The turn's storage commit failed (disk full, I/O error): nothing of it was written.
    #[error("storage failed: {0}")]
    Storage(String),
    /// A stream message the turn sent was not accepted by the cluster (Redis
    /// unreachable): the turn's storage writes stand, the message is lost.
    #[error("a stream message was not accepted by the cluster: {0}")]
    Cluster(String),
    /// This response's turn was rolled back because another call in it failed.
    #[error("its storage writes were rolled back because another handler in the same turn failed")]
    RolledBack,
}
