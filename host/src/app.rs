//! The engine's shared state: settings, the wasm engine, the stream hub, every
//! script's slot (its serving version and its last load error), and the route
//! table built from them.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use crate::engine::WasmEngine;
use crate::limits::Limits;
use crate::registry::{Conflict, RouteTable};
use crate::script::{LoadError, LoadedScript};
use crate::services::Services;
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
    /// Where the compiled guest is cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// Follow changes to the scripts folder (hot reload).
    pub watch: bool,
    /// Fuel, time and memory for each guest call.
    pub limits: Limits,
    /// Where scripts' storage lives; `None` keeps it in memory (tests, benchmarks).
    pub data_dir: Option<PathBuf>,
    /// Value size and per-script quota of storage.
    pub storage: StorageLimits,
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
            cache_dir: crate::engine::default_cache_dir(),
            watch: true,
            limits: Limits::default(),
            data_dir: None,
            storage: StorageLimits::default(),
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
}

pub struct App {
    pub settings: Settings,
    pub wasm: WasmEngine,
    pub hub: Arc<Hub>,
    pub storage: Arc<Storage>,
    pub table: ArcSwap<RouteTable>,
    slots: Mutex<BTreeMap<String, Slot>>,
}

/// A script as the route browser shows it.
pub struct ScriptView {
    pub name: String,
    pub live: Option<Arc<LoadedScript>>,
    pub version: u64,
    pub error: Option<(LoadError, SystemTime)>,
}

/// A file's content as read for a reload.
struct Candidate {
    name: String,
    hash: u64,
    source: Result<String, LoadError>,
}

impl App {
    pub fn new(settings: Settings) -> Result<Arc<App>> {
        // Storage first: a locked or corrupt database fails fast.
        let storage = Arc::new(Storage::open(
            settings.data_dir.as_deref(),
            settings.storage,
        )?);
        let wasm = WasmEngine::new(settings.cache_dir.as_deref(), settings.limits)?;
        let hub = Arc::new(Hub::new(settings.hub));
        Ok(Arc::new(App {
            settings,
            wasm,
            hub,
            storage,
            table: ArcSwap::from_pointee(RouteTable::default()),
            slots: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Loads every `*.js` file of the scripts folder.
    pub async fn load_all(self: &Arc<Self>) -> Result<()> {
        let dir = &self.settings.scripts_dir;
        std::fs::read_dir(dir)
            .with_context(|| format!("reading the scripts folder {}", dir.display()))?;
        self.reconcile(None).await;
        if self.slots.lock().unwrap().is_empty() {
            tracing::warn!(dir = %dir.display(), "no *.js scripts found");
        }
        Ok(())
    }

    /// Brings the loaded scripts in line with the folder for the files `names`
    /// (every file when `None`): new or changed files are loaded beside the
    /// serving version, missing ones are removed, and the route table is
    /// swapped once for the whole batch. A version that fails to load, or that
    /// would lose a route its predecessor served, leaves the predecessor serving.
    pub async fn reconcile(self: &Arc<Self>, names: Option<BTreeSet<String>>) {
        let names = names.unwrap_or_else(|| self.all_names());
        let mut candidates = Vec::new();
        let mut gone = Vec::new();
        {
            let slots = self.slots.lock().unwrap();
            for name in names.into_iter().filter(|n| is_script_name(n)) {
                let path = self.settings.scripts_dir.join(&name);
                let Some(source) = read_source(&path) else {
                    if slots.contains_key(&name) {
                        gone.push(name);
                    }
                    continue;
                };
                let hash = hash_of(&source);
                let unchanged = slots.get(&name).is_some_and(|s| {
                    (s.live.is_some() && s.live_hash == hash && s.error.is_none())
                        || s.failed_hash == Some(hash)
                });
                if !unchanged {
                    candidates.push(Candidate { name, hash, source });
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
            (c.name, c.hash, result)
        });
        let results = futures_util::future::join_all(loads).await;

        let mut slots = self.slots.lock().unwrap();
        for name in gone {
            slots.remove(&name);
            tracing::info!(script = %name, "unloaded (file removed)");
        }
        let before = self.table.load_full();
        let mut replaced = Vec::new();
        for (name, hash, result) in results {
            let slot = slots.entry(name.clone()).or_default();
            if let (Ok(_), Some(old)) = (&result, &slot.live) {
                replaced.push((name.clone(), old.clone(), slot.live_hash, slot.version));
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
            let slot = slots.get_mut(&name).expect("slot was just filled");
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
        }
        if rejected {
            table = RouteTable::build(slots.values().filter_map(|s| s.live.as_ref()));
        }
        self.swap(table);
    }

    /// Script files on disk and scripts loaded, by name.
    fn all_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.slots.lock().unwrap().keys().cloned().collect();
        match std::fs::read_dir(&self.settings.scripts_dir) {
            Ok(entries) => {
                names.extend(entries.filter_map(|e| e.ok()?.file_name().into_string().ok()))
            }
            Err(e) => {
                tracing::error!(dir = %self.settings.scripts_dir.display(), "cannot list the scripts folder: {e}")
            }
        }
        names
    }

    async fn start(&self, name: &str, source: String) -> Result<Arc<LoadedScript>, LoadError> {
        let services = Services {
            hub: self.hub.clone(),
            storage: self.storage.clone(),
        };
        LoadedScript::start(
            self.wasm.clone(),
            services,
            name,
            source,
            self.settings.queue_depth,
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
        self.slots
            .lock()
            .unwrap()
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

/// `*.js` files count as scripts; hidden and editor temp files do not.
pub fn is_script_name(name: &str) -> bool {
    name.ends_with(".js") && !name.starts_with('.') && !name.starts_with('#') && !name.contains('~')
}

/// A script's source: `None` when there is no such file (any more), an error
/// when it cannot be read or is not UTF-8.
fn read_source(path: &Path) -> Option<Result<String, LoadError>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        _ => return None,
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Err(LoadError {
                message: format!("cannot read {}: {e}", path.display()),
                detail: None,
            }))
        }
    };
    Some(String::from_utf8(bytes).map_err(|e| LoadError {
        message: format!("{} is not UTF-8 text: {e}", path.display()),
        detail: None,
    }))
}
