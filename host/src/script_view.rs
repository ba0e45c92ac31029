//! A script as the route browser, the metrics and `aiwebengine check` show it:
//! its status, and its routes and streams with the owner of any it lost.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::registry::Conflict;
use crate::script::{LoadError, LoadedScript};

pub struct ScriptView {
    pub name: String,
    pub live: Option<Arc<LoadedScript>>,
    pub version: u64,
    pub error: Option<(LoadError, SystemTime)>,
}

/// A route of the serving version. Fields in alphabetical order, the order
/// of the keys in the JSON these views replaced.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// The script that serves it instead, if it was lost.
    pub conflicts_with: Option<String>,
    pub method: String,
    pub path: String,
}

/// A stream of the serving version (fields in alphabetical order).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    /// The script that serves it instead, if it was lost.
    pub conflicts_with: Option<String>,
    pub path: String,
    /// Its subscribers, on a running server.
    #[serde(flatten)]
    pub counts: Option<SubscriberCounts>,
}

/// How many subscribe to a stream, and through what (fields in alphabetical order).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SubscriberCounts {
    pub sse: usize,
    pub subscribers: usize,
    pub websocket: usize,
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

    /// The serving version's routes, none when no version serves.
    pub fn routes(&self, conflicts: &[Conflict]) -> Vec<RouteView> {
        self.live
            .iter()
            .flat_map(|live| &live.registrations.routes)
            .map(|r| RouteView {
                conflicts_with: owner_of(conflicts, &format!("{} {}", r.method, r.path.source)),
                method: r.method.clone(),
                path: r.path.source.clone(),
            })
            .collect()
    }

    /// The serving version's streams, with the counts `counts` gives for a path.
    pub fn streams(
        &self,
        conflicts: &[Conflict],
        counts: impl Fn(&str) -> Option<SubscriberCounts>,
    ) -> Vec<StreamView> {
        self.live
            .iter()
            .flat_map(|live| &live.registrations.streams)
            .map(|path| StreamView {
                conflicts_with: owner_of(conflicts, &format!("stream {path}")),
                path: path.clone(),
                counts: counts(path),
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
