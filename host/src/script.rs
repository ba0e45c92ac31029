//! A loaded script as the rest of the host sees it: its registrations and a
//! bounded queue into its actor (see `actor.rs`), and the errors a call can end in.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::actor::{Actor, Job, Recipe};
use crate::bindings::{Request, Response, ScriptError};
use crate::engine::WasmEngine;
use crate::host_state::Registrations;
use crate::limits::Limit;
use crate::metrics::{Metrics, ScriptMetrics};
use crate::services::ScriptServices;

pub use crate::actor::describe;

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
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The turn's storage commit failed (disk full, I/O error): nothing of it was written.
    #[error("storage failed: {0}")]
    Storage(String),
    /// A stream message the turn sent was not accepted by the cluster (Redis
    /// unreachable): the turn's storage writes stand, the message is lost.
    #[error("a stream message was not accepted by the cluster: {0}")]
    Cluster(String),
    /// This response's turn was rolled back because another call in it failed.
    #[error("its storage writes were rolled back because another handler in the same turn failed")]
    RolledBack,
}

/// A loaded script version. Dropping the last clone of it ends its actor
/// thread (and its timers) once queued calls are done.
pub struct LoadedScript {
    pub name: Arc<str>,
    pub registrations: Registrations,
    pub loaded_at: SystemTime,
    queue: Sender<Job>,
    metrics: ScriptMetrics,
}

impl LoadedScript {
    /// Starts the actor thread, creates the instance and runs the script's top
    /// level. Resolves once the script loaded (or failed to).
    pub async fn start(
        engine: WasmEngine,
        services: ScriptServices,
        name: &str,
        source: String,
        queue_depth: usize,
        metrics: &Metrics,
    ) -> Result<Arc<LoadedScript>, LoadError> {
        let name: Arc<str> = Arc::from(name);
        let metrics = metrics.script(&name);
        let recipe = Recipe {
            engine,
            services,
            name: name.clone(),
            source,
            metrics: metrics.clone(),
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
                        Actor::new(recipe, instance).run(jobs);
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
            metrics,
        }))
    }

    /// Queues a job that needs no answer (a WebSocket event), in order with
    /// the script's other turns; `Busy` when its queue is full.
    pub fn send_job(&self, job: Job) -> Result<(), CallError> {
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => CallError::Busy,
            TrySendError::Disconnected(_) => CallError::Gone,
        })
    }

    /// Queues a request for the script and waits for its response. Never blocks
    /// the calling thread: a full queue is an immediate `Busy`.
    pub async fn call(&self, request: Request) -> Result<Response, CallError> {
        let (reply, response) = oneshot::channel();
        match self.queue.try_send(Job::Handle { request, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.overload();
                return Err(CallError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => return Err(CallError::Gone),
        }
        response.await.unwrap_or(Err(CallError::Gone))
    }

    /// Requests waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}
