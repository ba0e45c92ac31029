//! The embedded `Store`: one redb file in the data dir, and a writer thread
//! that group-commits.
//!
//! Tables: `data` maps (namespace, key) to the value's JSON bytes; `usage`
//! maps a namespace to (keys, bytes), kept in the same transactions as the data
//! so it can never drift. The writer takes every commit that is queued, applies
//! them in order in one write transaction, commits it with fsync, then settles
//! each: one fsync for however many turns were ready. A failed transaction
//! writes nothing, and every commit in it fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use redb::{Database, DatabaseError, Durability, ReadOnlyTable, ReadableTable, TableDefinition};

use super::store::{Change, Commit, Delta, Page, Pairs, Store, Usage};

const DATA: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("data");
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

/// The database file inside the data dir.
pub const FILE_NAME: &str = "storage.redb";

/// Most commits written in one transaction.
const MAX_GROUP: usize = 4096;

pub struct RedbStore {
    db: Arc<Database>,
    queue: Sender<Commit>,
    /// Bumped by the writer after each durable transaction, before it settles.
    generation: Arc<AtomicU64>,
    /// A read snapshot of `data`, reused while no transaction committed since
    /// (opening one per `get` costs more than the lookup itself).
    reader: Mutex<Option<(u64, Arc<DataTable>)>>,
}

type DataTable = ReadOnlyTable<(&'static str, &'static str), &'static [u8]>;

/// Why the database could not be opened; `Locked` lets the CLI fall back to
/// the running server that holds it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} is in use by another aiwebengine process (one server per data dir)")]
    Locked(PathBuf),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl RedbStore {
    /// Opens (creating if missing) the database in `dir`, never wiping it: a
    /// file that is not a valid database is an error naming it.
    pub fn open(dir: &Path) -> Result<RedbStore, OpenError> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => return Err(OpenError::Locked(path)),
            Err(e) => {
                return Err(anyhow!(
                    "cannot open the storage database {}: {e} (the file is left as it is)",
                    path.display()
                )
                .into())
            }
        };
        Ok(Self::start(db).with_context(|| format!("preparing {}", path.display()))?)
    }

    /// A database in memory, for tests and benchmarks that do not need to keep data.
    pub fn in_memory() -> Result<RedbStore> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .context("creating an in-memory database")?;
        Self::start(db)
    }

    fn start(db: Database) -> Result<RedbStore> {
        let txn = db.begin_write()?;
        txn.open_table(DATA)?;
        txn.open_table(USAGE)?;
        txn.commit()?;
        let db = Arc::new(db);
        let (queue, commits) = crossbeam_channel::unbounded();
        let writer_db = db.clone();
        let generation = Arc::new(AtomicU64::new(0));
        let writer_generation = generation.clone();
        std::thread::Builder::new()
            .name("storage writer".into())
            .spawn(move || writer(&writer_db, &writer_generation, commits))
            .context("starting the storage writer thread")?;
        Ok(RedbStore {
            db,
            queue,
            generation,
            reader: Mutex::new(None),
        })
    }

    /// A snapshot at least as new as every settled commit: a namespace drops
    /// writes from its overlay only after they settle, so it never misses them.
    fn data(&self) -> Result<Arc<DataTable>> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, table)) = reader.as_ref() {
            if *seen == generation {
                return Ok(table.clone());
            }
        }
        let table = Arc::new(self.db.begin_read()?.open_table(DATA)?);
        *reader = Some((generation, table.clone()));
        Ok(table)
    }
}

impl Store for RedbStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let table = self.data()?;
        Ok(table.get((namespace, key))?.map(|v| v.value().to_vec()))
    }

    fn scan(&self, namespace: &str, page: Page<'_>) -> Result<Pairs> {
        let mut out = Vec::new();
        if page.limit == 0 {
            return Ok(out);
        }
        let start = match page.after {
            Some(after) if after > page.prefix => after,
            _ => page.prefix,
        };
        let table = self.data()?;
        for entry in table.range((namespace, start)..)? {
            let (k, v) = entry?;
            let (ns, key) = k.value();
            if ns != namespace || !key.starts_with(page.prefix) {
                break;
            }
            if !page.holds(key) {
                continue;
            }
            out.push((key.to_string(), v.value().to_vec()));
            if out.len() >= page.limit {
                break;
            }
        }
        Ok(out)
    }

    fn usage(&self, namespace: &str) -> Result<Usage> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USAGE)?;
        Ok(table
            .get(namespace)?
            .map(|v| {
                let (keys, bytes) = v.value();
                Usage { keys, bytes }
            })
            .unwrap_or_default())
    }

    fn submit(&self, commit: Commit) {
        if let Err(e) = self.queue.send(commit) {
            e.into_inner()
                .settle(Err("the storage writer has stopped".into()));
        }
    }
}

