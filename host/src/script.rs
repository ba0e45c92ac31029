//! A script's actor: one OS thread that owns the script's long-lived wasm
//! instance (so its JS globals persist between requests) and runs its calls one
//! at a time, in arrival order, from a bounded queue.
//!
//! Why a thread and not a tokio task: guest code may run for a long time (up to
//! its limits), and it must never occupy a tokio worker while it does, or one
//! busy script would slow every connection. Each script gets its own thread, so
//! scripts run in parallel and the HTTP side only ever does a non-blocking
//! `try_send` and awaits a oneshot reply.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;
use wasmtime::Store;

use crate::bindings::exports::aiwebengine::script::guest::Guest;
use crate::bindings::{Request, Response, Script, ScriptError};
use crate::engine::WasmEngine;
use crate::host_state::{HostState, Registrations};
use crate::limits::{self, Limit};
use crate::streams::Hub;

/// Native stack for a script thread; wasm and QuickJS recursion have their own,
/// smaller limits inside it.
const THREAD_STACK: usize = 8 << 20;

/// Why a script could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    /// One line: what went wrong, with the script's file and line when known.
    pub message: String,
    /// The JS stack or the trap's backtrace, for the log.
    pub detail: Option<String>,
}

/// Why a call into a script produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{}", .0.message)]
    Exception(ScriptError),
    #[error("exceeded {}", .0.describe())]
    Limit(Limit),
    #[error("the script crashed: {0}")]
    Trap(String),
    #[error("too many requests are queued for this script")]
    Busy,
    #[error("the script is restarting after repeated failures")]
    Restarting(Duration),
    #[error("the script was unloaded")]
    Gone,
}

enum Job {
    Handle {
        request: Request,
        reply: oneshot::Sender<Result<Response, CallError>>,
    },
}

/// A loaded script: its registrations and the queue into its actor. Dropping the
/// last clone of it ends the actor thread once queued calls are done.
pub struct LoadedScript {
    pub name: Arc<str>,
    pub registrations: Registrations,
    pub loaded_at: SystemTime,
    queue: Sender<Job>,
}

/// What the actor needs to (re)create its instance.
struct Recipe {
    engine: WasmEngine,
    hub: Arc<Hub>,
    name: Arc<str>,
    source: String,
}

struct Instance {
    store: Store<HostState>,
    bindings: Script,
}

impl Recipe {
    /// A fresh instance with the script loaded, under the same limits as a call.
    fn instantiate(&self) -> Result<Instance, LoadError> {
        let limits = &self.engine.limits;
        let state = HostState::new(self.name.clone(), self.hub.clone(), limits.memory_bytes);
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.memory);
        limits::arm(&mut store, limits);
        let bindings = self
            .engine
            .pre
            .instantiate(&mut store)
            .map_err(|e| trap_load_error(&store, "starting the sandbox", e))?;
        let guest = bindings.aiwebengine_script_guest();
        limits::arm(&mut store, limits);
        match guest.call_load(&mut store, &self.name, &self.source) {
            Ok(Ok(())) => Ok(Instance { store, bindings }),
            Ok(Err(e)) => Err(LoadError {
                message: describe(&self.name, &e),
                detail: e.stack,
            }),
            Err(e) => Err(trap_load_error(&store, "running its top level", e)),
        }
    }
}

/// The error's message and, when its stack passes through the script itself,
/// where: "TypeError: x is undefined (at chat.js:12:5)".
pub fn describe(script: &str, error: &ScriptError) -> String {
    match error
        .stack
        .as_deref()
        .and_then(|stack| locate(script, stack))
    {
        Some(place) => format!("{} (at {place})", error.message),
        None => error.message.clone(),
    }
}

/// The first `file:line:column` of `script` in a QuickJS stack.
fn locate<'a>(script: &str, stack: &'a str) -> Option<&'a str> {
    stack.lines().find_map(|line| {
        let start = line.find(script)?;
        let place = &line[start..];
        let place = place.split(')').next().unwrap_or(place).trim_end();
        place[script.len()..].starts_with(':').then_some(place)
    })
}

fn trap_load_error(store: &Store<HostState>, doing: &str, e: wasmtime::Error) -> LoadError {
    log_guest_output(store);
    let message = match limits::classify(&e, store.data().memory.exceeded) {
        Some(limit) => format!("the script exceeded {} while {doing}", limit.describe()),
        None => format!("the sandbox failed while {doing}: {}", root_cause(&e)),
    };
    LoadError {
        message,
        detail: Some(format!("{e:?}")),
    }
}

fn root_cause(e: &wasmtime::Error) -> String {
    e.root_cause().to_string()
}

/// The guest runtime writes to stdout/stderr only when it panics; say what it said.
fn log_guest_output(store: &Store<HostState>) {
    let out = store.data().output.contents();
    if !out.is_empty() {
        let script = &*store.data().script;
        tracing::error!(
            script,
            "guest output: {}",
            String::from_utf8_lossy(&out).trim_end()
        );
    }
}

