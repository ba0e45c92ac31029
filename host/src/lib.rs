//! aiwebengine: runs JavaScript "scripts" — small web apps that register HTTP
//! routes and Server-Sent-Event streams — each inside its own WebAssembly sandbox.
//!
//! # Layout
//! - `cli`        the command line
//! - `app`        shared state: settings, scripts by file name, the live route table
//! - `engine`     wasmtime: engine config, the compiled guest (cached), the linker
//! - `bindings`   the one `bindgen!` of `wit/aiwebengine.wit`
//! - `host_state` a script's `Store` data and the WIT `host` functions it calls
//! - `script`     a script's actor: the thread that owns its instance and queue
//! - `route_path` `/users/:id/*rest` → router patterns
//! - `registry`   the route table built from loaded scripts (conflicts, lookups)
//! - `streams`    the SSE hub: per-stream broadcast, frames encoded once
//! - `server`     warp: dispatch to scripts, SSE responses, route browser, errors

pub mod app;
pub mod bindings;
pub mod cli;
pub mod engine;
pub mod host_state;
pub mod registry;
pub mod route_path;
pub mod script;
pub mod server;
pub mod streams;

use std::future::Future;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;

pub use app::{App, Settings};

/// Loads the scripts of `settings` and serves them on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = App::new(settings)?;
    app.load_all().await?;
    server::run(listener, app, shutdown).await
}

/// Starts an engine on `listener` for tests and benchmarks; returns the app.
pub async fn start(listener: TcpListener, settings: Settings) -> Result<Arc<App>> {
    let app = App::new(settings)?;
    app.load_all().await?;
    tokio::spawn(server::run(listener, app.clone(), std::future::pending()));
    Ok(app)
}
