//! The HTTP side: warp filters that route every request either to the engine's
//! own pages (`/_engine`) or, through the live route table, to a script.
//!
//! - `listener.rs` the accept loop, connection cap, graceful shutdown
//! - `connection.rs` the stalled-peer guard on every client socket
//! - `direct_sse.rs` subscriptions that open a connection, served without hyper
//! - `head.rs`     the first request head: size cap, timeout, LF-only heads
//! - `panic_guard.rs` a panic while answering becomes a logged 500
//! - `routes.rs`   the warp filter tree: `/_engine` pages, then scripts
//! - `dispatch.rs` a request to a script handler or a stream subscription
//! - `convert.rs`  HTTP ↔ WIT: the request a handler gets, the response it returns
//! - `subscribe.rs` the one subscription path of SSE and WebSocket: parse, look up, open
//! - `sse.rs`      the `text/event-stream` response of a subscription
//! - `websocket.rs` WebSocket upgrades on stream paths, and each connection's loop
//! - `graceful.rs` graceful shutdown of connections that may be upgraded
//! - `overview.rs` what `/_engine` shows, typed: scripts, routes, streams, cluster
//! - `browser.rs`  `/_engine` and `/_engine/routes`, both from the overview
//! - `operating.rs` `/_engine/metrics` and `/_engine/health/{live,ready}`
//! - `front.rs`    around every request: its id and span, the `/_engine`
//!   access policy, metrics and the access log
//! - `request_id.rs` keeping or making `X-Request-Id`
//! - `admin.rs`    the `/_engine` access policy (admin token, loopback)
//! - `dts.rs`      `/_engine/aiwebengine.d.ts`, the script API's types
//! - `storage_admin.rs` `/_engine/storage/SCRIPT`: dump and restore on a running server
//! - `reply.rs`    the one mapping from errors to status codes and bodies

pub mod admin;
mod browser;
mod connection;
mod convert;
mod direct_sse;
mod dispatch;
mod dts;
mod front;
mod graceful;
mod head;
mod listener;
mod operating;
mod overview;
mod panic_guard;
mod reply;
pub mod request_id;
mod routes;
mod sse;
mod storage_admin;
mod subscribe;
mod websocket;

use std::future::Future;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;

use crate::app::App;

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    let access = admin::Access::new(app.settings.admin_token.as_ref(), addr);
    if app.health.state() == crate::health::State::Loading {
        tracing::info!("accepting connections on http://{addr} while the scripts load (/_engine/health/ready answers 503 until then)");
    }
    // "listening on" means: scripts loaded, serving.
    let ready = app.health.ready();
    tokio::spawn(async move {
        ready.await;
        tracing::info!("listening on http://{addr}");
    });
    let shutdown = app.health.then_drain(shutdown, app.settings.shutdown_drain);
    listener::serve(listener, app, access, shutdown).await
}
