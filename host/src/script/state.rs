//! What a script's `Store` holds: its WASI context, its registrations, the
//! services its imports reach, and what a call leaves for the actor.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::console::Console;
use super::registrations::Registrations;
use crate::accepted::Accepted;
use crate::bindings::{Response, ScriptError, WsClient};
use crate::fetch::Inflight;
use crate::limits::{CallClock, MemoryCap};
use crate::services::ScriptServices;
use crate::storage::Namespace;
use crate::streams::Hub;
use crate::ws_clients::Clients;

/// Bytes of guest stdout/stderr kept per instance. Scripts log through
/// `console`, so only a Rust panic in the guest runtime writes here.
const GUEST_OUTPUT_CAPACITY: usize = 64 * 1024;

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub output: MemoryOutputPipe,
    /// The script's file name, tagging its log lines.
    pub script: Arc<str>,
    pub hub: Arc<Hub>,
    /// Live WebSocket connections, for `client.send`.
    pub clients: Arc<Clients>,
    /// The script's storage namespace.
    pub storage: Arc<Namespace>,
    pub registrations: Registrations,
    pub memory: MemoryCap,
    /// When the guest's earliest timer is due, as it last said.
    pub wakeup: Option<Instant>,
    /// Answers of deferred requests that arrived during the last call.
    pub completions: Vec<(u64, Result<Response, ScriptError>)>,
    /// The script's console budget (see `console.rs`).
    pub(super) console: Console,
    /// This instance's fetches in flight (see `fetch`).
    pub fetch: Inflight,
    /// The current turn's messages not yet accepted by the cluster.
    pub accepted: Accepted,
    /// When the running call started, for its time limit (`limits::watch`).
    pub call_started: Instant,
    /// The guest said the running call used its CPU budget (it then traps).
    pub cpu_exhausted: bool,
    /// The connection the running WebSocket event is about
    /// (`websocket.current-client`).
    pub ws_client: Option<Arc<WsClient>>,
}

impl HostState {
    pub fn new(
        script: Arc<str>,
        services: &ScriptServices,
        storage: Arc<Namespace>,
        memory_bytes: usize,
    ) -> Self {
        let output = MemoryOutputPipe::new(GUEST_OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            output,
            script,
            hub: services.hub.clone(),
            clients: services.clients.clone(),
            storage,
            registrations: Registrations::default(),
            memory: MemoryCap {
                bytes: memory_bytes,
                exceeded: false,
            },
            wakeup: None,
            completions: Vec::new(),
            accepted: Default::default(),
            console: Console::default(),
            fetch: Inflight::new(services.fetch.clone()),
            call_started: Instant::now(),
            cpu_exhausted: false,
            ws_client: None,
        }
    }

    /// The limits the last call ran into, for `limits::classify`.
    pub fn tripped(&self) -> crate::limits::Tripped {
        crate::limits::Tripped {
            memory: self.memory.exceeded,
            cpu_budget: self.cpu_exhausted,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallClock for HostState {
    fn call_started(&mut self) -> &mut Instant {
        &mut self.call_started
    }
}
