//! The Redis `Store`, for cluster mode: every node sharing the Redis sees the
//! same storage, with the guarantees of the embedded store.
//!
//! - Layout and Lua scripts: `redis_lua.rs`. Leases: `redis_lease.rs`. What
//!   scripts see when Redis fails a call: `redis_failure.rs`.
//! - Reads (`get`, `scan`, `usage`) are synchronous: they block the calling
//!   thread on the link's runtime (a script's own thread; `block_in_place`
//!   first when called on a runtime worker, such as `/_engine`'s handler).
//!   Every call is bounded by `CALL_DEADLINE`, so a Redis that is down or
//!   silent gives a clear error within seconds, never a hang.
//! - Commits go to one writer task that applies them in submission order,
//!   each as one Lua script (atomic in Redis), and settles each once Redis
//!   answered: a turn's HTTP answers wait for that, as they wait for redb's
//!   fsync. Durability is then Redis's own (its `appendfsync` setting).
//! - A failed commit does not poison later ones here (unlike redb): a turn
//!   on a shared store reads Redis itself under its lease, never writes of
//!   an earlier turn still in flight, so no later commit is built on it.
//! - Nothing is cached across calls: when Redis comes back, the next call works.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::runtime::RuntimeFlavor;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::redis_failure::failure;
use super::redis_lease::{Leases, LEASE_TTL, LEASE_WAIT};
use super::redis_lua::{self, Keys, LEASE_LOST};
use super::store::{Change, Commit, Lease, Page, Pairs, Store, Unavailable, Usage};
use crate::cluster::Link;

/// The longest one read or commit may take, reconnecting included.
pub const CALL_DEADLINE: Duration = Duration::from_secs(3);

pub struct RedisStore {
    link: Arc<Link>,
    leases: Arc<Leases>,
    queue: UnboundedSender<Commit>,
    scan: redis::Script,
}

impl RedisStore {
    /// A store over `link`; its writer task runs on the link's runtime.
    pub fn new(link: Arc<Link>) -> RedisStore {
        RedisStore::with_lease_times(link, LEASE_TTL, LEASE_WAIT)
    }

    /// As `new`, with a lease TTL and a longest wait for a busy lease.
    pub fn with_lease_times(link: Arc<Link>, ttl: Duration, wait: Duration) -> RedisStore {
        let leases = Arc::new(Leases::new(super::admin::random_token(), ttl, wait));
        let (queue, commits) = tokio::sync::mpsc::unbounded_channel();
        link.runtime()
            .spawn(writer(link.clone(), leases.clone(), commits));
        RedisStore {
            link,
            leases,
            queue,
            scan: redis_lua::scan(),
        }
    }

    /// Runs `future` to completion from synchronous code, bounded by `deadline`.
    fn wait<T>(&self, deadline: Duration, future: impl Future<Output = Result<T>>) -> Result<T> {
        let link = &self.link;
        let bounded = async {
            match tokio::time::timeout(deadline, future).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Unavailable(format!(
                    "storage: Redis at {} did not answer within {} s",
                    link.display,
                    deadline.as_secs_f32()
                ))
                .into()),
            }
        };
        match tokio::runtime::Handle::try_current() {
            // A thread outside any runtime (an offline tool).
            Err(_) => link.block_on(bounded),
            // A runtime worker (a script's turn runs on one) or the blocking
            // pool: blocking there needs `block_in_place`, which hands the
            // worker's other tasks to another thread while this one waits;
            // only the multi-threaded runtime offers it.
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| link.block_on(bounded))
            }
            Ok(_) => Err(anyhow!(
                "storage: Redis cannot be waited for on a single-threaded runtime"
            )),
        }
    }

    /// A read: `command` on the shared connection, its failures made clear.
    fn read<T, F, Fut>(&self, command: F) -> Result<T>
    where
        F: FnOnce(redis::aio::ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let link = &self.link;
        self.wait(CALL_DEADLINE, async {
            link.run(command)
                .await
                .map_err(|e| Unavailable(failure(link, &e)).into())
        })
    }
}

