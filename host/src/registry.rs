//! The live route table: a `matchit` router from path to the scripts' handlers
//! and streams. It is rebuilt from scratch whenever the set of loaded scripts
//! changes and swapped in atomically, so a lookup never takes a lock.
//!
//! Conflicts resolve by file name: scripts are visited in name order and the
//! first to claim a method+path (or a stream path) keeps it.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::route_path::RoutePath;
use crate::script::LoadedScript;

/// One method's handler at a path.
pub struct MethodRoute {
    pub method: String,
    pub path: RoutePath,
    pub script: Arc<LoadedScript>,
    pub handler: u32,
}

/// A stream and the script that registered it.
pub struct StreamRoute {
    pub path: String,
    pub script: Arc<LoadedScript>,
}

/// Everything registered at one router pattern.
#[derive(Default)]
pub struct PathEntry {
    pub methods: Vec<MethodRoute>,
    /// The stream registered here, if any.
    pub stream: Option<StreamRoute>,
}

impl PathEntry {
    pub fn method(&self, method: &str) -> Option<&MethodRoute> {
        self.methods.iter().find(|r| r.method == method)
    }

    /// The `Allow` header for a 405: every method served here.
    pub fn allow(&self) -> String {
        let mut methods: Vec<&str> = self.methods.iter().map(|r| r.method.as_str()).collect();
        if self.stream.is_some() || methods.contains(&"GET") {
            methods.extend(["GET", "HEAD"]);
        }
        methods.sort_unstable();
        methods.dedup();
        methods.join(", ")
    }
}

/// A registration another script already owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// "GET /chat" or "stream /chat".
    pub what: String,
    /// The script that owns it, or why the router refused it.
    pub owner: String,
}

#[derive(Default)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    entries: Vec<PathEntry>,
    /// Per script name: what it lost to earlier scripts.
    pub conflicts: BTreeMap<String, Vec<Conflict>>,
}

/// A successful lookup.
pub struct Found<'a> {
    pub entry: &'a PathEntry,
    /// Parameter values by position, still percent-encoded.
    pub values: Vec<&'a str>,
}

/// The router key of a stream path (streams have no parameters).
fn static_key(path: &str) -> String {
    RoutePath::parse(path).map_or_else(|_| path.to_string(), |p| p.key)
}

impl RouteTable {
    /// Builds the table from loaded scripts; `scripts` must be in file-name order.
    ///
    /// Should the router panic on some script's routes (route paths are
    /// validated at registration so that it does not), the table is built
    /// again without that script, which is reported as a conflict: a panic here
    /// must never take the server, or the lock of the scripts, down.
    pub fn build<'a>(scripts: impl IntoIterator<Item = &'a Arc<LoadedScript>>) -> RouteTable {
        let scripts: Vec<&Arc<LoadedScript>> = scripts.into_iter().collect();
        let mut excluded: Vec<Arc<str>> = Vec::new();
        loop {
            match Self::try_build(&scripts, &excluded) {
                Ok(mut table) => {
                    for name in excluded {
                        table
                            .conflicts
                            .entry(name.to_string())
                            .or_default()
                            .push(Conflict {
                                what: "its routes".into(),
                                owner: "the router failed on them (an internal error)".into(),
                            });
                    }
                    return table;
                }
                Err(culprit) => {
                    tracing::error!(script = %culprit, "the router panicked on this script's routes; serving without them");
                    excluded.push(culprit);
                }
            }
        }
    }

    fn try_build(
        scripts: &[&Arc<LoadedScript>],
        excluded: &[Arc<str>],
    ) -> Result<RouteTable, Arc<str>> {
        let mut table = RouteTable::default();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for script in scripts.iter().filter(|s| !excluded.contains(&s.name)) {
            let regs = &script.registrations;
            let claims = regs
                .routes
                .iter()
                .map(|r| (r.path.key.clone(), Some(r)))
                .chain(regs.streams.iter().map(|s| (static_key(s), None)));
            for (key, route) in claims {
                let slot = match index.get(&key) {
                    Some(slot) => *slot,
                    None => {
                        let next = table.entries.len();
                        let inserted = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            table.router.insert(key.clone(), next)
                        }))
                        .map_err(|_| script.name.clone())?;
                        if let Err(e) = inserted {
                            let what = route.map_or_else(
                                || format!("stream {key}"),
                                |r| format!("{} {}", r.method, r.path.source),
                            );
                            tracing::warn!(script = %script.name, "{what} cannot be routed: {e}");
                            table
                                .conflicts
                                .entry(script.name.to_string())
                                .or_default()
                                .push(Conflict {
                                    what,
                                    owner: e.to_string(),
                                });
                            continue;
                        }
                        table.entries.push(PathEntry::default());
                        index.insert(key.clone(), table.entries.len() - 1);
                        table.entries.len() - 1
                    }
                };
                let Some(entry) = table.entries.get_mut(slot) else {
                    continue; // cannot happen: slots index entries
                };
                let (what, owner) = match route {
                    Some(route) => match entry.method(&route.method) {
                        None => {
                            entry.methods.push(MethodRoute {
                                method: route.method.clone(),
                                path: route.path.clone(),
                                script: Arc::clone(script),
                                handler: route.handler,
                            });
                            continue;
                        }
                        Some(owner) => (
                            format!("{} {}", route.method, route.path.source),
                            owner.script.name.to_string(),
                        ),
                    },
                    None => match &entry.stream {
                        None => {
                            entry.stream = Some(StreamRoute {
                                path: key.replace("{{", "{").replace("}}", "}"),
                                script: Arc::clone(script),
                            });
                            continue;
                        }
                        Some(owner) => (format!("stream {key}"), owner.script.name.to_string()),
                    },
                };
                tracing::warn!(script = %script.name, owner, "{what} is already registered by {owner}; ignoring it");
                table
                    .conflicts
                    .entry(script.name.to_string())
                    .or_default()
                    .push(Conflict { what, owner });
            }
        }
        Ok(table)
    }

    /// Every stream path in the table.
    pub fn stream_paths(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter_map(|e| e.stream.as_ref().map(|s| s.path.as_str()))
    }

    pub fn lookup<'a>(&'a self, path: &'a str) -> Option<Found<'a>> {
        let m = self.router.at(path).ok()?;
        Some(Found {
            entry: self.entries.get(*m.value)?,
            values: m.params.iter().map(|(_, v)| v).collect(),
        })
    }
}
