//! A loaded script as the rest of the host sees it: its registrations and a
//! bounded queue into its actor, and the errors a call can end in.
//!
//! - `error.rs`         `LoadError`, `CallError`
//! - `exception.rs`     a script's exception as one line, with where it was thrown
//! - `linker.rs`        the guest linked with the imports a script gets, once per process
//! - `instance.rs`      a store with its limits armed, the guest instantiated, the script loaded
//! - `actor.rs`         the task that owns a script's instance: requests, timers, restarts
//! - `state.rs`         a script's `Store` data (`HostState`)
//! - `registrations.rs` the routes, streams and WebSocket handlers a script registers
//! - `console.rs`       a script's console lines: escaped, length-capped, rate-limited
//! - `imports/`         the host side of each WIT interface a script imports
//!
//! Within this folder, `mod.rs` uses its files and no file uses `mod.rs`.

mod actor;
mod console;
mod error;
mod exception;
mod imports;
mod instance;
mod linker;
mod registrations;
mod state;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{self, Sender};
use tokio::sync::oneshot;

use crate::bindings::{Request, Response};
use crate::metrics::ScriptMetrics;
use crate::services::ScriptServices;
use actor::Actor;
use instance::Recipe;

pub use actor::Job;
pub use error::{CallError, LoadError};
pub use exception::located_message;
pub use linker::LinkedGuest;
pub use registrations::{Hooks, Registrations, RouteDecl};

/// A loaded script version. Dropping the last clone of it ends its actor
/// task (and its timers) once queued calls are done.
pub struct LoadedScript {
    pub name: Arc<str>,
    pub registrations: Registrations,
    pub loaded_at: SystemTime,
    queue: Sender<Job>,
    metrics: ScriptMetrics,
}

impl LoadedScript {
    /// Starts the actor task, creates the instance and runs the script's top
    /// level. Resolves once the script loaded (or failed to).
    pub async fn start(
        guest: LinkedGuest,
        services: ScriptServices,
        name: &str,
        source: String,
        queue_depth: usize,
    ) -> Result<Arc<LoadedScript>, LoadError> {
        let name: Arc<str> = Arc::from(name);
        let metrics = services.metrics.clone();
        let recipe = Recipe {
            guest,
            services,
            name: name.clone(),
            source,
        };
        let (queue, jobs) = mpsc::channel(queue_depth.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        // A task of its own: the load must finish even if whoever awaits it
        // goes away (a guest call must never be dropped half-way).
        tokio::spawn(async move {
            match recipe.instantiate().await {
                Ok(instance) => {
                    let registrations = instance.store.data().registrations.clone();
                    if ready_tx.send(Ok(registrations)).is_ok() {
                        Actor::new(recipe, instance).run(jobs).await;
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        let registrations = ready_rx.await.map_err(|_| LoadError {
            message: "the script's task ended while loading".into(),
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
            TrySendError::Closed(_) => CallError::Gone,
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
            Err(TrySendError::Closed(_)) => return Err(CallError::Gone),
        }
        response.await.unwrap_or(Err(CallError::Gone))
    }

    /// Requests waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}