impl Store for RedisStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let data = Keys::of(namespace).data;
        self.read(|mut con| async move {
            redis::cmd("HGET")
                .arg(&data)
                .arg(key)
                .query_async(&mut con)
                .await
        })
    }

    fn scan(&self, namespace: &str, page: Page<'_>) -> Result<Pairs> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let keys = Keys::of(namespace);
        let (min, max) = redis_lua::scan_bounds(page.prefix, page.after);
        let script = &self.scan;
        let (keys, min, max) = (&keys, &min, &max);
        let flat: Vec<Vec<u8>> = self.read(|mut con| async move {
            script
                .key(&keys.data)
                .key(&keys.keys)
                .arg(min.as_slice())
                .arg(max.as_slice())
                .arg(page.limit)
                .invoke_async(&mut con)
                .await
        })?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            let key = String::from_utf8(key)
                .map_err(|_| anyhow!("storage: a key in Redis is not UTF-8"))?;
            if key.starts_with(page.prefix) {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    fn usage(&self, namespace: &str) -> Result<Usage> {
        let usage = Keys::of(namespace).usage;
        let (keys, bytes): (Option<u64>, Option<u64>) = self.read(|mut con| async move {
            redis::cmd("HMGET")
                .arg(&usage)
                .arg("keys")
                .arg("bytes")
                .query_async(&mut con)
                .await
        })?;
        Ok(Usage {
            keys: keys.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
        })
    }

    fn submit(&self, commit: Commit) {
        if let Err(e) = self.queue.send(commit) {
            e.0.settle(Err("storage: the Redis writer has stopped".into()));
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn lease(&self, namespace: &str) -> Result<Option<Lease>> {
        let deadline = self.leases.wait + CALL_DEADLINE;
        let (leases, link) = (&self.leases, &self.link);
        self.wait(deadline, leases.acquire(link, namespace))
            .map(Some)
    }

    fn release_now(&self, namespace: &str, token: String) -> Result<()> {
        let (leases, link) = (&self.leases, &self.link);
        self.wait(CALL_DEADLINE, async {
            leases.release(link, namespace, token).await;
            Ok(())
        })
    }

    fn release(&self, namespace: &str, token: String) {
        let (leases, link, namespace) = (
            self.leases.clone(),
            self.link.clone(),
            namespace.to_string(),
        );
        self.link.runtime().spawn(async move {
            let released = tokio::time::timeout(
                CALL_DEADLINE,
                leases.release(&link, &namespace, token.clone()),
            )
            .await;
            if released.is_err() {
                leases.abandoned(&namespace, token);
            }
        });
    }
}

/// Applies commits one at a time, in the order they were submitted.
async fn writer(link: Arc<Link>, leases: Arc<Leases>, mut commits: UnboundedReceiver<Commit>) {
    let (write, replace) = (redis_lua::write(), redis_lua::replace());
    while let Some(commit) = commits.recv().await {
        let script = match &commit.change {
            Change::Barrier => {
                // Everything submitted before it has been answered.
                let usage = commit.shared.lock().usage;
                commit.settle(Ok(usage));
                continue;
            }
            Change::Writes(_) => &write,
            Change::Replace(_) => &replace,
        };
        let Some(token) = commit.lease.clone() else {
            commit.settle(Err(
                "storage: internal error: a commit without its namespace's lease".into(),
            ));
            continue;
        };
        let outcome = apply(&link, script, &commit.namespace, &commit.change, &token).await;
        match outcome {
            Ok(usage) => commit.settle(Ok(usage)),
            Err(Failure::LeaseLost) => {
                let message = format!(
                    "storage: script {}'s turn lost its lease before committing (it ran longer \
                     than {} s, or Redis lost the lease); none of its writes were applied",
                    commit.namespace,
                    leases.ttl.as_secs()
                );
                tracing::error!("{message}");
                commit.settle(Err(message));
            }
            Err(Failure::Other(message)) => {
                // Whether the script ran is unknown: its lease may still hold.
                leases.abandoned(&commit.namespace, token);
                tracing::error!(script = %commit.namespace, "storage commit failed: {message}");
                commit.settle(Err(message));
            }
        }
    }
}

enum Failure {
    LeaseLost,
    Other(String),
}

/// Runs a commit's script; the namespace's usage after it. (It borrows the
/// commit's parts, not the commit: its `ack` is not `Sync`.)
async fn apply(
    link: &Link,
    script: &redis::Script,
    namespace: &str,
    change: &Change,
    token: &str,
) -> Result<Usage, Failure> {
    let keys = Keys::of(namespace);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.data)
        .key(&keys.keys)
        .key(&keys.usage)
        .key(&keys.lease)
        .arg(token);
    match change {
        Change::Writes(writes) => {
            for (key, value) in writes {
                invocation.arg(key);
                match value {
                    Some(value) => invocation.arg("1").arg(value.as_slice()),
                    None => invocation.arg("0").arg(""),
                };
            }
        }
        Change::Replace(entries) => {
            // Distinct keys, the last one winning, as `from_lines` gives them.
            let distinct: std::collections::BTreeMap<&str, &[u8]> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            for (key, value) in distinct {
                invocation.arg(key).arg(value);
            }
        }
        Change::Barrier => {}
    }
    let invocation = &invocation;
    let run = link.run(|mut con| async move { invocation.invoke_async(&mut con).await });
    let answer: redis::RedisResult<Vec<i64>> = match tokio::time::timeout(CALL_DEADLINE, run).await
    {
        Ok(answer) => answer,
        Err(_) => {
            return Err(Failure::Other(format!(
                "storage: Redis at {} did not answer a commit within {} s",
                link.display,
                CALL_DEADLINE.as_secs()
            )))
        }
    };
    match answer {
        Ok(usage) => match usage.as_slice() {
            [keys, bytes] => Ok(Usage {
                keys: u64::try_from(*keys).unwrap_or(0),
                bytes: u64::try_from(*bytes).unwrap_or(0),
            }),
            _ => Err(Failure::Other(format!(
                "storage: Redis at {} answered a commit with {usage:?}",
                link.display
            ))),
        },
        Err(e) if e.to_string().contains(LEASE_LOST) => Err(Failure::LeaseLost),
        Err(e) => Err(Failure::Other(failure(link, &e))),
    }
}
