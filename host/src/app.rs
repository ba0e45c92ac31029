//! The engine's shared state: settings, the wasm engine, the stream hub, every
//! script's slot (its serving version and its last load error), and the route
//! table built from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use crate::engine::WasmEngine;
use crate::registry::RouteTable;
use crate::script::{LoadError, LoadedScript};
use crate::streams::Hub;

/// The knobs `serve` takes from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    pub scripts_dir: PathBuf,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Requests that may wait for one script before new ones get 503.
    pub queue_depth: usize,
    /// Frames a stream subscriber may fall behind before it is disconnected.
    pub stream_buffer: usize,
    /// Where the compiled guest is cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
}

impl Settings {
    pub fn new(scripts_dir: impl Into<PathBuf>) -> Self {
        Settings {
            scripts_dir: scripts_dir.into(),
            max_body_bytes: 1 << 20,
            queue_depth: 1024,
            stream_buffer: 1024,
            cache_dir: crate::engine::default_cache_dir(),
        }
    }
}

/// A script file's state.
#[derive(Default)]
pub struct Slot {
    /// The version serving requests, if any ever loaded.
    pub live: Option<Arc<LoadedScript>>,
    /// The last load failure, if the newest version failed, and since when.
    pub error: Option<(LoadError, SystemTime)>,
}

pub struct App {
    pub settings: Settings,
    pub wasm: WasmEngine,
    pub hub: Arc<Hub>,
    pub table: ArcSwap<RouteTable>,
    slots: Mutex<BTreeMap<String, Slot>>,
}

/// A script as the route browser shows it.
pub struct ScriptView {
    pub name: String,
    pub live: Option<Arc<LoadedScript>>,
    pub error: Option<(LoadError, SystemTime)>,
}

impl App {
    pub fn new(settings: Settings) -> Result<Arc<App>> {
        let wasm = WasmEngine::new(settings.cache_dir.as_deref())?;
        let hub = Arc::new(Hub::new(settings.stream_buffer));
        Ok(Arc::new(App {
            settings,
            wasm,
            hub,
            table: ArcSwap::from_pointee(RouteTable::default()),
            slots: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Loads every `*.js` file of the scripts folder, in parallel.
    pub async fn load_all(self: &Arc<Self>) -> Result<()> {
        let dir = &self.settings.scripts_dir;
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the scripts folder {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_script_name(n))
            .collect();
        names.sort();
        if names.is_empty() {
            tracing::warn!(dir = %dir.display(), "no *.js scripts found");
        }
        let loads = names.into_iter().map(|name| {
            let app = self.clone();
            async move {
                let source = read_source(&app.settings.scripts_dir.join(&name));
                let result = match source {
                    Ok(source) => app.start(&name, source).await,
                    Err(e) => Err(e),
                };
                (name, result)
            }
        });
        let results = futures_util::future::join_all(loads).await;
        {
            let mut slots = self.slots.lock().unwrap();
            for (name, result) in results {
                apply(slots.entry(name.clone()).or_default(), &name, result);
            }
        }
        self.rebuild();
        Ok(())
    }

    async fn start(&self, name: &str, source: String) -> Result<Arc<LoadedScript>, LoadError> {
        LoadedScript::start(
            self.wasm.clone(),
            self.hub.clone(),
            name,
            source,
            self.settings.queue_depth,
        )
        .await
    }

    /// Rebuilds the route table from the live scripts and swaps it in.
    fn rebuild(&self) {
        let slots = self.slots.lock().unwrap();
        let table = RouteTable::build(slots.values().filter_map(|s| s.live.as_ref()));
        self.table.store(Arc::new(table));
    }

    pub fn scripts(&self) -> Vec<ScriptView> {
        self.slots
            .lock()
            .unwrap()
            .iter()
            .map(|(name, slot)| ScriptView {
                name: name.clone(),
                live: slot.live.clone(),
                error: slot.error.clone(),
            })
            .collect()
    }
}

/// Records a load result in a slot, logging it; a failure keeps the live version.
fn apply(slot: &mut Slot, name: &str, result: Result<Arc<LoadedScript>, LoadError>) {
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
            tracing::info!(script = name, routes = %routes.join(", "), "loaded");
            slot.live = Some(script);
            slot.error = None;
        }
        Err(e) => {
            match &e.detail {
                Some(detail) => {
                    tracing::error!(script = name, "failed to load: {}\n{detail}", e.message)
                }
                None => tracing::error!(script = name, "failed to load: {}", e.message),
            }
            slot.error = Some((e, SystemTime::now()));
        }
    }
}

/// `*.js` files count as scripts; hidden and editor temp files do not.
pub fn is_script_name(name: &str) -> bool {
    name.ends_with(".js") && !name.starts_with('.') && !name.starts_with('#') && !name.contains('~')
}

fn read_source(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError {
        message: format!("cannot read {}: {e}", path.display()),
        detail: None,
    })?;
    String::from_utf8(bytes).map_err(|e| LoadError {
        message: format!("{} is not UTF-8 text: {e}", path.display()),
        detail: None,
    })
}
