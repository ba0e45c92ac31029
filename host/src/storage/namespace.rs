//! One script's namespace as its turns see it: the turn's own write set, the
//! writes of earlier turns that are committed but not yet durable (the
//! overlay), and the backend underneath.
//!
//! Ordering, in one place:
//! - Turns of a namespace never overlap: `begin` takes the turn lock, held
//!   until the turn commits or is discarded (two versions of a script — the
//!   old one still draining, the new one loading — share the namespace).
//! - A committed turn's writes move into the overlay tagged with a sequence
//!   number, and are submitted to the backend. Later turns read through the
//!   overlay, so they see them at once, without waiting for the fsync.
//! - Whoever waits on a turn (its HTTP responses) waits for the backend's
//!   acknowledgement. A turn that wrote nothing but may have read the overlay
//!   waits behind a `Barrier`, so nothing not yet durable is ever shown.
//! - Overlay entries leave once the backend says their commit is durable.
//! - A failed commit poisons its epoch: every later commit of that epoch was
//!   built on writes that never happened, so the backend refuses them too; the
//!   next turn drops the overlay and starts a new epoch from what is on disk.
//! - On a shared backend (Redis, several nodes) a turn also takes the
//!   namespace's lease at its first storage call (`enter`), so turns of one
//!   script are serialised across nodes too. Holding it, the turn reads the
//!   backend itself: the overlay is dropped (every earlier commit of this node
//!   released the lease, so it is already applied, and another node may have
//!   written since), and usage is what the backend said when the lease was
//!   granted. The commit gives the lease back; a turn that writes nothing, or
//!   is discarded, releases it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Instant;

use super::rules::{check_key, StorageError, StorageLimits};
use super::store::{Ack, Change, Commit, Delta, Lease, Page, Shared, Store, Unavailable, Usage};
use crate::metrics::StorageMetrics;

/// A value, or `None` for a deletion.
type Value = Option<Arc<[u8]>>;

pub struct Namespace {
    name: Arc<str>,
    store: Arc<dyn Store>,
    limits: StorageLimits,
    shared: Arc<Shared>,
    /// Async: a turn holds it across its guest call, which yields its worker.
    turn_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Its operations, commits and failures (`metrics.rs`).
    pub metrics: StorageMetrics,
}

#[derive(Default)]
struct State {
    epoch: u64,
    last_seq: u64,
    /// Committed, not yet durable: key -> (seq, value or deletion).
    overlay: BTreeMap<String, (u64, Value)>,
    /// Usage changes of commits not yet durable.
    in_flight: Vec<(u64, Delta)>,
    /// The running turn's writes.
    writes: BTreeMap<String, Value>,
    turn_delta: Delta,
    /// The guest said the turn failed.
    discard: bool,
    /// The turn has asked the backend for a lease (see `enter`).
    entered: bool,
    /// The lease the running turn holds, on a shared backend.
    lease: Option<Lease>,
}

/// A running turn; it holds the namespace's turn lock until it ends.
pub struct Turn<'a> {
    namespace: &'a Namespace,
    _lock: tokio::sync::MutexGuard<'a, ()>,
}

impl Namespace {
    pub(super) fn new(
        name: Arc<str>,
        store: Arc<dyn Store>,
        limits: StorageLimits,
        usage: Usage,
        metrics: StorageMetrics,
    ) -> Namespace {
        Namespace {
            name,
            store,
            limits,
            shared: Shared::new(usage),
            turn_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                epoch: 1,
                ..State::default()
            }),
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Durable usage, as the backend last reported it.
    pub fn usage(&self) -> Usage {
        self.shared.lock().usage
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a turn: waits for any other turn of this namespace to end, then
    /// forgets what has become durable (or failed) since the last one.
    pub async fn begin(&self) -> Turn<'_> {
        let lock = self.turn_lock.lock().await;
        self.started(lock)
    }

