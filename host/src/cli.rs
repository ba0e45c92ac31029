//! The command line: `aiwebengine serve [--scripts DIR] [--listen ADDR] ...`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin_token::AdminToken;
use crate::fetch::{FetchSettings, Rule};
use crate::limits::Limits;
use crate::logging::LogFormat;
use crate::settings::Settings;
use crate::storage::StorageLimits;
use crate::streams::HubLimits;

#[derive(Parser, Debug)]
#[command(
    name = "aiwebengine",
    version,
    about = "Runs JavaScript web scripts — HTTP routes and \
Server-Sent-Event streams — each in its own WebAssembly sandbox."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of `Serve` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve every *.js and *.ts script of a folder.
    Serve(ServeArgs),
    /// Load scripts in the sandbox as `serve` would, without listening, and report
    /// each one's routes and streams or its error; exit 1 if any fails or conflicts.
    Check(CheckArgs),
    /// Print the route table `serve` would build from a scripts folder.
    Routes(RoutesArgs),
    /// Back up or restore a script's storage (JSON lines of {"key", "value"}).
    /// Works on a stopped server's data dir, and through a running server
    /// that holds it (found through <data-dir>/server.json).
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Print every key of SCRIPT's storage as JSON lines, in key order.
    Dump {
        /// The script (`chat` or `chat.js`).
        script: String,
        #[command(flatten)]
        storage: StorageArgs,
        /// The storage of a cluster (`serve --redis`): this Redis, not the data dir.
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
    },
    /// Replace all of SCRIPT's storage with FILE's JSON lines, atomically.
    Restore {
        /// The script (`chat` or `chat.js`).
        script: String,
        /// JSON lines of {"key": ..., "value": ...}; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
        /// The storage of a cluster (`serve --redis`): this Redis, not the data dir.
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
    },
}

/// Where scripts' storage lives, and its limits.
#[derive(Args, Debug, Clone)]
pub struct StorageArgs {
    /// Folder of the storage database (created if missing).
    #[arg(long, default_value = "./data", env = "AIWEBENGINE_DATA")]
    pub data_dir: PathBuf,
    /// Largest storage value, in bytes of JSON; larger ones throw RangeError.
    #[arg(long, default_value_t = StorageLimits::default().max_value_bytes)]
    pub storage_max_value_bytes: usize,
    /// Storage each script may use (keys plus values), in MiB.
    #[arg(long, default_value_t = StorageLimits::default().quota_bytes >> 20)]
    pub storage_quota_mb: u64,
}

