//! The engine's shared state: its settings and services (the wasm engine,
//! the stream hub, storage, metrics), every script's slot (its serving
//! version and its last load error), and the route table built from them.
//! What a file change does to that state is `reload.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use anyhow::Result;
use arc_swap::ArcSwap;

use crate::cluster::Cluster;
use crate::fetch::Fetcher;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::registry::RouteTable;
use crate::script::{LinkedGuest, LoadError, LoadedScript};
use crate::script_files::Stamp;
use crate::script_view::ScriptView;
use crate::services::Services;
use crate::settings::Settings;
use crate::storage::Storage;
use crate::streams::Hub;
use crate::wasm::WasmRuntime;

/// A script file's state. `live`, `version` and `error` are what the file
/// shows; the rest is what reloading remembers to skip unchanged files.
#[derive(Default)]
pub struct Slot {
    /// The version serving requests, if any ever loaded.
    pub live: Option<Arc<LoadedScript>>,
    /// Counts successful loads of this file: 1 for the first, 2 after an edit...
    pub version: u64,
    /// The last load failure, if the newest version failed, and since when.
    pub error: Option<(LoadError, SystemTime)>,
    /// Hash of the live version's source, to skip events that changed nothing.
    pub(crate) live_hash: u64,
    /// Hash of the source that failed, so it is not retried until it changes.
    pub(crate) failed_hash: Option<u64>,
    /// The file as last read, so an unchanged one is not read again.
    pub(crate) stamp: Option<Stamp>,
}

/// One engine's shared state, behind an `Arc`: requests read it, reloads
/// change its slots and route table.
pub struct App {
    pub settings: Settings,
    /// The stream hub (tests publish into it).
    pub hub: Arc<Hub>,
    // What else scripts run on and reach: for the engine's own modules.
    pub(crate) guest: LinkedGuest,
    pub(crate) services: Services,
    pub(crate) storage: Arc<Storage>,
    pub(crate) metrics: Arc<Metrics>,
    /// This node's cluster, in cluster mode.
    pub(crate) cluster: Option<Arc<Cluster>>,
    pub(crate) health: Health,
    /// The routes and streams the slots' live versions serve.
    pub(crate) table: ArcSwap<RouteTable>,
    /// Counts `table` swaps: what was looked up in it holds while this is
    /// unchanged (see `server/websocket.rs`).
    pub(crate) table_generation: AtomicU64,
    /// Every script file's slot, by file name.
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Held by the one reload running: the first load and the watcher's
    /// first batch must not both load a file (which made every script start
    /// at version 2).
    reloading: tokio::sync::Mutex<()>,
    /// Script files read from disk so far (see `files_read`).
    files_read: Arc<AtomicU64>,
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
        // fast. In cluster mode it is the cluster's Redis.
        let storage = match &cluster {
            Some(cluster) => Storage::cluster(
                cluster.link.clone(),
                settings.storage,
                settings.limits.timeout,
            ),
            None => Storage::open(settings.data_dir.as_deref(), settings.storage)?,
        };
        let storage = Arc::new(storage.with_metrics(metrics.clone()));
        let wasm = WasmRuntime::new(settings.cache_dir.as_deref(), settings.limits)?;
        let guest = LinkedGuest::new(wasm)?;
        let services = Services {
            hub: hub.clone(),
            clients: Arc::default(),
            fetch: Arc::new(Fetcher::new(&settings.fetch)?),
            storage: storage.clone(),
            metrics: metrics.clone(),
        };
        Ok(Arc::new(App {
            settings,
            guest,
            hub,
            metrics,
            health: Health::default(),
            cluster,
            services,
            storage,
            table: ArcSwap::from_pointee(RouteTable::default()),
            table_generation: AtomicU64::new(0),
            slots: Mutex::new(BTreeMap::new()),
            reloading: tokio::sync::Mutex::new(()),
            files_read: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// The slots; a panic elsewhere while they were locked leaves them usable
    /// (every update to them is complete between statements).
    pub(crate) fn slots(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many script files have been read from disk: an idle server reads none.
    pub fn files_read(&self) -> u64 {
        self.files_read.load(Ordering::Relaxed)
    }

    /// The counter of script files read, for the reads of a reload.
    pub(crate) fn files_read_counter(&self) -> Arc<AtomicU64> {
        self.files_read.clone()
    }

    /// Waits until no other reload runs; held, the caller is the one running.
    pub(crate) async fn reloading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reloading.lock().await
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
    pub(crate) fn swap(&self, table: RouteTable) {
        let streams: BTreeSet<String> = table.stream_paths().map(str::to_string).collect();
        self.table.store(Arc::new(table));
        self.table_generation.fetch_add(1, Ordering::Release);
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
