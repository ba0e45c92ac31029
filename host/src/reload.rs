//! The reload policy: what a look at the scripts folder does to the app's
//! slots and route table. The first load and every batch of the watcher go
//! through `reconcile`, which decides from what is on disk (never from event
//! kinds) what to load, replace or remove:
//!
//! - an unchanged file (same stamp, or same content as the live or the last
//!   failed version) is not loaded again;
//! - a new version loads beside the serving one, and replaces it only if it
//!   loaded and keeps every route its predecessor held; otherwise the
//!   predecessor keeps serving and the failure is shown on the slot;
//! - the route table is swapped once per batch.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::app::{App, Slot};
use crate::metrics::Reload;
use crate::registry::{Conflict, RouteTable};
use crate::script::{LoadError, LoadedScript};
use crate::script_files::{self, Found, Stamp};
use crate::script_names;

/// A file's content as read for a reload.
struct Candidate {
    name: String,
    hash: u64,
    stamp: Option<Stamp>,
    source: Result<String, LoadError>,
}

/// A candidate after its load: the new version, or why it failed.
type Loaded = (
    String,
    u64,
    Option<Stamp>,
    Result<Arc<LoadedScript>, LoadError>,
);

/// Loads every script file of the scripts folder.
pub async fn load_all(app: &Arc<App>) -> Result<()> {
    let dir = &app.settings.scripts_dir;
    std::fs::read_dir(dir)
        .with_context(|| format!("reading the scripts folder {}", dir.display()))?;
    reconcile(app, None).await;
    if app.slots().is_empty() {
        tracing::warn!(dir = %dir.display(), "no scripts (*.js, *.ts) found");
    }
    Ok(())
}

/// Brings the loaded scripts in line with the folder for the files `names`
/// (every file when `None`): new or changed files are loaded beside the
/// serving version, missing ones are removed, and the route table is
/// swapped once for the whole batch. A version that fails to load, or that
/// would lose a route its predecessor served, leaves the predecessor serving.
pub async fn reconcile(app: &Arc<App>, names: Option<BTreeSet<String>>) {
    // Adding or removing `hello.js` also reconsiders `hello.ts`.
    let names = names.map(script_names::with_twins);
    let _turn = app.reloading().await;
    let Some(found) = read(app, names).await else {
        return;
    };
    let (candidates, gone) = changes(app, found);
    if candidates.is_empty() && gone.is_empty() {
        return;
    }
    let loads = candidates.into_iter().map(|c| async move {
        let result = match c.source {
            Ok(source) => start(app, &c.name, source).await,
            Err(e) => Err(e),
        };
        (c.name, c.hash, c.stamp, result)
    });
    let results = futures_util::future::join_all(loads).await;
    install(app, gone, results);
}

/// Reads the files `names` (or all) that changed since their last read, on a
/// blocking thread; `None` when that thread failed.
async fn read(app: &App, names: Option<BTreeSet<String>>) -> Option<Vec<(String, Found)>> {
    let known: BTreeMap<String, Option<Stamp>> = app
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
        app.settings.scripts_dir.clone(),
        app.settings.max_script_bytes,
    );
    let reads = app.files_read_counter();
    // File reads block: they run where they cannot stall request handling.
    let found = tokio::task::spawn_blocking(move || {
        script_files::scan(&dir, names, &known, max_bytes, &reads)
    })
    .await;
    match found {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::error!("reading the scripts folder failed: {e}");
            None
        }
    }
}

/// The files to load (new content) and the scripts whose file is gone; a file
/// read again with the content it had is only re-stamped.
fn changes(app: &App, found: Vec<(String, Found)>) -> (Vec<Candidate>, Vec<String>) {
    let mut candidates = Vec::new();
    let mut gone = Vec::new();
    let mut slots = app.slots();
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
        let dir = &app.settings.scripts_dir;
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
    (candidates, gone)
}

/// Records the batch in the slots, puts back the predecessor of every new
/// version that lost a route it held, and swaps in the new route table.
fn install(app: &App, gone: Vec<String>, results: Vec<Loaded>) {
    let mut slots = app.slots();
    for name in gone {
        slots.remove(&name);
        app.metrics.reload(Reload::Removed);
        tracing::info!(script = %name, "unloaded (file removed)");
    }
    let before = app.table.load_full();
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
            Err(_) => app.metrics.reload(Reload::Error),
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
        app.metrics.reload(Reload::Rejected);
    }
    for _ in &loaded {
        app.metrics.reload(Reload::Ok);
    }
    if rejected {
        table = RouteTable::build(slots.values().filter_map(|s| s.live.as_ref()));
    }
    app.swap(table);
}

/// Starts a new version of the script `name` from its source.
async fn start(app: &App, name: &str, source: String) -> Result<Arc<LoadedScript>, LoadError> {
    let source = script_names::prepare(name, source)?;
    LoadedScript::start(
        app.guest.clone(),
        app.services.for_script(name),
        name,
        source,
        app.settings.queue_depth,
    )
    .await
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
