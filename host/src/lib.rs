//! aiwebengine: runs JavaScript "scripts" — small web apps that register HTTP
//! routes and Server-Sent-Event streams — each inside its own WebAssembly sandbox.
//!
//! # Layout
//! - `cli`        the command line
//! - `app`        shared state: settings, scripts by file name, the live route table
//! - `engine`     wasmtime: engine config, the compiled guest (cached), the linker
//! - `bindings`   the one `bindgen!` of `wit/aiwebengine.wit`
//! - `host_state` a script's `Store` data and the WIT `host` functions it calls
//! - `services`   what a script's sandbox can reach (stream hub, storage), as one value
//! - `storage`    durable per-script storage: turns, overlay, redb backend, dump/restore
//! - `limits`     fuel, deadline and memory cap per call; naming what tripped
//! - `script`     a loaded script version: registrations + queue into its actor
//! - `actor`      the thread that owns a script's instance: requests, timers, restarts
//! - `route_path` `/users/:id/*rest` → router patterns
//! - `registry`   the route table built from loaded scripts (conflicts, lookups)
//! - `streams`    the SSE hub: per-stream broadcast, frames encoded once
//! - `watcher`    hot reload: folder events → `App::reconcile`
//! - `server`     warp: dispatch to scripts, SSE responses, route browser, errors

pub mod actor;
pub mod app;
pub mod bindings;
pub mod cli;
pub mod engine;
pub mod host_state;
pub mod limits;
pub mod registry;
pub mod route_path;
pub mod script;
pub mod server;
pub mod services;
pub mod storage;
pub mod streams;
pub mod watcher;

use std::future::Future;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;

pub use app::{App, Settings};

/// A running engine: the app, and the watch that keeps hot reload going.
pub struct Engine {
    pub app: Arc<App>,
    _watch: Option<watcher::Watch>,
}

/// Loads the scripts of `settings` and starts watching them (unless turned off).
pub async fn load(settings: Settings) -> Result<Engine> {
    let app = App::new(settings)?;
    // Watch first, so that no change made while loading goes unseen.
    let watch = match app.settings.watch {
        true => Some(watcher::start(app.clone())?),
        false => None,
    };
    app.load_all().await?;
    Ok(Engine { app, _watch: watch })
}

/// Loads the scripts of `settings` and serves them on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let engine = load(settings).await?;
    engine.app.advertise(listener.local_addr()?);
    server::run(listener, engine.app.clone(), shutdown).await
}

/// Starts an engine on `listener` in the background, for tests and benchmarks.
/// The server task lives as long as the tokio runtime; the watch as long as the `Engine`.
pub async fn start(listener: TcpListener, settings: Settings) -> Result<Engine> {
    let engine = load(settings).await?;
    engine.app.advertise(listener.local_addr()?);
    tokio::spawn(server::run(
        listener,
        engine.app.clone(),
        std::future::pending(),
    ));
    Ok(engine)
}
