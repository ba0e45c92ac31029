//! The HTTP side: warp filters that route every request either to the engine's
//! own pages (`/_engine`) or, through the live route table, to a script.
//!
//! - `listener.rs` the accept loop, stalled-peer guard, graceful shutdown
//! - `direct_sse.rs` subscriptions that open a connection, served without hyper
//! - `head.rs`     the first request head: size cap, timeout, LF-only heads
//! - `panic_guard.rs` a panic while answering becomes a logged 500
//! - `dispatch.rs` a request to a script handler or a stream subscription
//! - `sse.rs`      the `text/event-stream` response of a subscription
//! - `browser.rs`  `/_engine` and `/_engine/routes`
//! - `reply.rs`    the one mapping from errors to status codes and bodies

mod browser;
mod direct_sse;
mod dispatch;
mod head;
mod listener;
pub(crate) mod panic_guard;
mod reply;
mod sse;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;
use warp::Filter;

use crate::app::App;

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    listener::serve(listener, app, shutdown).await
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let browser = browser::routes(with_app(app.clone()));
    let scripts = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_app(app))
        .then(|method, path, query, headers, body, app| {
            panic_guard::catch(dispatch::handle(method, path, query, headers, body, app))
        });
    browser
        .or(scripts)
        .unify()
        .recover(reply::rejection)
        .unify()
        .with(warp::log::custom(reply::log_request))
}
