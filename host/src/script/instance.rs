//! A script's instance: the store with its limits armed, the guest
//! instantiated and the script's top level run; a trap while loading becomes a
//! `LoadError`, and what the guest runtime printed is logged.

use std::sync::Arc;

use wasmtime::Store;

use super::error::LoadError;
use super::exception::located_message;
use super::linker::LinkedGuest;
use super::state::HostState;
use crate::bindings::{GuestConfig, Script};
use crate::limits;
use crate::services::ScriptServices;

/// What the actor needs to (re)create its instance.
pub struct Recipe {
    pub guest: LinkedGuest,
    pub services: ScriptServices,
    pub name: Arc<str>,
    pub source: String,
}

/// A live instance: its store and the guest's exports in it.
pub struct Instance {
    pub store: Store<HostState>,
    pub bindings: Script,
}

impl Recipe {
    /// A fresh instance with the script loaded, under the same limits as a call.
    pub async fn instantiate(&self) -> Result<Instance, LoadError> {
        let limits = &self.guest.wasm.limits;
        let namespace = self
            .services
            .storage
            .namespace(&self.name)
            .map_err(|e| LoadError {
                message: format!("storage failed: {e:#}"),
                detail: None,
            })?;
        let state = HostState::new(
            self.name.clone(),
            &self.services,
            namespace.clone(),
            limits.memory_bytes,
        );
        let mut store = Store::new(&self.guest.wasm.engine, state);
        store.limiter(|state| &mut state.memory);
        limits::watch(&mut store, limits);
        limits::arm(&mut store, limits);
        let bindings = self
            .guest
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| trap_load_error(&store, "starting the sandbox", e))?;
        let config = GuestConfig {
            max_timers: limits.max_timers,
            cpu_budget: limits.cpu_budget,
        };
        limits::arm(&mut store, limits);
        let guest = bindings.aiwebengine_script_guest();
        let turn = namespace.begin().await;
        let loaded = match guest
            .call_load(&mut store, &self.name, &self.source, config)
            .await
        {
            Ok(Ok(())) => Ok(Instance { store, bindings }),
            Ok(Err(e)) => Err(LoadError {
                message: located_message(&self.name, &e),
                detail: e.stack,
            }),
            Err(e) => Err(trap_load_error(&store, "running its top level", e)),
        };
        if loaded.is_err() {
            turn.discard();
            return loaded;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        turn.commit(Box::new(move |outcome| drop(tx.send(outcome))));
        match rx.await {
            Ok(Ok(())) => loaded,
            Ok(Err(e)) => Err(LoadError {
                message: format!("the top level's storage writes failed: {e}"),
                detail: None,
            }),
            Err(_) => Err(LoadError {
                message: "the storage writer stopped".into(),
                detail: None,
            }),
        }
    }
}

fn trap_load_error(store: &Store<HostState>, doing: &str, e: wasmtime::Error) -> LoadError {
    log_guest_output(store);
    let message = match limits::classify(&e, store.data().tripped()) {
        Some(limit) => format!("the script exceeded {} while {doing}", limit.phrase()),
        None => format!("the sandbox failed while {doing}: {}", e.root_cause()),
    };
    LoadError {
        message,
        detail: Some(format!("{e:?}")),
    }
}

/// The guest runtime writes to stdout/stderr only when it panics; say what it said.
pub fn log_guest_output(store: &Store<HostState>) {
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
