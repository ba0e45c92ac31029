//! The engine's shared state: settings, the wasm engine, the stream hub, every
//! script's slot (its serving version and its last load error), and the route
//! table built from them.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use crate::admin_token::AdminToken;
use crate::cluster::Cluster;
use crate::engine::WasmEngine;
use crate::fetch::{FetchSettings, Fetcher};
use crate::health::Health;
use crate::limits::Limits;
use crate::metrics::{Metrics, Reload};
use crate::registry::{Conflict, RouteTable};
use crate::script::{LoadError, LoadedScript};
use crate::script_files::{self, Found, Stamp};
use crate::script_names;
pub use crate::script_view::ScriptView;
use crate::services::Services;
use crate::storage::redis_store::RedisStore;
use crate::storage::{Storage, StorageLimits};
use crate::streams::{Hub, HubLimits};

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
            cache_dir: crate::engine::default_cache_dir(),
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

/// A script file's state.
#[derive(Default)]
pub struct Slot {
    /// The version serving requests, if any ever loaded.
    pub live: Option<Arc<LoadedScript>>,
    /// Counts successful loads of this file: 1 for the first, 2 after an edit...
    pub version: u64,
    /// Hash of the live version's source, to skip events that changed nothing.
    live_hash: u64,
    /// The last load failure, if the newest version failed, and since when.
    pub error: Option<(LoadError, SystemTime)>,
    /// Hash of the source that failed, so it is not retried until it changes.
    failed_hash: Option<u64>,
    /// The file as last read, so an unchanged one is not read again.
    stamp: Option<Stamp>,
}

pub struct App {
    pub settings: Settings,
    pub wasm: WasmEngine,
    pub hub: Arc<Hub>,
    pub services: Services,
    pub storage: Arc<Storage>,
    pub table: ArcSwap<RouteTable>,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    /// This node's cluster, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Held by the one reconcile running: the first load and the watcher's
    /// first batch must not both load a file (which made every script start
    /// at version 2).
    reconciling: tokio::sync::Mutex<()>,
    /// Script files read from disk so far (see `files_read`).
    files_read: Arc<AtomicU64>,
}

/// A file's content as read for a reload.
struct Candidate {
    name: String,
    hash: u64,
    stamp: Option<Stamp>,
    source: Result<String, LoadError>,
}

