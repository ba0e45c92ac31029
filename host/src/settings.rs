//! The knobs `serve` takes from the command line, with their defaults: what
//! an engine is built from, before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use crate::admin_token::AdminToken;
use crate::fetch::FetchSettings;
use crate::limits::Limits;
use crate::storage::StorageLimits;
use crate::streams::HubLimits;

/// The knobs `serve` takes from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    pub scripts_dir: PathBuf,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Requests that may wait for one script before new ones get 503.
    pub queue_depth: usize,
    /// Stream sizes: subscriber lag, replay buffer, subscriber caps.
    pub hub: HubLimits,
    /// A comment is sent on a stream idle this long, so proxies keep it open.
    pub keep_alive: Duration,
    /// A connection whose writes are stuck this long is closed.
    pub write_stall: Duration,
    /// How long shutdown waits for connections to finish.
    pub shutdown_timeout: Duration,
    /// How long the server keeps serving after a shutdown signal, with
    /// `/_engine/health/ready` answering 503, before it stops accepting.
    pub shutdown_drain: Duration,
    /// Required as a bearer token on `/_engine` (but its health paths).
    pub admin_token: Option<AdminToken>,
    /// Where the compiled guest is cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// Follow changes to the scripts folder (hot reload).
    pub watch: bool,
    /// Fuel, time and memory for each guest call.
    pub limits: Limits,
    /// How long a client may take to send a request head; also how long an
    /// idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Largest script file loaded, in bytes; a bigger one is a load error.
    pub max_script_bytes: u64,
    /// Outbound fetch: the allow-list and its caps.
    pub fetch: FetchSettings,
    /// Largest WebSocket message a client may send (close 1009 beyond).
    pub ws_max_message_bytes: usize,
    /// WebSocket messages a client may send per second (close 1008 beyond).
    pub ws_messages_per_sec: u32,
    /// Where scripts' storage lives; `None` keeps it in memory (tests, benchmarks).
    pub data_dir: Option<PathBuf>,
    /// Value size and per-script quota of storage.
    pub storage: StorageLimits,
    /// Cluster mode: the Redis shared by every node (`--redis`).
    pub redis: Option<String>,
    /// This node's name in the cluster.
    pub node_name: Option<String>,
}

impl Settings {
    pub fn new(scripts_dir: impl Into<PathBuf>) -> Self {
        Settings {
            scripts_dir: scripts_dir.into(),
            max_body_bytes: 1 << 20,
            queue_depth: 1024,
            hub: HubLimits::default(),
            keep_alive: Duration::from_secs(15),
            write_stall: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            shutdown_drain: Duration::ZERO,
            admin_token: None,
            cache_dir: crate::wasm::default_cache_dir(),
            watch: true,
            limits: Limits::default(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: crate::fd_limit::default_max_connections(),
            max_script_bytes: 10 << 20,
            fetch: FetchSettings::default(),
            ws_max_message_bytes: 64 << 10,
            ws_messages_per_sec: 100,
            data_dir: None,
            storage: StorageLimits::default(),
            redis: None,
            node_name: None,
        }
    }
}
