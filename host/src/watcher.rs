//! Hot reload: watch the scripts folder and hand the names of changed files to
//! `reload::reconcile`, which decides from what is on disk (not from the event
//! kinds) what to load, replace or remove. Editors save via temp files,
//! renames and several writes; reading the final state makes all of those the
//! same case.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

use crate::app::App;
use crate::reload;

/// How long a file must be quiet before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(10);

/// What changed: some file names, or "look at everything" (`None`).
type Batch = Option<BTreeSet<String>>;

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `app`'s scripts folder; changes are applied in the background
/// one batch at a time, in order.
pub fn start(app: Arc<App>) -> Result<Watch> {
    let dir = app.settings.scripts_dir.clone();
    let (tx, rx) = mpsc::unbounded_channel::<Batch>();
    let mut debouncer = new_debouncer(
        DEBOUNCE,
        Some(DEBOUNCE / 2),
        move |result: DebounceEventResult| {
            let batch = match result {
                Ok(events) if events.iter().any(|e| e.need_rescan()) => None,
                Ok(events) => Some(
                    events
                        .iter()
                        .filter(|e| changes_content(&e.kind))
                        .flat_map(|e| e.paths.iter())
                        .filter_map(|p| file_name(p))
                        .collect(),
                ),
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("watching the scripts folder: {e}");
                    }
                    None
                }
            };
            let _ = tx.send(batch);
        },
    )
    .context("starting the file watcher")?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    tokio::spawn(apply_batches(app, rx));
    tracing::info!(dir = %dir.display(), "watching for changes");
    Ok(Watch {
        _debouncer: debouncer,
    })
}

/// Creations, writes, renames and removals; not opens, reads or closes (the
/// server's own reads of a script would otherwise trigger another reload, and
/// so on: an idle server read its files hundreds of times a second), and not
/// access-time updates.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Modify(_) => true,
        // A close after writing ends a save: keep it; plain opens and reads are ours.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_string)
}

/// Applies batches in order. Batches that queued up while one was loading are
/// merged first, so a storm of saves costs one load per file per round.
async fn apply_batches(app: Arc<App>, mut rx: mpsc::UnboundedReceiver<Batch>) {
    while let Some(first) = rx.recv().await {
        let mut merged = first;
        while let Ok(next) = rx.try_recv() {
            merged = match (merged, next) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    Some(a)
                }
                _ => None,
            };
        }
        if merged.as_ref().is_some_and(|names| names.is_empty()) {
            continue;
        }
        // A panic while reloading (a host bug) is logged; hot reload goes on.
        let reload = std::panic::AssertUnwindSafe(reload::reconcile(&app, merged));
        if let Err(panic) = futures_util::FutureExt::catch_unwind(reload).await {
            let panic = crate::panics::panic_message(panic.as_ref());
            tracing::error!(panic, "internal error while reloading scripts");
        }
    }
}
