//! Where messages go to be numbered when this process is one node of several
//! (`cluster/publish.rs` is the one `Publisher`).

use super::filter::Params;

/// Called once a published message is accepted by the cluster, or failed.
pub type Settle = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A message on its way to the cluster to be numbered.
pub struct Outgoing<'a> {
    pub path: &'a str,
    pub json: &'a str,
    pub filter: &'a Params,
    /// The highest id this node has delivered on `path`.
    pub floor: u64,
}

/// Where messages go to be numbered when this process is one node of several.
pub trait Publisher: Send + Sync {
    /// Queues `message`; `settle` runs once it is numbered and published
    /// cluster-wide (or failed). An `Err` means it was not queued (the
    /// cluster is unreachable): the script's send throws.
    fn publish(&self, message: Outgoing<'_>, settle: Settle) -> Result<(), String>;
}
