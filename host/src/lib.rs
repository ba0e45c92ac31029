//! aiwebengine: runs JavaScript "scripts" — small web apps that register HTTP
//! routes and Server-Sent-Event streams — each inside its own WebAssembly sandbox.
//!
//! # Layout
//! Scripts, from a file to a running sandbox:
//! - `settings`   the knobs `serve` takes, with their defaults
//! - `app`        shared state: settings, services, scripts by file name, the live route table
//! - `reload`     the reload policy: what a look at the folder loads, replaces, removes
//! - `watcher`    hot reload: folder events → `reload::reconcile`
//! - `script_files` reading script files off the async workers: size cap, unchanged-file skip, no symlinks out
//! - `script_names` which files are scripts (`*.js`, `*.ts`), `.js`/`.ts` twins
//! - `typescript` strips types from `*.ts` scripts, keeping lines and columns
//! - `script`     a loaded script version: its instance, actor task, registrations, WIT imports
//! - `wasm`       wasmtime: engine, epoch ticker, the compiled guest (built in, else cached); no script types
//! - `wasm_config` the wasmtime `Config`, shared with `build.rs` (which precompiles the guest)
//! - `bindings`   the one `bindgen!` of `wit/aiwebengine.wit`
//! - `limits`     CPU budget (QuickJS or fuel), deadline and memory cap per call; naming what tripped
//! - `services`   what a script version is given (hub, WebSocket clients, fetch, storage, metrics), as one value
//! - `registry`   the route table built from loaded scripts (conflicts, lookups)
//! - `route_path` `/users/:id/*rest` → router patterns
//!
//! What scripts reach:
//! - `streams`    the stream hub: per-stream broadcast, SSE and WebSocket frames encoded once
//! - `ws_clients` live WebSocket connections by client id, for `client.send`
//! - `storage`    durable per-script storage: turns, overlay, redb or Redis backend, dump/restore
//! - `fetch`      outbound `fetch`: allow-list, checked DNS, redirects, caps
//! - `cluster`    cluster mode over Redis: the link, cluster-wide streams, node heartbeats
//! - `accepted`   a turn's cluster-published messages: its answers wait until Redis took them
//!
//! Serving and operating:
//! - `server`     warp: the accept loop, dispatch to scripts, SSE and WebSocket, `/_engine`, statuses
//! - `health`     loading / ready / shutting down, and the shutdown drain
//! - `admin_token` the `/_engine` admin token, a setting that never shows in logs
//! - `metrics`    Prometheus metrics: names, labels, one-line helpers, exposition
//! - `logging`    text or JSON log lines (`--log-format`)
//! - `panics`     the message of a caught panic, for its log line
//! - `sleep`      sleeping until an optional deadline, for `select!` branches
//! - `fd_limit`   `--max-connections` sized from the file-descriptor limit
//! - `script_view` a script as `/_engine`, metrics and `check` show it: status, routes, streams
//! - `cli`        the command line
//! - `check`      `aiwebengine check`: load scripts without serving, report, exit 0/1
//! - `route_list` `aiwebengine routes`: the route table as text or JSON
//!
//! # The path of a request
//! `server::listener` accepts the connection (`server::connection` guards its
//! writes; `server::head` reads the first head, and a first request that
//! subscribes goes to `server::direct_sse`). `server::routes` and
//! `server::front` give it an id, the `/_engine` policy and an access-log
//! line; `server::dispatch` looks its path up in the live
//! `registry::RouteTable` and `server::convert` makes the WIT request.
//! `script::LoadedScript` queues it as a `Job` to the script's actor task
//! (`script::actor`), which runs on the same worker and calls the guest in its
//! `script::instance` under `limits` (yielding the worker every epoch tick); the guest reaches the host through `script::imports`. When the
//! turn ends its storage writes commit (`storage`) and its cluster sends are
//! accepted (`accepted`), then the answer returns on a oneshot and
//! `server::convert` makes the HTTP response; a failure's status and body come
//! from `server::reply`.
//!
//! # The path of a stream message
//! `sendStreamMessage` → `script::imports::host` → `streams::Hub::send`: the
//! message is numbered, encoded once (`streams::frame`: SSE bytes beside the
//! JSON), kept for replay (`streams::replay`) and put in the stream's ring
//! (`streams::fan_out`: at once for up to 64 subscribers, else by the fan-out
//! thread), which wakes every subscription (`streams::subscription`)
//! whose filter matches (`streams::filter`). Each connection writes the frame:
//! `server::sse` or `server::direct_sse` for SSE, `server::websocket` for
//! WebSocket. In cluster mode the hub hands the message to its
//! `streams::Publisher` (`cluster::publish`, into Redis) and each node's
//! `cluster::subscribe` delivers it back into its hub (`streams::cluster`), in
//! id order.
//!
//! No panic is reachable from a request, a script or a file: slicing and
//! indexing are denied below (use `get`, `split_once`, iterators), shared locks
//! survive poisoning, and a panic that still happens while answering a request,
//! in a script's turn or in the watcher is logged and answered with a 500.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::string_slice))]

pub mod accepted;
pub mod admin_token;
pub mod app;
pub mod bindings;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod fd_limit;
pub mod fetch;
pub mod health;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod panics;
pub mod registry;
pub mod reload;
pub mod route_list;
pub mod route_path;
pub mod script;
pub mod script_files;
pub mod script_names;
pub mod script_view;
pub mod server;
pub mod services;
pub mod settings;
mod sleep;
pub mod storage;
pub mod streams;
pub mod typescript;
pub mod wasm;
mod wasm_config;
pub mod watcher;
pub mod ws_clients;

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

pub use app::App;
pub use settings::Settings;

/// A running engine: the app, and the watch that keeps hot reload going.
pub struct Running {
    pub app: Arc<App>,
    _watch: Option<watcher::Watch>,
}

/// Loads the scripts of `settings` and starts watching them (unless turned off).
pub async fn load(settings: Settings) -> Result<Running> {
    load_app(App::new(settings)?).await
}

/// Watches and loads `app`'s scripts; the app is ready once they are loaded.
async fn load_app(app: Arc<App>) -> Result<Running> {
    // Watch first, so that no change made while loading goes unseen.
    let watch = match app.settings.watch {
        true => Some(watcher::start(app.clone())?),
        false => None,
    };
    reload::load_all(&app).await?;
    app.health.set_ready();
    Ok(Running { app, _watch: watch })
}

/// Serves on `listener` until `shutdown`, loading the scripts of `settings`
/// meanwhile: health checks are answered from the start, and
/// `/_engine/health/ready` turns 200 (and "listening on" is logged) once the
/// scripts are loaded.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = App::new(settings)?;
    app.advertise(listener.local_addr()?);
    let server = tokio::spawn(server::run(listener, app.clone(), shutdown));
    let _running = load_app(app).await?;
    server.await.context("the server task failed")?
}

/// Starts an engine on `listener` in the background, for tests and benchmarks.
/// The server task lives as long as the tokio runtime; the watch as long as the `Running`.
pub async fn start(listener: TcpListener, settings: Settings) -> Result<Running> {
    let engine = load(settings).await?;
    engine.app.advertise(listener.local_addr()?);
    tokio::spawn(server::run(
        listener,
        engine.app.clone(),
        std::future::pending(),
    ));
    Ok(engine)
}