/// Group commit: everything queued goes into one durable transaction.
fn writer(db: &Database, generation: &AtomicU64, commits: Receiver<Commit>) {
    while let Ok(first) = commits.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commits.try_recv() {
                Ok(commit) => group.push(commit),
                Err(_) => break,
            }
        }
        let (live, refused): (Vec<Commit>, Vec<Commit>) =
            group.into_iter().partition(|c| !c.poisoned());
        for commit in refused {
            commit.settle(Err(
                "an earlier write of this script failed, and this one may depend on it".into(),
            ));
        }
        if live.is_empty() {
            continue;
        }
        let outcome = if live.iter().all(|c| matches!(c.change, Change::Barrier)) {
            live.iter()
                .map(|c| Ok(c.shared.lock().usage))
                .collect::<Result<Vec<Usage>>>()
        } else {
            write_group(db, &live)
        };
        generation.fetch_add(1, Ordering::Release);
        match outcome {
            Ok(usages) => {
                for (commit, usage) in live.into_iter().zip(usages) {
                    commit.settle(Ok(usage));
                }
            }
            Err(e) => {
                tracing::error!(commits = live.len(), "storage commit failed: {e:#}");
                let reason = format!("storage commit failed: {e:#}");
                for commit in live {
                    commit.settle(Err(reason.clone()));
                }
            }
        }
    }
}

/// Writes `group` in one transaction; returns each commit's namespace usage
/// right after it.
fn write_group(db: &Database, group: &[Commit]) -> Result<Vec<Usage>> {
    let mut txn = db.begin_write().context("starting a write")?;
    txn.set_durability(Durability::Immediate);
    let mut after = Vec::with_capacity(group.len());
    {
        let mut data = txn.open_table(DATA)?;
        let mut usage_table = txn.open_table(USAGE)?;
        let mut usages: HashMap<&str, Usage> = HashMap::new();
        for commit in group {
            let ns: &str = &commit.namespace;
            let mut usage = match usages.get(ns) {
                Some(u) => *u,
                None => usage_table
                    .get(ns)?
                    .map(|v| {
                        let (keys, bytes) = v.value();
                        Usage { keys, bytes }
                    })
                    .unwrap_or_default(),
            };
            let mut delta = Delta::default();
            match &commit.change {
                Change::Barrier => {}
                Change::Writes(writes) => {
                    for (key, value) in writes {
                        let old = match value {
                            Some(v) => data.insert((ns, key.as_str()), v.as_slice())?,
                            None => data.remove((ns, key.as_str()))?,
                        }
                        .map(|g| g.value().len());
                        delta.add(Delta::of_write(key, old, value.as_ref().map(Vec::len)));
                    }
                }
                Change::Replace(entries) => {
                    let mut keys = Vec::new();
                    for entry in data.range((ns, "")..)? {
                        let (k, _) = entry?;
                        let (n, key) = k.value();
                        if n != ns {
                            break;
                        }
                        keys.push(key.to_string());
                    }
                    for key in keys {
                        data.remove((ns, key.as_str()))?;
                    }
                    usage = Usage::default();
                    for (key, value) in entries {
                        let old = data
                            .insert((ns, key.as_str()), value.as_slice())?
                            .map(|g| g.value().len());
                        delta.add(Delta::of_write(key, old, Some(value.len())));
                    }
                }
            }
            usage = usage.apply(delta);
            usages.insert(ns, usage);
            after.push(usage);
        }
        for (ns, usage) in usages {
            if usage == Usage::default() {
                usage_table.remove(ns)?;
            } else {
                usage_table.insert(ns, (usage.keys, usage.bytes))?;
            }
        }
    }
    txn.commit().context("committing")?;
    Ok(after)
}
