//! What `/_engine` shows, typed: every script with its status, storage use,
//! routes and streams (with subscriber counts), and the cluster. Built once
//! per request; `/_engine/routes` is its JSON, `/_engine` its HTML.
//!
//! Fields are declared in alphabetical order: that is the order of the keys
//! in the JSON these types replaced (a `serde_json` map), kept byte for byte.

use std::time::SystemTime;

use serde::Serialize;

use crate::app::App;
use crate::script_view::{RouteView, StreamView, SubscriberCounts};

/// The whole page.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub cluster: ClusterView,
    pub scripts: Vec<ScriptEntry>,
}

/// Single mode, or this node's view of the Redis cluster.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ClusterView {
    /// `mode` is `"single"`.
    Single {
        mode: &'static str,
    },
    Redis(RedisView),
}

/// A cluster node's view. `mode` (`"redis"`) is a field rather than a serde
/// tag, which would come first.
#[derive(Debug, Serialize)]
pub struct RedisView {
    pub connected: bool,
    mode: &'static str,
    pub node: String,
    pub nodes: Vec<String>,
    /// The Redis URL, without its password.
    pub redis: String,
}

/// One script.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptEntry {
    /// Why its newest version failed to load.
    pub error: Option<LoadFailure>,
    /// When the serving version was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The file name, e.g. `chat.js`.
    pub name: String,
    /// The HTTP routes its serving version registered.
    pub routes: Vec<RouteView>,
    /// Whether some version serves (an older one, after a failed load).
    pub serving: bool,
    /// `ok`, `error` (its newest version failed to load) or `conflict` (it lost a route or stream).
    pub status: &'static str,
    /// What it keeps in storage.
    pub storage: StorageView,
    /// The streams its serving version registered, with subscriber counts.
    pub streams: Vec<StreamView>,
    /// Counts successful loads: 1 for the first, 2 after an edit...
    pub version: u64,
}

/// A failed load: its message, and since when (RFC 3339).
#[derive(Debug, Serialize)]
pub struct LoadFailure {
    pub message: String,
    pub since: String,
}

/// A script's storage use, or why it could not be read.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum StorageView {
    Used { bytes: u64, keys: u64 },
    Unknown { error: String },
}

impl Overview {
    /// Every script and the cluster, as `app` has them now.
    pub fn of(app: &App) -> Overview {
        // In cluster mode usage is a Redis call: skip it while Redis is away.
        let redis_down = app.cluster.as_ref().is_some_and(|c| !c.link.is_up());
        let table = app.table.load();
        let counts = |path: &str| {
            let subscribers = app.hub.subscriber_count(path);
            let websocket = app.hub.websocket_count(path);
            Some(SubscriberCounts {
                sse: subscribers.saturating_sub(websocket),
                subscribers,
                websocket,
            })
        };
        let scripts = app
            .scripts()
            .into_iter()
            .map(|view| {
                let conflicts = table.conflicts.get(&view.name).cloned().unwrap_or_default();
                let usage = match redis_down {
                    true => Err(anyhow::anyhow!("Redis is unreachable")),
                    false => app.storage.usage(&view.name),
                };
                ScriptEntry {
                    error: view.error.as_ref().map(|(e, since)| LoadFailure {
                        message: e.message.clone(),
                        since: time(*since),
                    }),
                    loaded_at: view.live.as_ref().map(|l| time(l.loaded_at)),
                    routes: view.routes(&conflicts),
                    serving: view.live.is_some(),
                    status: view.status(&conflicts),
                    storage: match usage {
                        Ok(usage) => StorageView::Used {
                            bytes: usage.bytes,
                            keys: usage.keys,
                        },
                        Err(e) => StorageView::Unknown {
                            error: format!("{e:#}"),
                        },
                    },
                    streams: view.streams(&conflicts, counts),
                    version: view.version,
                    name: view.name,
                }
            })
            .collect();
        let cluster = match &app.cluster {
            Some(cluster) => ClusterView::Redis(RedisView {
                connected: cluster.link.is_up(),
                mode: "redis",
                node: cluster.node.clone(),
                nodes: cluster.nodes(),
                redis: cluster.link.display.clone(),
            }),
            None => ClusterView::Single { mode: "single" },
        };
        Overview { cluster, scripts }
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
