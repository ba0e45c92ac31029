//! The connection to Redis that every part of cluster mode shares.
//!
//! Commands go over one multiplexed connection (`ConnectionManager`): it is
//! made lazily and re-made after a failure, so a Redis that is down when the
//! server starts, or goes away later, never stops the server; calls made
//! meanwhile fail at once with a clear error. `up` follows what the last
//! command or health probe saw, for `/_engine` and for failing fast.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one command may take before it counts as failed.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Link {
    client: redis::Client,
    manager: ConnectionManager,
    runtime: tokio::runtime::Handle,
    up: AtomicBool,
    /// When "Redis is unreachable" was last logged while it stays so.
    warned: std::sync::Mutex<Option<std::time::Instant>>,
    /// The URL without its password, for logs and `/_engine`.
    pub display: String,
}

/// How often a Redis that stays unreachable is logged again.
const WARN_EVERY: Duration = Duration::from_secs(30);

impl Link {
    /// A link to the Redis at `url` (`redis://`, `rediss://`, with an optional
    /// password and `/DB`). Does not connect: call from inside the runtime.
    pub fn new(url: &str) -> Result<Arc<Link>> {
        let client = redis::Client::open(url)
            .with_context(|| format!("--redis {:?} is not a Redis URL", redact(url)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .context("creating the Redis connection manager")?;
        Ok(Arc::new(Link {
            client,
            manager,
            runtime: tokio::runtime::Handle::current(),
            up: AtomicBool::new(false),
            warned: std::sync::Mutex::new(None),
            display: redact(url),
        }))
    }

    /// The shared multiplexed connection (cheap to clone).
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Whether the last command or probe reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records what a command saw; logs the transitions.
    pub fn saw<T>(&self, result: &redis::RedisResult<T>) {
        let ok = match result {
            Ok(_) => true,
            // Redis answered (a script error, a wrong type): it is up.
            Err(e) => !unreached(e),
        };
        let was = self.up.swap(ok, Ordering::Relaxed);
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        match (was, ok) {
            (false, true) => {
                *warned = None;
                tracing::info!(redis = %self.display, "connected to Redis")
            }
            (true, false) => {
                *warned = Some(std::time::Instant::now());
                tracing::warn!(redis = %self.display, "lost Redis: {}; retrying", result_text(result))
            }
            // Still unreachable (from the start, or since it was lost): say so
            // now and then, so a node that never connected is not silent.
            (false, false) if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) => {
                *warned = Some(std::time::Instant::now());
                tracing::warn!(redis = %self.display, "Redis is unreachable: {}; serving, and retrying", result_text(result))
            }
            _ => {}
        }
    }

    /// Runs `command` on the shared connection and records the outcome.
    pub async fn run<T, F, Fut>(&self, command: F) -> redis::RedisResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = command(self.connection()).await;
        self.saw(&result);
        result
    }

    /// Runs `future` to completion from synchronous code (a storage call in
    /// a script's turn, inside `block_in_place`, or an offline tool), for
    /// calls a script must see the answer of.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

fn result_text<T>(result: &redis::RedisResult<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Whether `e` means Redis was not reached (rather than that it answered no).
pub fn unreached(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// The error a script sees when Redis cannot be reached.
pub fn unreachable(display: &str, e: &redis::RedisError) -> String {
    format!("Redis at {display} is unreachable: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:6379/2"),
            "redis://:***@127.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
