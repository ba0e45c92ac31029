//! The command line: `aiwebengine serve [--scripts DIR] [--listen ADDR] ...`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::Settings;
use crate::limits::Limits;
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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve every *.js script of a folder.
    Serve(ServeArgs),
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
    },
    /// Replace all of SCRIPT's storage with FILE's JSON lines, atomically.
    Restore {
        /// The script (`chat` or `chat.js`).
        script: String,
        /// JSON lines of {"key": ..., "value": ...}; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
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
    /// Seconds shutdown waits for open connections to finish.
    #[arg(long, default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
    /// Where to cache the compiled sandbox (default: ~/.cache/aiwebengine).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Threads for HTTP and streams (default: one less than the cores, at least
    /// one: script code runs on threads of its own, and needs a core too).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Compile the sandbox at every start instead of caching it.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not watch the scripts folder (no hot reload).
    #[arg(long)]
    pub no_watch: bool,
    /// CPU budget per call (handler, timer callback, script load) in fuel units,
    /// about one per wasm instruction; 0 turns fuel metering off.
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
    #[command(flatten)]
    pub storage: StorageArgs,
}

impl ServeArgs {
    pub fn workers(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.workers.unwrap_or(cores.saturating_sub(1)).max(1)
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
        };
        s.keep_alive = Duration::from_secs(self.keep_alive_secs.max(1));
        s.write_stall = Duration::from_secs(self.write_stall_secs.max(1));
        s.shutdown_timeout = Duration::from_secs(self.shutdown_timeout_secs);
        s.watch = !self.no_watch;
        s.limits = Limits {
            fuel: self.fuel,
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mb.max(1) << 20,
            max_timers: self.max_timers,
        };
        s.data_dir = Some(self.storage.data_dir.clone());
        s.storage = self.storage.limits();
        if self.no_cache {
            s.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            s.cache_dir = Some(dir.clone());
        }
        s
    }
}
