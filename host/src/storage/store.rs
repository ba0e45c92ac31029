//! The backend seam: what a durable key-value store must offer the engine.
//! `redb_store.rs` is the embedded implementation; a networked one (Redis)
//! plugs in behind the same trait. Nothing above it — the per-turn overlay,
//! the WIT host functions — knows which one runs.
//!
//! Reads are synchronous. Writes are *submitted* as a `Commit` (one finished
//! turn of one script) and acknowledged later, once durable, so a backend can
//! write many turns with one fsync (group commit). A backend must apply the
//! commits of one namespace in the order they were submitted, and settle each
//! with `Commit::settle`.
//!
//! A backend other processes write too (Redis in cluster mode) says so with
//! `shared` and hands out per-namespace leases (`lease`/`release`): a turn
//! takes its namespace's lease at its first storage call and gives it back
//! with its commit, so turns of one script are serialised across nodes, not
//! only within one process. The embedded backend needs none (`Ok(None)`).

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;

/// Keys and bytes (keys plus values) a namespace holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub keys: u64,
    pub bytes: u64,
}

/// A change in `Usage`, which may be negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub keys: i64,
    pub bytes: i64,
}

impl Delta {
    pub fn add(&mut self, other: Delta) {
        self.keys += other.keys;
        self.bytes += other.bytes;
    }

    /// The delta of writing `key` = a value of `new` bytes over one of `old` bytes.
    pub fn of_write(key: &str, old: Option<usize>, new: Option<usize>) -> Delta {
        let size = |len: Option<usize>| len.map_or(0, |n| (key.len() + n) as i64);
        Delta {
            keys: i64::from(new.is_some()) - i64::from(old.is_some()),
            bytes: size(new) - size(old),
        }
    }
}

impl Usage {
    pub fn apply(self, delta: Delta) -> Usage {
        Usage {
            keys: self.keys.saturating_add_signed(delta.keys),
            bytes: self.bytes.saturating_add_signed(delta.bytes),
        }
    }
}

/// What one commit changes in its namespace.
pub enum Change {
    /// Puts (`Some`) and deletes (`None`), in key order.
    Writes(Vec<(String, Option<Vec<u8>>)>),
    /// Replaces every key of the namespace (a restore).
    Replace(Vec<(String, Vec<u8>)>),
    /// Nothing: acknowledged once every earlier commit of the namespace is.
    Barrier,
}

/// Called once a commit is durable (`Ok`) or failed (`Err`, a one-line reason).
pub type Ack = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The durable state of a namespace as its backend last reported it, shared
/// between the namespace (which reads it) and the backend (which writes it).
#[derive(Debug, Default)]
pub struct Durable {
    /// The last commit that is on disk.
    pub seq: u64,
    /// Usage after that commit.
    pub usage: Usage,
    /// Commits of this epoch or before are refused: one of them failed, and
    /// later ones may have been built on its writes.
    pub poisoned_epoch: u64,
}

#[derive(Debug, Default)]
pub struct Shared(Mutex<Durable>);

impl Shared {
    pub fn new(usage: Usage) -> Arc<Shared> {
        Arc::new(Shared(Mutex::new(Durable {
            usage,
            ..Durable::default()
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Durable> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One finished turn's writes for one namespace. A backend applies `change`
/// and reports through `settle`; the epoch, sequence number and ack are the
/// namespace's own (`poisoned`, `settle`).
pub struct Commit {
    pub namespace: Arc<str>,
    pub shared: Arc<Shared>,
    pub change: Change,
    pub(super) epoch: u64,
    pub(super) seq: u64,
    pub(super) ack: Ack,
    /// The token of the lease the turn held (shared backends only): the
    /// commit applies only while it still holds, and gives it back.
    pub lease: Option<String>,
}

/// A namespace's lease on a shared backend, held by one turn.
#[derive(Clone, Debug)]
pub struct Lease {
    pub token: String,
    /// The namespace's usage when the lease was taken: exact for the whole
    /// turn, since nothing else writes the namespace meanwhile.
    pub usage: Usage,
}

/// A failure whose message already says what failed ("storage: Redis at …
/// is unreachable: …"): scripts see it as it is, not wrapped again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl Commit {
    /// True when an earlier commit of this epoch failed: this one must fail too.
    pub fn poisoned(&self) -> bool {
        self.shared.lock().poisoned_epoch >= self.epoch
    }

    /// Records the outcome (on success, `usage` is the namespace's usage after
    /// it) and tells whoever waits.
    pub fn settle(self, outcome: Result<Usage, String>) {
        {
            let mut durable = self.shared.lock();
            match &outcome {
                Ok(usage) => {
                    durable.seq = durable.seq.max(self.seq);
                    durable.usage = *usage;
                }
                Err(_) => durable.poisoned_epoch = durable.poisoned_epoch.max(self.epoch),
            }
        }
        (self.ack)(outcome.map(|_| ()));
    }
}

/// Which pairs of a namespace a scan returns: keys starting with `prefix`
/// and strictly after `after`, at most `limit` of them, in key (UTF-8 byte)
/// order.
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    pub prefix: &'a str,
    pub after: Option<&'a str>,
    pub limit: usize,
}

impl Page<'_> {
    /// True when `key` belongs to the page (its limit aside).
    pub fn holds(&self, key: &str) -> bool {
        key.starts_with(self.prefix) && self.after.is_none_or(|a| key > a)
    }
}

/// Keys and their values' bytes, in key order.
pub type Pairs = Vec<(String, Vec<u8>)>;

/// A durable key-value store holding every script's namespace.
pub trait Store: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// The pairs of `page`.
    fn scan(&self, namespace: &str, page: Page<'_>) -> Result<Pairs>;

    /// The namespace's durable usage.
    fn usage(&self, namespace: &str) -> Result<Usage>;

    /// Queues a commit; it is settled once durable or failed.
    fn submit(&self, commit: Commit);

    /// True when other processes write this store too, so a namespace's
    /// durable state may change between two of its turns.
    fn shared(&self) -> bool {
        false
    }

    /// Takes the namespace's lease, waiting (bounded) while another turn holds
    /// it. `None`: this backend needs none (only one process writes it).
    fn lease(&self, _namespace: &str) -> Result<Option<Lease>> {
        Ok(None)
    }

    /// Gives back a lease whose turn commits nothing under it, in the
    /// background: the turn's answers need not wait for it.
    fn release(&self, _namespace: &str, _token: String) {}

    /// Gives back a lease and waits until it is given back (for a process
    /// that may exit right after, such as `aiwebengine storage dump`).
    fn release_now(&self, namespace: &str, token: String) -> Result<()> {
        self.release(namespace, token);
        Ok(())
    }
}