    /// `begin` for a thread outside the runtime (`replace`, tests).
    pub fn begin_blocking(&self) -> Turn<'_> {
        self.started(self.turn_lock.blocking_lock())
    }

    fn started<'a>(&'a self, lock: tokio::sync::MutexGuard<'a, ()>) -> Turn<'a> {
        let mut state = self.state();
        self.sync(&mut state);
        state.writes.clear();
        state.turn_delta = Delta::default();
        state.discard = false;
        state.entered = false;
        let stale = state.lease.take();
        drop(state);
        if let Some(lease) = stale {
            self.store.release(&self.name, lease.token);
        }
        Turn {
            namespace: self,
            _lock: lock,
        }
    }

    fn sync(&self, state: &mut State) {
        let (durable_seq, poisoned) = {
            let durable = self.shared.lock();
            (durable.seq, durable.poisoned_epoch)
        };
        if poisoned >= state.epoch {
            tracing::warn!(script = %self.name, "a storage commit failed; later turns start again from what is on disk");
            state.epoch = poisoned + 1;
            state.overlay.clear();
            state.in_flight.clear();
        } else {
            state.overlay.retain(|_, (seq, _)| *seq > durable_seq);
            state.in_flight.retain(|(seq, _)| *seq > durable_seq);
        }
    }

    /// Takes the namespace's lease if the backend hands out leases and the
    /// turn holds none yet: called first by every storage call of a turn.
    fn enter(&self) -> Result<(), StorageError> {
        if self.state().entered {
            return Ok(());
        }
        let lease = self.store.lease(&self.name).map_err(|e| self.failed(e))?;
        let mut state = self.state();
        state.entered = true;
        if let Some(lease) = lease {
            // Everything this node committed before is applied (it gave the
            // lease back), and other nodes may have written since: read the
            // backend, not the overlay.
            state.overlay.clear();
            state.in_flight.clear();
            self.shared.lock().usage = lease.usage;
            state.lease = Some(lease);
        }
        Ok(())
    }

    /// Usage counting `turn` and every commit not yet durable.
    fn projected(&self, state: &State, turn: Delta) -> Usage {
        if let Some(lease) = &state.lease {
            return lease.usage.apply(turn);
        }
        let durable = self.shared.lock();
        let mut delta = turn;
        for (seq, d) in &state.in_flight {
            if *seq > durable.seq {
                delta.add(*d);
            }
        }
        durable.usage.apply(delta)
    }

    fn lookup(&self, state: &State, key: &str) -> Result<Option<Arc<[u8]>>, StorageError> {
        if let Some(value) = state.writes.get(key) {
            return Ok(value.clone());
        }
        if let Some((_, value)) = state.overlay.get(key) {
            return Ok(value.clone());
        }
        self.store
            .get(&self.name, key)
            .map(|v| v.map(Arc::from))
            .map_err(|e| self.failed(e))
    }

    fn failed(&self, e: anyhow::Error) -> StorageError {
        if let Some(Unavailable(message)) = e.downcast_ref::<Unavailable>() {
            tracing::warn!(script = %self.name, "{message}");
            return StorageError::Failed(message.clone());
        }
        tracing::error!(script = %self.name, "storage read failed: {e:#}");
        StorageError::Failed(format!("storage read failed: {e:#}"))
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        check_key(key)?;
        self.enter()?;
        let state = self.state();
        Ok(self.lookup(&state, key)?.map(text))
    }

    pub fn set(&self, key: &str, json: String) -> Result<(), StorageError> {
        check_key(key)?;
        if json.len() > self.limits.max_value_bytes {
            return Err(StorageError::Range(format!(
                "storage.set: the value is {} bytes serialised; the most is {} (--storage-max-value-bytes)",
                json.len(),
                self.limits.max_value_bytes
            )));
        }
        self.write(key, Some(Arc::from(json.into_bytes())))
            .map(|_| ())
    }

    pub fn remove(&self, key: &str) -> Result<bool, StorageError> {
        check_key(key)?;
        self.write(key, None)
    }

    /// Records a write in the turn; true when the key held a value before.
    fn write(&self, key: &str, value: Option<Arc<[u8]>>) -> Result<bool, StorageError> {
        self.enter()?;
        let mut state = self.state();
        let old = self.lookup(&state, key)?;
        let delta = Delta::of_write(
            key,
            old.as_ref().map(|v| v.len()),
            value.as_ref().map(|v| v.len()),
        );
        if delta.bytes > 0 {
            let mut turn = state.turn_delta;
            turn.add(delta);
            let projected = self.projected(&state, turn);
            if projected.bytes > self.limits.quota_bytes {
                return Err(StorageError::Failed(format!(
                    "storage quota of {} exceeded by script {}: it would use {} bytes (--storage-quota-mb)",
                    quota_text(self.limits.quota_bytes),
                    self.name,
                    projected.bytes
                )));
            }
        }
        state.turn_delta.add(delta);
        state.writes.insert(key.to_string(), value);
        Ok(old.is_some())
    }

    /// Up to `limit` pairs in key order, merging the turn, the overlay and the backend.
    pub fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.enter()?;
        let state = self.state();
        let page = Page {
            prefix,
            after,
            limit,
        };
        // The overlay, newest last: the turn's writes override earlier turns'.
        let mut overlay: BTreeMap<&str, Option<&Arc<[u8]>>> = BTreeMap::new();
        for (k, (_, v)) in state.overlay.iter().filter(|(k, _)| page.holds(k)) {
            overlay.insert(k, v.as_ref());
        }
        for (k, v) in state.writes.iter().filter(|(k, _)| page.holds(k)) {
            overlay.insert(k, v.as_ref());
        }
        // Each overlay entry hides at most one backend entry: fetching that many
        // more still leaves `limit` below the last key fetched.
        let fetch = limit.saturating_add(overlay.len());
        let base = self
            .store
            .scan(
                &self.name,
                Page {
                    limit: fetch,
                    ..page
                },
            )
            .map_err(|e| self.failed(e))?;
        let bound = (base.len() >= fetch)
            .then(|| base.last().map(|(k, _)| k.clone()))
            .flatten();
        let mut merged: BTreeMap<String, Arc<[u8]>> =
            base.into_iter().map(|(k, v)| (k, Arc::from(v))).collect();
        for (k, v) in overlay {
            if bound.as_deref().is_some_and(|b| k > b) {
                continue;
            }
            match v {
                Some(v) => merged.insert(k.to_string(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged
            .into_iter()
            .take(limit)
            .map(|(k, v)| (k, text(v)))
            .collect())
    }

    /// Deletes every key of the namespace in this turn.
    pub fn clear(&self) -> Result<(), StorageError> {
        let mut after: Option<String> = None;
        loop {
            let page = self.scan("", after.as_deref(), 1000)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (key, _) in &page {
                self.write(key, None)?;
            }
        }
    }

    /// Marks the running turn failed (the guest saw its callback throw).
    pub fn discard_turn(&self) {
        self.state().discard = true;
    }

    /// Replaces every key with `entries` atomically and durably, between turns.
    pub fn replace(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        // The turn lock is held until the restore is durable: no turn may read
        // the old data from disk once the overlay is gone.
        let turn = self.begin_blocking();
        self.enter().map_err(StorageError::into_message)?;
        let (tx, rx) = std::sync::mpsc::channel();
        turn.submit(
            Change::Replace(entries),
            Box::new(move |r| drop(tx.send(r))),
        );
        let outcome = rx
            .recv()
            .unwrap_or_else(|_| Err("the storage writer has stopped".into()));
        drop(turn);
        outcome
    }
}

impl Turn<'_> {
    /// True when the guest said this turn failed.
    pub fn discarded_by_guest(&self) -> bool {
        self.namespace.state().discard
    }

    /// Drops the turn's writes; true when there were any.
    pub fn discard(self) -> bool {
        let mut state = self.namespace.state();
        let had = !state.writes.is_empty();
        state.writes.clear();
        state.turn_delta = Delta::default();
        drop(state);
        self.release();
        if had {
            self.namespace.metrics.discarded();
        }
        had
    }

    /// Commits the turn's writes; `ack` runs once they (and every earlier
    /// commit they may have read) are durable, or failed.
    pub fn commit(self, ack: Ack) {
        let ns = self.namespace;
        let mut state = ns.state();
        if state.writes.is_empty() {
            drop(state);
            // Nothing to apply: give the lease back now. What the turn read
            // under it came from the backend, so nothing more to wait for.
            self.release();
            let state = ns.state();
            if state.overlay.is_empty() && state.in_flight.is_empty() {
                drop(state);
                ack(Ok(()));
                return;
            }
            drop(state);
            self.submit(Change::Barrier, ack);
            return;
        }
        let writes = std::mem::take(&mut state.writes);
        drop(state);
        let metrics = ns.metrics.clone();
        let started = Instant::now();
        let ack: Ack = Box::new(move |outcome| {
            metrics.commit(outcome.is_ok(), started.elapsed());
            ack(outcome)
        });
        let change = Change::Writes(
            writes
                .into_iter()
                .map(|(k, v)| (k, v.map(|v| v.to_vec())))
                .collect(),
        );
        self.submit(change, ack);
    }

    /// Gives back the turn's lease, if it holds one.
    fn release(&self) {
        let lease = self.namespace.state().lease.take();
        if let Some(lease) = lease {
            self.namespace
                .store
                .release(&self.namespace.name, lease.token);
        }
    }

    fn submit(&self, change: Change, ack: Ack) {
        let ns = self.namespace;
        let mut state = ns.state();
        state.last_seq += 1;
        let seq = state.last_seq;
        match &change {
            Change::Writes(writes) => {
                for (k, v) in writes {
                    state.overlay.insert(
                        k.clone(),
                        (seq, v.as_ref().map(|v| Arc::from(v.as_slice()))),
                    );
                }
                let delta = std::mem::take(&mut state.turn_delta);
                state.in_flight.push((seq, delta));
            }
            // A restore replaces everything: earlier overlay entries must not
            // shadow it. They are all older, so they are durable when it is.
            Change::Replace(_) => state.overlay.clear(),
            Change::Barrier => {}
        }
        let commit = Commit {
            namespace: ns.name.clone(),
            shared: ns.shared.clone(),
            epoch: state.epoch,
            seq,
            change,
            ack,
            lease: state.lease.take().map(|lease| lease.token),
        };
        drop(state);
        ns.store.submit(commit);
    }
}