impl StorageArgs {
    pub fn limits(&self) -> StorageLimits {
        StorageLimits {
            max_value_bytes: self.storage_max_value_bytes,
            quota_bytes: self.storage_quota_mb << 20,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The folder of scripts to serve.
    #[arg(long, default_value = "./scripts", env = "AIWEBENGINE_SCRIPTS")]
    pub scripts: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "AIWEBENGINE_LISTEN")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Requests that may wait for one script before new ones get 503.
    #[arg(long, default_value_t = 1024)]
    pub queue_depth: usize,
    /// Messages a stream subscriber may fall behind before it is disconnected.
    #[arg(long, default_value_t = HubLimits::default().lag)]
    pub stream_lag: usize,
    /// Messages kept per stream for replay to reconnecting subscribers (Last-Event-ID).
    #[arg(long, default_value_t = HubLimits::default().replay_messages)]
    pub replay_messages: usize,
    /// Bytes kept per stream for replay.
    #[arg(long, default_value_t = HubLimits::default().replay_bytes)]
    pub replay_bytes: usize,
    /// Subscribers allowed per stream; more get 503.
    #[arg(long, default_value_t = HubLimits::default().per_stream)]
    pub max_subscribers_per_stream: usize,
    /// Subscribers allowed in all; more get 503.
    #[arg(long, default_value_t = HubLimits::default().total)]
    pub max_subscribers: usize,
    /// Seconds of silence on a stream before a keep-alive comment is sent.
    #[arg(long, default_value_t = 15)]
    pub keep_alive_secs: u64,
    /// Seconds a connection may be unable to take writes before it is closed.
    #[arg(long, default_value_t = 30)]
    pub write_stall_secs: u64,
    /// Bytes of messages a stream subscriber may fall behind before it is
    /// disconnected (bounds what one stalled subscriber holds).
    #[arg(long, default_value_t = HubLimits::default().lag_bytes)]
    pub stream_lag_bytes: usize,
    /// Largest stream message (its JSON) a script may send, in bytes; larger
    /// ones throw in the script.
    #[arg(long, default_value_t = HubLimits::default().message_bytes)]
    pub max_message_bytes: usize,
    /// Streams one script may register.
    #[arg(long, default_value_t = HubLimits::default().streams_per_script)]
    pub max_streams_per_script: usize,
    /// Connections open at once; more get a 503 and are closed (default: the
    /// file-descriptor limit minus 256).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send a request head; an idle keep-alive
    /// connection is closed after as long.
    #[arg(long, default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Largest script file loaded, in bytes; a bigger one is a load error.
    #[arg(long, default_value_t = 10 << 20)]
    pub max_script_bytes: u64,
    /// Seconds shutdown waits for open connections to finish.
    #[arg(long, default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
    /// Seconds the server keeps serving after SIGTERM/Ctrl-C, with
    /// /_engine/health/ready answering 503, before it stops accepting
    /// connections (time for a load balancer to notice).
    #[arg(long, default_value_t = 0)]
    pub shutdown_drain_secs: u64,
    /// Log format: text, or json (one JSON object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "AIWEBENGINE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Require "Authorization: Bearer TOKEN" on /_engine (but its health
    /// paths). Without it, /_engine is open on a loopback address and closed
    /// (403) on any other.
    #[arg(long, env = "AIWEBENGINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where to cache the compiled sandbox (default: ~/.cache/aiwebengine).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Threads for HTTP, streams and script code (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Compile the sandbox at every start instead of caching it.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not watch the scripts folder (no hot reload).
    #[arg(long)]
    pub no_watch: bool,
    /// CPU budget per call (handler, timer callback, script load), counted by
    /// QuickJS: one unit per 10,000 jumps (loops, branches) and calls of JavaScript
    /// (about 1 s of a tight loop at the default); 0 turns it off.
    #[arg(long, default_value_t = Limits::default().cpu_budget)]
    pub cpu_budget: u64,
    /// A finer CPU budget per call in fuel units, about one per wasm
    /// instruction (the engine's native work too); 0, the default, turns fuel
    /// metering off: it costs about a quarter of the throughput.
    #[arg(long, default_value_t = Limits::default().fuel)]
    pub fuel: u64,
    /// Wall-clock limit per call, in milliseconds; 0 turns it off (and its
    /// small per-call cost), leaving fuel as the only CPU limit.
    #[arg(long, default_value_t = Limits::default().timeout.as_millis() as u64)]
    pub timeout_ms: u64,
    /// Memory cap per script instance, in MiB.
    #[arg(long, default_value_t = Limits::default().memory_bytes >> 20)]
    pub memory_mb: usize,
    /// Timers (setTimeout/setInterval) a script may have alive at once.
    #[arg(long, default_value_t = Limits::default().max_timers)]
    pub max_timers: u32,
    /// Where scripts may `fetch`, as scheme://host[:port] (Spin's syntax):
    /// https://api.example.com, https://*.example.com, http://127.0.0.1:9000,
    /// *://*:*. Repeatable; the variable takes a comma-separated list. Default:
    /// nothing. Loopback, private and link-local addresses need a rule that
    /// names the host or IP without a wildcard.
    #[arg(long = "allow-outbound", value_name = "RULE", env = "AIWEBENGINE_ALLOW_OUTBOUND",
          value_delimiter = ',', value_parser = Rule::parse)]
    pub allow_outbound: Vec<Rule>,
    /// Largest response body a fetch accepts, in bytes; a larger one rejects.
    #[arg(long, default_value_t = FetchSettings::default().max_bytes)]
    pub fetch_max_bytes: usize,
    /// Fetches one script may have in flight at once; more wait for a slot.
    #[arg(long, default_value_t = FetchSettings::default().concurrency)]
    pub fetch_concurrency: usize,
    /// Largest message a WebSocket client may send, in bytes; a larger one
    /// closes the connection with code 1009.
    #[arg(long, default_value_t = 64 << 10)]
    pub ws_max_message_bytes: usize,
    /// Messages a WebSocket client may send per second; more close the
    /// connection with code 1008 (0: no cap).
    #[arg(long, default_value_t = 100)]
    pub ws_messages_per_sec: u32,
    /// Run as one node of a cluster: the Redis every node shares streams and
    /// storage through (redis://HOST:PORT[/DB], rediss://, redis://:PASSWORD@HOST).
    #[arg(long, value_name = "URL", env = "AIWEBENGINE_REDIS")]
    pub redis: Option<String>,
    /// This node's name in the cluster (default: host name and process id).
    #[arg(long, env = "AIWEBENGINE_NODE_NAME")]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

