//! The HTTP side: warp filters that route every request either to the engine's
//! own pages (`/_engine`) or, through the live route table, to a script.
//!
//! - `listener.rs` the accept loop, stalled-peer guard, graceful shutdown
//! - `direct_sse.rs` subscriptions that open a connection, served without hyper
//! - `dispatch.rs` a request to a script handler or a stream subscription
//! - `sse.rs`      the `text/event-stream` response of a subscription
//! - `browser.rs`  `/_engine` and `/_engine/routes`
//! - `storage_admin.rs` `/_engine/storage/SCRIPT`: dump and restore on a running server
//! - `reply.rs`    the one mapping from errors to status codes and bodies

mod browser;
mod direct_sse;
mod dispatch;
mod listener;
mod reply;
mod sse;
mod storage_admin;

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
    let browser = browser::routes(with_app(app.clone()))
        .or(storage_admin::routes(with_app(app.clone())))
        .unify();
    let scripts = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_app(app))
        .then(dispatch::handle);
    browser
        .or(scripts)
        .unify()
        .recover(reply::rejection)
        .unify()
        .with(warp::log::custom(reply::log_request))
}
