//! Durable per-script storage: the `storage` and `sharedStorage` script APIs.
//!
//! - `store.rs`      the backend seam (`Store`), commits and their acknowledgements
//! - `redb_store.rs` the embedded backend: one redb file, a group-committing writer
//! - `redis_store.rs` the cluster backend (`serve --redis`): one Redis shared by
//!   every node, with `redis_lua.rs` (layout, Lua scripts), `redis_lease.rs`
//!   (per-namespace leases that serialise a script's turns across nodes) and
//!   `redis_failure.rs` (what scripts see when Redis fails a call)
//! - `rules.rs`      what a script may store (key, value and quota sizes), its refusals
//! - `namespace.rs`  a script's namespace: turns, the not-yet-durable overlay
//! - `backup.rs`     dump/restore as JSON lines, offline or through a running server
//! - `admin.rs`      how a running server lets `aiwebengine storage` in: server.json, token
//!
//! The WIT `storage` interface a script calls is in `script/imports/storage.rs`.
//!
//! A script's namespace is its file name without the extension, so data
//! survives edits, reloads, restarts and re-adding the file.

pub mod admin;
pub mod backup;
pub mod namespace;
pub mod redb_store;
mod redis_failure;
mod redis_lease;
mod redis_lua;
pub mod redis_store;
mod rules;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use crate::metrics::{Metrics, StorageMetrics};

pub use namespace::{Namespace, Turn};
pub use rules::{check_key, StorageError, StorageLimits, MAX_KEY_BYTES};
pub use store::{Page, Store, Usage};

/// The storage service: the backend and every script's namespace.
pub struct Storage {
    store: Arc<dyn Store>,
    limits: StorageLimits,
    namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
    /// Where each namespace's operations are counted; none: nowhere.
    metrics: Option<Arc<Metrics>>,
    /// Where the database lives (none: in memory) and the token that lets
    /// `aiwebengine storage` reach a running server.
    pub admin: Option<admin::Admin>,
}

impl Storage {
    /// Opens the database in `data_dir`, or one in memory when `None`.
    pub fn open(data_dir: Option<&Path>, limits: StorageLimits) -> Result<Storage> {
        match data_dir {
            Some(dir) => {
                let store = redb_store::RedbStore::open(dir)?;
                let mut storage = Storage::from_store(Arc::new(store), limits);
                storage.admin = Some(admin::Admin::new(dir));
                Ok(storage)
            }
            None => Ok(Storage::from_store(
                Arc::new(redb_store::RedbStore::in_memory()?),
                limits,
            )),
        }
    }

    /// Storage in the Redis behind `link`, shared with every node using it
    /// (cluster mode). Never fails: a Redis that is down makes storage calls
    /// throw until it is back. Call from anywhere; the link's runtime must be
    /// multi-threaded.
    pub fn redis(link: Arc<crate::cluster::Link>, limits: StorageLimits) -> Storage {
        Storage::from_store(Arc::new(redis_store::RedisStore::new(link)), limits)
    }

    /// Storage in the cluster's Redis for an engine whose calls may run for
    /// `call_timeout`: a turn holds its script's lease at most that long, plus
    /// a margin; with no call deadline (`--timeout-ms 0`) a turn may run long: 30 s.
    pub fn cluster(
        link: Arc<crate::cluster::Link>,
        limits: StorageLimits,
        call_timeout: Duration,
    ) -> Storage {
        let lease = match call_timeout {
            t if t.is_zero() => Duration::from_secs(30),
            t => t + Duration::from_secs(5),
        };
        let store = redis_store::RedisStore::with_lease_times(link, lease, redis_lease::LEASE_WAIT);
        Storage::from_store(Arc::new(store), limits)
    }

    /// Storage over any backend.
    pub fn from_store(store: Arc<dyn Store>, limits: StorageLimits) -> Storage {
        Storage {
            store,
            limits,
            namespaces: Mutex::new(HashMap::new()),
            metrics: None,
            admin: None,
        }
    }

    /// Counts every namespace's operations and commits in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Storage {
        self.metrics = Some(metrics);
        self
    }

    /// (namespace, durable keys, durable bytes) of every namespace opened so far.
    pub fn usages(&self) -> Vec<(String, Usage)> {
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, Usage)> = namespaces
            .iter()
            .map(|(name, ns)| (name.clone(), ns.usage()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn limits(&self) -> StorageLimits {
        self.limits
    }

    /// The namespace of the script file `file_name`, shared by all its versions.
    pub fn namespace(&self, file_name: &str) -> Result<Arc<Namespace>> {
        let name = namespace_of(file_name);
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ns) = namespaces.get(name) {
            return Ok(ns.clone());
        }
        // A shared store's usage is read again by each turn that takes the
        // lease; reading it here would stop a script loading while Redis is down.
        let usage = if self.store.shared() {
            Usage::default()
        } else {
            self.store.usage(name)?
        };
        let ns = Arc::new(Namespace::new(
            Arc::from(name),
            self.store.clone(),
            self.limits,
            usage,
            match &self.metrics {
                Some(m) => m.storage(name),
                None => StorageMetrics::detached(),
            },
        ));
        namespaces.insert(name.to_string(), ns.clone());
        Ok(ns)
    }

    /// Durable usage of the script file `file_name`'s namespace (on a shared
    /// store, as it is now, other nodes' writes included).
    pub fn usage(&self, file_name: &str) -> Result<Usage> {
        let name = namespace_of(file_name);
        if self.store.shared() {
            return self.store.usage(name);
        }
        let known = self
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|ns| ns.usage());
        match known {
            Some(usage) => Ok(usage),
            None => self.store.usage(name),
        }
    }

    /// Every pair of namespace `name`, in key order (durable data only). On a
    /// shared store it holds the namespace's lease, so the pages form one snapshot.
    pub fn dump(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let lease = self.store.lease(name)?;
        let out = self.pages(name);
        match lease {
            Some(lease) => self.store.release_now(name, lease.token).and(out),
            None => out,
        }
    }

    fn pages(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let after = out.last().map(|(k, _)| k.clone());
            let page = Page {
                prefix: "",
                after: after.as_deref(),
                limit: 1000,
            };
            let page = self.store.scan(name, page)?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    /// Replaces namespace `name` with `entries`, atomically and durably.
    pub fn restore(&self, name: &str, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let ns = self.namespace(name)?;
        ns.replace(entries).map_err(anyhow::Error::msg)
    }
}

/// `chat.js` -> `chat`, `hello.ts` -> `hello`; a name without extension stays.
pub fn namespace_of(file_name: &str) -> &str {
    Path::new(file_name)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(file_name)
}

/// Where the data dir's database file is.
pub fn database_path(dir: &Path) -> PathBuf {
    dir.join(redb_store::FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_drop_the_extension() {
        assert_eq!(namespace_of("chat.js"), "chat");
        assert_eq!(namespace_of("hello.ts"), "hello");
        assert_eq!(namespace_of("plain"), "plain");
        assert_eq!(namespace_of("a.b.js"), "a.b");
    }
}
