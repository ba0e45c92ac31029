//! What a script's `Store` holds, and the host side of the WIT `host` interface.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::aiwebengine::script::{host::Host, types};
use crate::bindings::{LogLevel, Response, ScriptError};
use crate::console::Console;
use crate::fetch::Inflight;
use crate::limits::MemoryCap;
use crate::route_path::RoutePath;
use crate::services::ScriptServices;
use crate::storage::Namespace;
use crate::streams::Hub;

/// Bytes of guest stdout/stderr kept per instance. Scripts log through
/// `console`, so only a Rust panic in the guest runtime writes here.
const GUEST_OUTPUT_CAPACITY: usize = 64 * 1024;

/// A route as one script declared it.
#[derive(Clone, Debug)]
pub struct RouteDecl {
    pub method: String,
    pub path: RoutePath,
    pub handler: u32,
}

/// The routes and streams a script registered while it loaded.
#[derive(Clone, Debug, Default)]
pub struct Registrations {
    pub routes: Vec<RouteDecl>,
    pub streams: Vec<String>,
    /// Streams with WebSocket client handlers (`websocket.rs`).
    pub websocket: crate::websocket::Listeners,
}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub output: MemoryOutputPipe,
    /// The script's file name, tagging its log lines.
    pub script: Arc<str>,
    pub hub: Arc<Hub>,
    /// The script's storage namespace (the WIT `storage` host is in `storage/host_api.rs`).
    pub storage: Arc<Namespace>,
    pub registrations: Registrations,
    pub memory: MemoryCap,
    /// When the guest's earliest timer is due, as it last said.
    pub wakeup: Option<Instant>,
    /// Answers of deferred requests that arrived during the last call.
    pub completions: Vec<(u64, Result<Response, ScriptError>)>,
    /// The script's console budget (see `console.rs`).
    console: Console,
    /// This instance's fetches in flight (see `fetch`).
    pub fetch: Inflight,
    /// The current turn's messages not yet accepted by the cluster.
    pub accepted: crate::accepted::Accepted,
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

/// Methods a route may use; anything else is refused at registration.
fn valid_method(method: &str) -> bool {
    !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
}

impl types::Host for HostState {}

impl Host for HostState {
    fn set_wakeup(&mut self, delay_ms: Option<u32>) {
        self.wakeup = delay_ms.map(|ms| Instant::now() + Duration::from_millis(ms.into()));
    }

    fn complete(&mut self, id: u64, outcome: Result<Response, ScriptError>) {
        self.completions.push((id, outcome));
    }

    fn log(&mut self, level: LogLevel, message: String) {
        let script = &*self.script;
        let Some(line) = self.console.line(&message) else {
            return;
        };
        if line.dropped_before > 0 {
            tracing::warn!(target: "script", script, dropped = line.dropped_before, "console lines dropped: over the rate limit");
        }
        let message = line.text;
        match level {
            LogLevel::Debug => tracing::debug!(target: "script", script, "{message}"),
            LogLevel::Info => tracing::info!(target: "script", script, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "script", script, "{message}"),
            LogLevel::Error => tracing::error!(target: "script", script, "{message}"),
        }
    }

    fn register_route(&mut self, method: String, path: String, handler: u32) -> Result<(), String> {
        if !valid_method(&method) {
            return Err(format!("invalid HTTP method {method:?}"));
        }
        let path = RoutePath::parse(&path).map_err(|e| e.to_string())?;
        if path.source == "/_engine" || path.source.starts_with("/_engine/") {
            return Err("paths under /_engine are reserved for the engine".into());
        }
        let routes = &mut self.registrations.routes;
        if let Some(other) = routes
            .iter()
            .find(|r| r.method == method && r.path.key == path.key)
        {
            return Err(format!(
                "{method} {} is already registered by this script (as {})",
                path.source, other.path.source
            ));
        }
        routes.push(RouteDecl {
            method,
            path,
            handler,
        });
        Ok(())
    }

    fn register_stream(&mut self, path: String) -> Result<(), String> {
        let parsed = RoutePath::parse(&path).map_err(|e| e.to_string())?;
        if !parsed.is_static() {
            return Err(format!("stream path {path:?} must not have parameters"));
        }
        if path == "/_engine" || path.starts_with("/_engine/") {
            return Err("paths under /_engine are reserved for the engine".into());
        }
        if !self.registrations.streams.contains(&path) {
            let cap = self.hub.limits().streams_per_script;
            if self.registrations.streams.len() >= cap {
                return Err(format!(
                    "a script may register at most {cap} streams (--max-streams-per-script)"
                ));
            }
            self.hub.ensure(&path);
            self.registrations.streams.push(path);
        }
        Ok(())
    }

    fn send_stream_message(
        &mut self,
        path: Option<String>,
        json: String,
        filter: Vec<(String, String)>,
    ) -> Result<u32, String> {
        let cap = self.hub.limits().message_bytes;
        if json.len() > cap {
            return Err(format!(
                "a stream message may be at most {cap} bytes of JSON (--max-message-bytes), \
                 this one is {}",
                json.len()
            ));
        }
        let named = path.is_some();
        let paths = match path {
            Some(path) => vec![path],
            None => self.registrations.streams.clone(),
        };
        let mut reached = 0usize;
        for p in &paths {
            let accepted = &self.accepted;
            let sent = self
                .hub
                .send(p, &json, filter.clone(), || accepted.settle())
                .map_err(|e| format!("sendStreamMessage({p:?}): {e}"))?;
            reached += match sent {
                Some(n) => n,
                None if named => {
                    return Err(format!("no stream is registered at {p:?}"));
                }
                None => 0,
            };
        }
        Ok(reached.try_into().unwrap_or(u32::MAX))
    }
}