impl App {
    pub fn new(settings: Settings) -> Result<Arc<App>> {
        let metrics = Arc::new(Metrics::new());
        let hub = Arc::new(Hub::with_metrics(settings.hub, metrics.clone()));
        let cluster = match &settings.redis {
            Some(url) => Some(Cluster::start(
                url,
                settings.node_name.clone(),
                &hub,
                metrics.clone(),
            )?),
            None => None,
        };
        // Storage before the guest compiles: a locked or corrupt database fails
        // fast. In cluster mode it is the cluster's Redis; a turn holds its script's lease at
        // most as long as a call may run, plus a margin.
        let storage = match &cluster {
            Some(cluster) => {
                // With no call deadline (`--timeout-ms 0`) a turn may run long: 30 s.
                let lease = match settings.limits.timeout {
                    t if t.is_zero() => Duration::from_secs(30),
                    t => t + Duration::from_secs(5),
                };
                let store = RedisStore::with_lease_times(
                    cluster.link.clone(),
                    lease,
                    Duration::from_secs(5),
                );
                Storage::from_store(Arc::new(store), settings.storage)
            }
            None => Storage::open(settings.data_dir.as_deref(), settings.storage)?,
        };
        let storage = Arc::new(storage.with_metrics(metrics.clone()));
        let wasm = WasmEngine::new(settings.cache_dir.as_deref(), settings.limits)?;
        let services = Services {
            hub: hub.clone(),
            fetch: Arc::new(Fetcher::new(&settings.fetch)?),
            storage: storage.clone(),
        };
        Ok(Arc::new(App {
            settings,
            wasm,
            hub,
            metrics,
            health: Health::default(),
            cluster,
            services,
            storage,
            table: ArcSwap::from_pointee(RouteTable::default()),
            slots: Mutex::new(BTreeMap::new()),
            reconciling: tokio::sync::Mutex::new(()),
            files_read: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// The slots; a panic elsewhere while they were locked leaves them usable
    /// (every update to them is complete between statements).
    fn slots(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many script files have been read from disk: an idle server reads none.
    pub fn files_read(&self) -> u64 {
        self.files_read.load(Ordering::Relaxed)
    }

    /// Loads every `*.js` file of the scripts folder.
    pub async fn load_all(self: &Arc<Self>) -> Result<()> {
        let dir = &self.settings.scripts_dir;
        std::fs::read_dir(dir)
            .with_context(|| format!("reading the scripts folder {}", dir.display()))?;
        self.reconcile(None).await;
        if self.slots().is_empty() {
            tracing::warn!(dir = %dir.display(), "no scripts (*.js, *.ts) found");
        }
        Ok(())
    }

    /// Brings the loaded scripts in line with the folder for the files `names`
    /// (every file when `None`): new or changed files are loaded beside the
    /// serving version, missing ones are removed, and the route table is
    /// swapped once for the whole batch. A version that fails to load, or that
    /// would lose a route its predecessor served, leaves the predecessor serving.
    pub async fn reconcile(self: &Arc<Self>, names: Option<BTreeSet<String>>) {
        // Adding or removing `hello.js` also reconsiders `hello.ts`.
        let names = names.map(script_names::with_twins);
        let _turn = self.reconciling.lock().await;
        let known: BTreeMap<String, Option<Stamp>> = self
            .slots()
            .iter()
            // A script whose newest version failed is read again: the failure
            // may lie outside its file (a `.js` twin that has since gone).
            .map(|(name, slot)| {
                let stamp = slot.error.is_none().then(|| slot.stamp.clone()).flatten();
                (name.clone(), stamp)
            })
            .collect();
        let (dir, max_bytes) = (
            self.settings.scripts_dir.clone(),
            self.settings.max_script_bytes,
        );
        let reads = self.files_read.clone();
        // File reads block: they run where they cannot stall request handling.
        let found = tokio::task::spawn_blocking(move || {
            script_files::scan(&dir, names, &known, max_bytes, &reads)
        })
        .await;
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::error!("reading the scripts folder failed: {e}");
                return;
            }
        };
        let mut candidates = Vec::new();
        let mut gone = Vec::new();
        {
            let mut slots = self.slots();
            for (name, found) in found {
                let (stamp, source) = match found {
                    Found::Unchanged => continue,
                    Found::Gone => {
                        if slots.contains_key(&name) {
                            gone.push(name);
                        }
                        continue;
                    }
                    Found::Read { stamp, source } => (stamp, source),
                };
                let dir = &self.settings.scripts_dir;
                let source = source.and_then(|s| script_names::refuse_twin(dir, &name).map(|()| s));
                let hash = hash_of(&source);
                let unchanged = slots.get(&name).is_some_and(|s| {
                    (s.live.is_some() && s.live_hash == hash && s.error.is_none())
                        || s.failed_hash == Some(hash)
                });
                match slots.get_mut(&name) {
                    Some(slot) if unchanged => slot.stamp = stamp,
                    _ => candidates.push(Candidate {
                        name,
                        hash,
                        stamp,
                        source,
                    }),
                }
            }
        }
        if candidates.is_empty() && gone.is_empty() {
            return;
        }
        let loads = candidates.into_iter().map(|c| async move {
            let result = match c.source {
                Ok(source) => self.start(&c.name, source).await,
                Err(e) => Err(e),
            };
            (c.name, c.hash, c.stamp, result)
        });
        let results = futures_util::future::join_all(loads).await;

        let mut slots = self.slots();
        for name in gone {
            slots.remove(&name);
            self.metrics.reload(Reload::Removed);
            tracing::info!(script = %name, "unloaded (file removed)");
        }
        let before = self.table.load_full();
        let mut replaced = Vec::new();
        let mut loaded = Vec::new();
        for (name, hash, stamp, result) in results {
            let slot = slots.entry(name.clone()).or_default();
            slot.stamp = stamp;
            if let (Ok(_), Some(old)) = (&result, &slot.live) {
                replaced.push((name.clone(), old.clone(), slot.live_hash, slot.version));
            }
            match &result {
                Ok(_) => loaded.push(name.clone()),
                Err(_) => self.metrics.reload(Reload::Error),
            }
            apply(slot, &name, hash, result);
        }
        let mut table = RouteTable::build(slots.values().filter_map(|s| s.live.as_ref()));
        // A new version that lost a route its predecessor held is a broken change.
        let mut rejected = false;
        for (name, old, old_hash, old_version) in replaced {
            let lost: Vec<&Conflict> = table
                .conflicts
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|c| {
                    !before
                        .conflicts
                        .get(&name)
                        .is_some_and(|was| was.contains(c))
                })
                .collect();
            if lost.is_empty() {
                continue;
            }
            let message = lost
                .iter()
                .map(|c| format!("{} is already registered by {}", c.what, c.owner))
                .collect::<Vec<_>>()
                .join("; ");
            tracing::error!(script = %name, "new version not loaded: {message}; the previous version keeps serving");
            let Some(slot) = slots.get_mut(&name) else {
                continue; // cannot happen: it was just filled
            };
            slot.failed_hash = Some(slot.live_hash);
            slot.live = Some(old);
            slot.live_hash = old_hash;
            slot.version = old_version;
            slot.error = Some((
                LoadError {
                    message,
                    detail: None,
                },
                SystemTime::now(),
            ));
            rejected = true;
            loaded.retain(|n| *n != name);
            self.metrics.reload(Reload::Rejected);
        }
        for _ in &loaded {
            self.metrics.reload(Reload::Ok);
        }
        if rejected {
            table = RouteTable::build(slots.values().filter_map(|s| s.live.as_ref()));
        }
        self.swap(table);
    }

    async fn start(&self, name: &str, source: String) -> Result<Arc<LoadedScript>, LoadError> {
        let source = script_names::prepare(name, source)?;
        LoadedScript::start(
            self.wasm.clone(),
            self.services.for_script(),
            name,
            source,
            self.settings.queue_depth,
            &self.metrics,
        )
        .await
    }

    /// Tells `aiwebengine storage` how to reach this server (see `storage/backup.rs`).
    pub fn advertise(&self, addr: std::net::SocketAddr) {
        if let Some(admin) = &self.storage.admin {
            if let Err(e) = admin.advertise(addr) {
                tracing::warn!("`aiwebengine storage` will not reach this server: {e:#}");
            }
        }
    }

    /// Installs a new route table and closes the streams no script registers any more.
    fn swap(&self, table: RouteTable) {
        let streams: BTreeSet<String> = table.stream_paths().map(str::to_string).collect();
        self.table.store(Arc::new(table));
        self.hub.retain(|path| streams.contains(path));
    }

    pub fn scripts(&self) -> Vec<ScriptView> {
        self.slots()
            .iter()
            .map(|(name, slot)| ScriptView {
                name: name.clone(),
                live: slot.live.clone(),
                version: slot.version,
                error: slot.error.clone(),
            })
            .collect()
    }
}

fn hash_of(source: &Result<String, LoadError>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match source {
        Ok(s) => s.hash(&mut h),
        Err(e) => e.message.hash(&mut h),
    }
    h.finish()
}

/// Records a load result in a slot, logging it; a failure keeps the live version.
fn apply(slot: &mut Slot, name: &str, hash: u64, result: Result<Arc<LoadedScript>, LoadError>) {
    match result {
        Ok(script) => {
            let routes: Vec<String> = script
                .registrations
                .routes
                .iter()
                .map(|r| format!("{} {}", r.method, r.path.source))
                .chain(
                    script
                        .registrations
                        .streams
                        .iter()
                        .map(|s| format!("stream {s}")),
                )
                .collect();
            slot.version += 1;
            tracing::info!(script = name, version = slot.version, routes = %routes.join(", "), "loaded");
            slot.live = Some(script);
            slot.live_hash = hash;
            slot.error = None;
            slot.failed_hash = None;
        }
        Err(e) => {
            let keeps = if slot.live.is_some() {
                "; the previous version keeps serving"
            } else {
                ""
            };
            match &e.detail {
                Some(detail) => tracing::error!(
                    script = name,
                    "failed to load: {}{keeps}\n{detail}",
                    e.message
                ),
                None => tracing::error!(script = name, "failed to load: {}{keeps}", e.message),
            }
            slot.error = Some((e, SystemTime::now()));
            slot.failed_hash = Some(hash);
        }
    }
}

pub use crate::script_names::is_script_name;
