//! Cluster mode (`serve --redis URL`): several engines serving the same
//! scripts share their streams and storage through one Redis, the way
//! Centrifugo and Socket.IO's Redis adapter do.
//!
//! - `link.rs`      the shared, self-healing connection and its up/down state
//! - `publish.rs`   `sendStreamMessage` → one Lua call per message, pipelined:
//!   it numbers the message, appends it to the stream's Redis Stream and
//!   publishes it
//! - `subscribe.rs` every node's one subscription: messages come back in id
//!   order and go to the hub; gaps, restarts and late starts catch up from
//!   the Redis Stream
//! - `nodes.rs`     heartbeats: which nodes are alive
//!
//! Every node receives every stream's messages, whether or not it has
//! subscribers for them: its replay buffer then holds what its peers' do, so
//! a client reconnecting to any node with `Last-Event-ID` is replayed from
//! local memory by the same code as on a single server. The hub (`streams/`)
//! does not know which mode runs: it sees a `Publisher` and `deliver` calls.
//! Timers and globals stay per node.

pub mod link;
mod nodes;
mod publish;
mod subscribe;

use std::sync::{Arc, Mutex};

use anyhow::Result;

pub use link::Link;

use crate::metrics::Metrics;
use crate::streams::Hub;

/// Prefix of every key and channel the cluster uses.
pub const PREFIX: &str = "aiwe:";

/// This node's membership in a cluster.
pub struct Cluster {
    pub link: Arc<Link>,
    /// This node's name (`--node-name`), unique in the cluster.
    pub node: String,
    /// The nodes alive at the last heartbeat, this one included.
    nodes: Mutex<Vec<String>>,
}

impl Cluster {
    /// Joins the cluster at `url` as `node` (default: host name and process
    /// id): the hub's messages go through Redis from now on. Must run inside
    /// the tokio runtime. An unreachable Redis is not an error: the node
    /// serves, retries with backoff, and says so in the log and `/_engine`.
    pub fn start(
        url: &str,
        node: Option<String>,
        hub: &Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Cluster>> {
        let link = Link::new(url)?;
        let node = node.unwrap_or_else(default_node_name);
        let cluster = Arc::new(Cluster {
            link: link.clone(),
            node,
            nodes: Mutex::new(Vec::new()),
        });
        let added = hub.watch_new_streams();
        hub.use_publisher(publish::start(
            link.clone(),
            hub.limits().replay_messages,
            metrics,
        ));
        tokio::spawn(subscribe::run(link.clone(), Arc::downgrade(hub), added));
        tokio::spawn(nodes::heartbeat(Arc::downgrade(&cluster)));
        tracing::info!(redis = %link.display, node = %cluster.node, "cluster mode: streams and storage go through Redis");
        Ok(cluster)
    }

    /// The nodes alive at the last heartbeat.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_nodes(&self, nodes: Vec<String>) {
        *self.nodes.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
    }
}

fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

/// The Redis keys of the stream at `path`: its counter hash and its log.
fn stream_keys(path: &str) -> (String, String) {
    (
        format!("{PREFIX}stream:{path}:meta"),
        format!("{PREFIX}stream:{path}:log"),
    )
}

/// The one channel every node subscribes to.
fn channel() -> String {
    format!("{PREFIX}streams")
}
