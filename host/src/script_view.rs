//! A script as the route browser, the metrics and `aiwebengine check` show it:
//! its status, and its routes and streams with the owner of any it lost.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::registry::Conflict;
use crate::script::{LoadError, LoadedScript};

pub struct ScriptView {
    pub name: String,
    pub live: Option<Arc<LoadedScript>>,
    pub version: u64,
    pub error: Option<(LoadError, SystemTime)>,
}

impl ScriptView {
    /// `error` when its newest version failed to load, `conflict` when it lost
    /// a route or stream to another script (`conflicts`), else `ok`.
    pub fn status(&self, conflicts: &[Conflict]) -> &'static str {
        if self.error.is_some() {
            "error"
        } else if !conflicts.is_empty() {
            "conflict"
        } else {
            "ok"
        }
    }

    /// The serving version's routes: `method`, `path` and `conflictsWith`
    /// (the script that serves it instead, or null).
    pub fn routes_json(&self, conflicts: &[Conflict]) -> Vec<Value> {
        let Some(live) = &self.live else {
            return Vec::new();
        };
        live.registrations
            .routes
            .iter()
            .map(|r| {
                let what = format!("{} {}", r.method, r.path.source);
                json!({
                    "method": r.method,
                    "path": r.path.source,
                    "conflictsWith": owner_of(conflicts, &what),
                })
            })
            .collect()
    }

    /// The serving version's streams: `path`, `conflictsWith`, and the fields
    /// `more` gives for the path (subscriber counts on a running server).
    pub fn streams_json(
        &self,
        conflicts: &[Conflict],
        more: impl Fn(&str) -> Map<String, Value>,
    ) -> Vec<Value> {
        let Some(live) = &self.live else {
            return Vec::new();
        };
        live.registrations
            .streams
            .iter()
            .map(|path| {
                let mut entry = Map::new();
                entry.insert("path".into(), json!(path));
                entry.extend(more(path));
                let owner = owner_of(conflicts, &format!("stream {path}"));
                entry.insert("conflictsWith".into(), json!(owner));
                Value::Object(entry)
            })
            .collect()
    }
}

/// The script serving `what` ("GET /x", "stream /s") instead, if it was lost.
fn owner_of(conflicts: &[Conflict], what: &str) -> Option<String> {
    conflicts
        .iter()
        .find(|c| c.what == what)
        .map(|c| c.owner.clone())
}
