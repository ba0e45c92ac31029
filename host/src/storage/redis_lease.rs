//! Per-namespace leases in Redis: what serialises one script's turns across
//! every node sharing the Redis.
//!
//! A turn takes `aiwe:{NS}:lease` (`SET token PX ttl` when free) at its first
//! storage call and holds it until its commit script — which checks the token
//! and applies the writes only if it still holds — deletes it. So a turn that
//! reads, computes and writes (`storage.increment`) sees no other turn's
//! writes in between, whichever node runs it. Taking a busy lease is retried
//! with a short, jittered, growing backoff up to a bounded wait, then fails
//! with a clear error.
//!
//! The TTL bounds how long a crashed node can block a namespace. A turn that
//! runs longer than it loses the lease, and its commit is refused (never
//! applied over another turn's writes). Tokens are unique per node and turn.
//! When this node cannot tell whether a token of its own still holds a lease
//! (a release or commit whose answer was lost), it remembers the token as
//! dead, and its next acquire of that namespace may take the lease over from
//! it instead of waiting for the TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::redis_failure;
use super::redis_lua::{self, Keys};
use super::store::{Lease, Unavailable, Usage};

/// How long a lease lives if its turn never gives it back (the node died).
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a turn waits for a busy lease before its storage call throws.
pub const LEASE_WAIT: Duration = Duration::from_secs(5);
/// The first and the longest pause between two tries.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(50);

pub struct Leases {
    /// Random per process: tokens of two nodes never collide.
    node: String,
    next: AtomicU64,
    pub ttl: Duration,
    pub wait: Duration,
    /// Per namespace, a token of this node that may still hold its lease but
    /// whose turn is over.
    dead: Mutex<HashMap<String, String>>,
    acquire: redis::Script,
    release: redis::Script,
}

impl Leases {
    pub fn new(node: String, ttl: Duration, wait: Duration) -> Leases {
        Leases {
            node,
            next: AtomicU64::new(1),
            ttl,
            wait,
            dead: Mutex::new(HashMap::new()),
            acquire: redis_lua::acquire(),
            release: redis_lua::release(),
        }
    }

    fn token(&self) -> String {
        format!(
            "{}:{}",
            self.node,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn dead(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.dead.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that `token` may still hold `namespace`'s lease, though its turn is over.
    pub fn abandoned(&self, namespace: &str, token: String) {
        self.dead().insert(namespace.to_string(), token);
    }

    /// Takes `namespace`'s lease, retrying while another turn holds it; a
    /// Redis that cannot be reached fails at once.
    pub async fn acquire(&self, link: &crate::cluster::Link, namespace: &str) -> Result<Lease> {
        let keys = Keys::of(namespace);
        let token = self.token();
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut seed = jitter_seed(&token);
        loop {
            let dead = self.dead().get(namespace).cloned().unwrap_or_default();
            let (script, keys, token_ref, dead_ref) = (&self.acquire, &keys, &token, &dead);
            let result: redis::RedisResult<Vec<i64>> = link
                .run(|mut con| async move {
                    script
                        .key(&keys.lease)
                        .key(&keys.usage)
                        .arg(token_ref)
                        .arg(ttl_ms)
                        .arg(dead_ref)
                        .invoke_async(&mut con)
                        .await
                })
                .await;
            let answer = match result {
                Ok(answer) => answer,
                Err(e) => {
                    // The SET may have happened with the answer lost.
                    self.abandoned(namespace, token);
                    return Err(Unavailable(redis_failure::unreachable(link, &e)).into());
                }
            };
            if let [1, keys_held, bytes] = answer.as_slice() {
                if !dead.is_empty() {
                    let mut known = self.dead();
                    if known.get(namespace) == Some(&dead) {
                        known.remove(namespace);
                    }
                }
                return Ok(Lease {
                    token,
                    usage: Usage {
                        keys: u64::try_from(*keys_held).unwrap_or(0),
                        bytes: u64::try_from(*bytes).unwrap_or(0),
                    },
                });
            }
            if started.elapsed() >= self.wait {
                return Err(Unavailable(format!(
                    "storage: script {namespace}'s data stayed busy for {} s: another turn \
                     (on this or another node) held its lease",
                    self.wait.as_secs_f32()
                ))
                .into());
            }
            // Jitter keeps contending nodes from retrying in lockstep.
            seed = xorshift(seed);
            let jittered = pause.mul_f64(0.5 + (seed % 1000) as f64 / 1000.0);
            tokio::time::sleep(jittered).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Deletes the lease if `token` still holds it.
    pub async fn release(&self, link: &crate::cluster::Link, namespace: &str, token: String) {
        let keys = Keys::of(namespace);
        let (script, lease, token_ref) = (&self.release, &keys.lease, &token);
        let result: redis::RedisResult<i64> = link
            .run(|mut con| async move {
                script
                    .key(lease)
                    .arg(token_ref)
                    .invoke_async(&mut con)
                    .await
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(script = namespace, "could not release a storage lease: {e}");
            self.abandoned(namespace, token);
        }
    }
}

fn jitter_seed(token: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(token.as_bytes());
    h.finish() | 1
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