impl Drop for Turn<'_> {
    /// A turn that ends without a commit or discard (a panic unwinding)
    /// still gives its lease back, so other nodes need not wait for it to expire.
    fn drop(&mut self) {
        self.release();
    }
}

/// "100 MB", or the bytes when it is not a whole number of MiB.
fn quota_text(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn text(bytes: Arc<[u8]>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use anyhow::Result;

    use super::super::rules::StorageLimits;
    use super::super::store::{Change, Commit, Page, Pairs, Store, Usage};
    use super::Namespace;
    use crate::metrics::StorageMetrics;

    /// A store whose commits wait in a queue until the test settles them.
    #[derive(Default)]
    struct Manual {
        data: Mutex<BTreeMap<String, Vec<u8>>>,
        queue: Mutex<Vec<Commit>>,
    }

    impl Store for Manual {
        fn get(&self, _: &str, key: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.data.lock().unwrap().get(key).cloned())
        }

        fn scan(&self, _: &str, page: Page<'_>) -> Result<Pairs> {
            Ok(self
                .data
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| page.holds(k))
                .take(page.limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }

        fn usage(&self, _: &str) -> Result<Usage> {
            let data = self.data.lock().unwrap();
            Ok(Usage {
                keys: data.len() as u64,
                bytes: data.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
            })
        }

        fn submit(&self, commit: Commit) {
            self.queue.lock().unwrap().push(commit);
        }
    }

    impl Manual {
        /// Settles the oldest queued commit: written, or failed as a full disk would.
        fn settle_next(&self, fail: bool) {
            let commit = self.queue.lock().unwrap().remove(0);
            if commit.poisoned() {
                commit.settle(Err("refused".into()));
            } else if fail {
                commit.settle(Err("disk full".into()));
            } else {
                if let Change::Writes(writes) = &commit.change {
                    let mut data = self.data.lock().unwrap();
                    for (k, v) in writes {
                        match v {
                            Some(v) => data.insert(k.clone(), v.clone()),
                            None => data.remove(k),
                        };
                    }
                }
                let usage = self.usage("").unwrap();
                commit.settle(Ok(usage));
            }
        }

        fn queued(&self) -> usize {
            self.queue.lock().unwrap().len()
        }
    }

    type Outcome = Arc<Mutex<Option<Result<(), String>>>>;

    fn setup() -> (Arc<Manual>, Namespace) {
        let store = Arc::new(Manual::default());
        let ns = Namespace::new(
            Arc::from("t"),
            store.clone(),
            StorageLimits::default(),
            Usage::default(),
            StorageMetrics::detached(),
        );
        (store, ns)
    }

    /// Runs `f` as one turn and commits it; the outcome fills in once acknowledged.
    fn turn(ns: &Namespace, f: impl FnOnce(&Namespace)) -> Outcome {
        let outcome: Outcome = Arc::default();
        let t = ns.begin_blocking();
        f(ns);
        let slot = outcome.clone();
        t.commit(Box::new(move |r| *slot.lock().unwrap() = Some(r)));
        outcome
    }

    #[test]
    fn later_turns_read_through_writes_not_yet_durable_and_wait_for_them() {
        let (store, ns) = setup();
        let first = turn(&ns, |ns| ns.set("a", "1".into()).unwrap());
        assert!(
            first.lock().unwrap().is_none(),
            "acknowledged before durable"
        );
        let mut seen = None;
        let second = turn(&ns, |ns| seen = ns.get("a").unwrap());
        assert_eq!(seen.as_deref(), Some("1"));
        // The read-only turn waits behind a barrier for the write it saw.
        assert_eq!(store.queued(), 2);
        assert!(second.lock().unwrap().is_none());
        store.settle_next(false);
        store.settle_next(false);
        assert_eq!(*first.lock().unwrap(), Some(Ok(())));
        assert_eq!(*second.lock().unwrap(), Some(Ok(())));
        // Nothing pending: a read-only turn is acknowledged at once.
        let third = turn(&ns, |ns| {
            assert_eq!(ns.get("a").unwrap().as_deref(), Some("1"))
        });
        assert_eq!(*third.lock().unwrap(), Some(Ok(())));
        assert_eq!(ns.usage(), Usage { keys: 1, bytes: 2 });
    }

    #[test]
    fn a_failed_commit_fails_the_turns_built_on_it_and_later_turns_start_from_disk() {
        let (store, ns) = setup();
        let first = turn(&ns, |ns| ns.set("a", "1".into()).unwrap());
        let second = turn(&ns, |ns| {
            assert_eq!(ns.get("a").unwrap().as_deref(), Some("1"));
            ns.set("b", "2".into()).unwrap();
        });
        store.settle_next(true);
        store.settle_next(false);
        assert_eq!(*first.lock().unwrap(), Some(Err("disk full".into())));
        assert_eq!(*second.lock().unwrap(), Some(Err("refused".into())));
        let third = turn(&ns, |ns| {
            assert_eq!(ns.get("a").unwrap(), None);
            assert_eq!(ns.get("b").unwrap(), None);
            ns.set("c", "3".into()).unwrap();
        });
        store.settle_next(false);
        assert_eq!(*third.lock().unwrap(), Some(Ok(())));
        assert_eq!(store.data.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_discarded_turn_leaves_nothing() {
        let (store, ns) = setup();
        let t = ns.begin_blocking();
        ns.set("x", "1".into()).unwrap();
        assert_eq!(ns.get("x").unwrap().as_deref(), Some("1"));
        assert!(t.discard());
        assert_eq!(store.queued(), 0);
        let _t = ns.begin_blocking();
        assert_eq!(ns.get("x").unwrap(), None);
    }

    #[test]
    fn scan_merges_the_turn_the_overlay_and_the_store_in_key_order() {
        let (store, ns) = setup();
        for k in ["b", "d", "f"] {
            store.data.lock().unwrap().insert(k.into(), b"0".to_vec());
        }
        let _pending = turn(&ns, |ns| {
            ns.remove("b").unwrap();
            ns.set("c", "1".into()).unwrap();
        });
        let _t = ns.begin_blocking();
        ns.set("a", "2".into()).unwrap();
        ns.remove("d").unwrap();
        let keys = |after: Option<&str>, limit| -> Vec<String> {
            ns.scan("", after, limit)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(keys(None, 10), ["a", "c", "f"]);
        assert_eq!(keys(None, 2), ["a", "c"]);
        assert_eq!(keys(Some("c"), 10), ["f"]);
        assert_eq!(keys(None, 0), Vec::<String>::new());
    }

    #[test]
    fn the_quota_counts_writes_not_yet_durable() {
        let store = Arc::new(Manual::default());
        let limits = StorageLimits {
            max_value_bytes: 100,
            quota_bytes: 25,
        };
        let ns = Namespace::new(
            Arc::from("q"),
            store,
            limits,
            Usage::default(),
            StorageMetrics::detached(),
        );
        let _first = turn(&ns, |ns| ns.set("a", "x".repeat(10)).unwrap());
        let t = ns.begin_blocking();
        ns.set("b", "y".repeat(10)).unwrap(); // 11 + 11 bytes
        let err = ns.set("c", "z".repeat(10)).unwrap_err();
        assert!(format!("{err:?}").contains("quota of 25 bytes exceeded by script q"));
        assert!(
            ns.set("a", "1".into()).is_ok(),
            "shrinking is always allowed"
        );
        t.discard();
    }
}
