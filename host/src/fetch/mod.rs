//! Outbound `fetch` for scripts.
//!
//! - `policy.rs` the `--allow-outbound` rules and the non-public address check
//! - `client.rs` one fetch with reqwest: redirects, checked DNS, body cap
//!
//! The WIT `fetch` interface a script calls is in `script/imports/fetch.rs`.
//!
//! A fetch never runs inside the script's turn. The guest's `start` spawns it on
//! the tokio runtime and returns an id; when it finishes, its `Done` goes to
//! the script's actor, which calls the guest's `fetch-events.done` as a turn of
//! its own (with fresh limits). Waiting therefore costs no CPU budget and no per-call
//! time; the fetch's own timeout bounds it.

mod client;
pub mod policy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Semaphore;

use crate::bindings::aiwebengine::script::fetch::{FetchRequest, FetchResponse};
use client::Client;
pub use policy::{Policy, Rule};

/// Fetches one script instance may have started and not yet finished
/// (running or waiting for a slot); one more rejects at once.
const MAX_PENDING: usize = 10_000;
/// A handler awaiting a fetch may wait this much past the fetch's timeout,
/// so the rejection reaches it before its own time limit.
const GRACE: Duration = Duration::from_secs(1);

/// The fetch knobs of `serve`.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// `--allow-outbound`: where scripts may fetch; empty allows nothing.
    pub allow: Vec<Rule>,
    /// `--fetch-max-bytes`: the largest response body accepted.
    pub max_bytes: usize,
    /// `--fetch-concurrency`: fetches in flight per script; more wait.
    pub concurrency: usize,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            allow: Vec::new(),
            max_bytes: 10 << 20,
            concurrency: 64,
        }
    }
}

/// The engine-wide fetch service: one client (and connection pool) for all
/// scripts, and the runtime fetches run on.
pub struct Fetcher {
    client: Client,
    runtime: Handle,
    concurrency: usize,
}

impl Fetcher {
    /// Must be called inside the tokio runtime that will run the fetches.
    pub fn new(settings: &FetchSettings) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let policy = Arc::new(Policy::new(settings.allow.clone()));
        Ok(Fetcher {
            client: Client::new(policy, settings.max_bytes)?,
            runtime: Handle::try_current().context("the fetch service needs a tokio runtime")?,
            concurrency: settings.concurrency.max(1),
        })
    }

    /// The fetch side of one script version: its concurrency slots and the
    /// channel that brings finished fetches back to its actor.
    pub fn for_script(self: &Arc<Self>) -> ScriptFetch {
        let (done_tx, done_rx) = unbounded_channel();
        ScriptFetch {
            fetcher: self.clone(),
            slots: Arc::new(Semaphore::new(self.concurrency)),
            next_id: Arc::new(AtomicU64::new(1)),
            done_tx,
            done_rx: Arc::new(std::sync::Mutex::new(Some(done_rx))),
        }
    }
}

/// A finished fetch, on its way to the script's actor.
pub struct Done {
    pub id: u64,
    pub outcome: Result<FetchResponse, String>,
}

/// One script version's fetch state, shared by its successive instances (ids
/// keep counting up, so a fetch of a thrown-away instance is never mistaken
/// for one of its successor).
#[derive(Clone)]
pub struct ScriptFetch {
    fetcher: Arc<Fetcher>,
    slots: Arc<Semaphore>,
    next_id: Arc<AtomicU64>,
    done_tx: UnboundedSender<Done>,
    /// Taken by the version's actor when it starts.
    done_rx: Arc<std::sync::Mutex<Option<UnboundedReceiver<Done>>>>,
}

impl ScriptFetch {
    /// Where the actor receives finished fetches; `None` after the first call.
    pub fn take_done(&self) -> Option<UnboundedReceiver<Done>> {
        self.done_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// A fetch in flight, as its instance tracks it.
struct Task {
    abort: tokio::task::AbortHandle,
    /// The deferred request whose turn started it (see `Inflight::owner`).
    owner: Option<u64>,
    deadline: Instant,
}

/// The fetches of one instance. Dropping it (the instance was thrown away or
/// the script unloaded) cancels them.
pub struct Inflight {
    script: ScriptFetch,
    tasks: HashMap<u64, Task>,
    /// The request on whose behalf the current turn runs: the request itself
    /// in its handler, the owner of the finished fetch in a `done` turn, none
    /// in a timer. Fetches started in the turn inherit it, so a handler
    /// awaiting a chain of fetches is not timed out while they run.
    pub owner: Option<u64>,
}

impl Inflight {
    pub fn new(script: ScriptFetch) -> Self {
        Inflight {
            script,
            tasks: HashMap::new(),
            owner: None,
        }
    }

    /// Starts a fetch on the runtime; its outcome arrives as a `Done`.
    pub fn start(&mut self, req: FetchRequest) -> Result<u64, String> {
        if self.tasks.len() >= MAX_PENDING {
            return Err(format!(
                "too many fetches pending (this script may have {MAX_PENDING} at once)"
            ));
        }
        let fetcher = self.script.fetcher.clone();
        let timeout = Duration::from_millis(req.timeout_ms.max(1).into());
        let prepared = fetcher.client.prepare(req)?;
        let id = self.script.next_id.fetch_add(1, Ordering::Relaxed);
        let slots = self.script.slots.clone();
        let done = self.script.done_tx.clone();
        let runtime = fetcher.runtime.clone();
        let task = runtime.spawn(async move {
            let run = async {
                let _slot = slots.acquire().await.map_err(|e| e.to_string())?;
                fetcher.client.send(prepared).await
            };
            let outcome = match tokio::time::timeout(timeout, run).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
            };
            let _ = done.send(Done { id, outcome });
        });
        self.tasks.insert(
            id,
            Task {
                abort: task.abort_handle(),
                owner: self.owner,
                deadline: Instant::now() + timeout + GRACE,
            },
        );
        Ok(id)
    }

    /// Forgets a finished fetch; `Some(owner)` when it belonged to this instance.
    pub fn finish(&mut self, id: u64) -> Option<Option<u64>> {
        self.tasks.remove(&id).map(|t| t.owner)
    }

    /// The latest deadline of the fetches running for `request`, if any.
    pub fn deadline_for(&self, request: u64) -> Option<Instant> {
        self.tasks
            .values()
            .filter(|t| t.owner == Some(request))
            .map(|t| t.deadline)
            .max()
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn allow_outbound_is_repeatable_and_comma_separated() {
        let cli = Cli::try_parse_from([
            "aiwebengine",
            "serve",
            "--allow-outbound",
            "https://a.example.com,http://127.0.0.1:9000",
            "--allow-outbound",
            "*://*:*",
            "--fetch-max-bytes",
            "5",
            "--fetch-concurrency",
            "3",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("parsed as serve");
        };
        let fetch = args.settings().fetch;
        let rules: Vec<String> = fetch.allow.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rules,
            ["https://a.example.com", "http://127.0.0.1:9000", "*://*:*"]
        );
        assert_eq!((fetch.max_bytes, fetch.concurrency), (5, 3));
        let bad = Cli::try_parse_from(["aiwebengine", "serve", "--allow-outbound", "ftp://x"]);
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("invalid outbound rule"));
    }
}