impl LoadedScript {
    /// Starts the actor thread, creates the instance and runs the script's top
    /// level. Resolves once the script loaded (or failed to).
    pub async fn start(
        engine: WasmEngine,
        hub: Arc<Hub>,
        name: &str,
        source: String,
        queue_depth: usize,
    ) -> Result<Arc<LoadedScript>, LoadError> {
        let name: Arc<str> = Arc::from(name);
        let recipe = Recipe {
            engine,
            hub,
            name: name.clone(),
            source,
        };
        let (queue, jobs) = crossbeam_channel::bounded(queue_depth.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("script {name}"))
            .stack_size(THREAD_STACK)
            .spawn(move || match recipe.instantiate() {
                Ok(instance) => {
                    let registrations = instance.store.data().registrations.clone();
                    if ready_tx.send(Ok(registrations)).is_ok() {
                        run(recipe, Some(instance), jobs);
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| LoadError {
                message: format!("could not start a thread for the script: {e}"),
                detail: None,
            })?;
        let registrations = ready_rx.await.map_err(|_| LoadError {
            message: "the script's thread ended while loading".into(),
            detail: None,
        })??;
        Ok(Arc::new(LoadedScript {
            name,
            registrations,
            loaded_at: SystemTime::now(),
            queue,
        }))
    }

    /// Queues a request for the script and waits for its response. Never blocks
    /// the calling thread: a full queue is an immediate `Busy`.
    pub async fn call(&self, request: Request) -> Result<Response, CallError> {
        let (reply, response) = oneshot::channel();
        match self.queue.try_send(Job::Handle { request, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(CallError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(CallError::Gone),
        }
        response.await.unwrap_or(Err(CallError::Gone))
    }
}

/// Consecutive failed calls after which restarts are spaced out.
const BACKOFF_AFTER: u32 = 3;
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The actor thread's state: the instance (none after a trap, until the next
/// call needs one) and how often it has been failing.
struct Actor {
    recipe: Recipe,
    instance: Option<Instance>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The actor loop: one job at a time until every sender is gone.
fn run(recipe: Recipe, instance: Option<Instance>, jobs: Receiver<Job>) {
    let mut actor = Actor {
        recipe,
        instance,
        failures: 0,
        retry_at: None,
    };
    for job in jobs {
        match job {
            Job::Handle { request, reply } => {
                if reply.is_closed() {
                    continue; // the client went away while this waited in the queue
                }
                let result =
                    actor.call("request", |guest, store| guest.call_handle(store, &request));
                let _ = reply.send(result.and_then(|r| r.map_err(CallError::Exception)));
            }
        }
    }
    tracing::debug!(script = %actor.recipe.name, "script actor finished");
}

impl Actor {
    /// The live instance, re-created from the source if a trap threw it away;
    /// after repeated failures, not before the backoff has passed.
    fn instance(&mut self) -> Result<&mut Instance, CallError> {
        if self.instance.is_none() {
            if let Some(wait) = self
                .retry_at
                .and_then(|at| at.checked_duration_since(Instant::now()))
            {
                return Err(CallError::Restarting(wait));
            }
            tracing::info!(script = %self.recipe.name, "re-instantiating the script (its globals start fresh)");
            match self.recipe.instantiate() {
                Ok(instance) => self.instance = Some(instance),
                Err(e) => {
                    self.failed();
                    return Err(CallError::Trap(format!(
                        "could not restart the script: {e}"
                    )));
                }
            }
        }
        Ok(self.instance.as_mut().expect("instance exists"))
    }

    fn failed(&mut self) {
        self.failures += 1;
        if self.failures >= BACKOFF_AFTER {
            let wait = Duration::from_millis(100 << (self.failures - BACKOFF_AFTER).min(6))
                .min(BACKOFF_MAX);
            tracing::warn!(script = %self.recipe.name, failures = self.failures, "failing repeatedly; next restart in {wait:?}");
            self.retry_at = Some(Instant::now() + wait);
        }
    }

    /// Runs one guest call under the limits. A trap — a tripped limit or a
    /// crash — throws the instance away, since it may be corrupt mid-call.
    fn call<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let limits = self.recipe.engine.limits;
        let instance = self.instance()?;
        limits::arm(&mut instance.store, &limits);
        let result = f(
            instance.bindings.aiwebengine_script_guest(),
            &mut instance.store,
        );
        let fuel_used = limits::fuel_used(&instance.store, &limits);
        match result {
            Ok(value) => {
                self.failures = 0;
                self.retry_at = None;
                Ok(value)
            }
            Err(trap) => {
                log_guest_output(&instance.store);
                let limit = limits::classify(&trap, instance.store.data().memory.exceeded);
                let script = &*self.recipe.name;
                let error = match limit {
                    Some(limit) => {
                        tracing::warn!(script, call = what, limit = ?limit, fuel_used, "call stopped: exceeded {}", limit.describe());
                        CallError::Limit(limit)
                    }
                    None => {
                        tracing::error!(script, call = what, fuel_used, "script trapped: {trap:?}");
                        CallError::Trap(root_cause(&trap))
                    }
                };
                self.instance = None;
                self.failed();
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_located_in_the_script() {
        let e = ScriptError {
            message: "Error: bad".into(),
            stack: Some("    at registerRoute (<input>:40:7)\n    at init (chat.js:3:20)\n    at <eval> (chat.js:9:1)\n".into()),
        };
        assert_eq!(describe("chat.js", &e), "Error: bad (at chat.js:3:20)");
        let e = ScriptError {
            message: "SyntaxError: x".into(),
            stack: Some("    at x.js:2:5\n".into()),
        };
        assert_eq!(describe("x.js", &e), "SyntaxError: x (at x.js:2:5)");
        let e = ScriptError {
            message: "Error: y".into(),
            stack: None,
        };
        assert_eq!(describe("x.js", &e), "Error: y");
    }
}