impl ServeArgs {
    pub fn workers(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.workers.unwrap_or(cores).max(1)
    }

    pub fn settings(&self) -> Settings {
        let mut s = Settings::new(&self.scripts);
        s.max_body_bytes = self.max_body_bytes;
        s.queue_depth = self.queue_depth;
        s.hub = HubLimits {
            lag: self.stream_lag,
            replay_messages: self.replay_messages,
            replay_bytes: self.replay_bytes,
            per_stream: self.max_subscribers_per_stream,
            total: self.max_subscribers,
            lag_bytes: self.stream_lag_bytes,
            message_bytes: self.max_message_bytes,
            streams_per_script: self.max_streams_per_script,
        };
        if let Some(max) = self.max_connections {
            s.max_connections = max.max(1);
        }
        s.header_read_timeout = Duration::from_secs(self.header_read_timeout_secs.max(1));
        s.max_script_bytes = self.max_script_bytes;
        s.keep_alive = Duration::from_secs(self.keep_alive_secs.max(1));
        s.write_stall = Duration::from_secs(self.write_stall_secs.max(1));
        s.shutdown_timeout = Duration::from_secs(self.shutdown_timeout_secs);
        s.shutdown_drain = Duration::from_secs(self.shutdown_drain_secs);
        s.admin_token = self.admin_token.clone().and_then(AdminToken::new);
        s.watch = !self.no_watch;
        s.ws_max_message_bytes = self.ws_max_message_bytes.max(1);
        s.ws_messages_per_sec = self.ws_messages_per_sec;
        s.limits = Limits {
            cpu_budget: self.cpu_budget,
            fuel: self.fuel,
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mb.max(1) << 20,
            max_timers: self.max_timers,
        };
        s.fetch = FetchSettings {
            allow: self.allow_outbound.clone(),
            max_bytes: self.fetch_max_bytes,
            concurrency: self.fetch_concurrency.max(1),
        };
        s.data_dir = Some(self.storage.data_dir.clone());
        s.storage = self.storage.limits();
        s.redis = self.redis.clone().filter(|url| !url.is_empty());
        s.node_name = self.node_name.clone();
        if self.no_cache {
            s.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            s.cache_dir = Some(dir.clone());
        }
        s
    }
}

/// How `check` and `routes` print what they found.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people: aligned text.
    Text,
    /// For machines: one JSON document.
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Script files and folders of scripts to check [default: ./scripts].
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct RoutesArgs {
    /// The folder of scripts.
    #[arg(long, default_value = "./scripts", env = "AIWEBENGINE_SCRIPTS")]
    pub scripts: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
