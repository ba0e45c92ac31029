//! The accept loop: HTTP/1.1 connections through hyper to the warp filters
//! (or, for a connection that opens with a stream subscription, straight to
//! `direct_sse`), each socket wrapped (`connection.rs`) so that a peer that
//! stops reading cannot hold it open for ever, and a graceful shutdown that
//! ends streams and waits a bounded time.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::admin::Access;
use super::connection::Connection;
use super::front::Front;
use super::graceful::GracefulShutdown;
use super::reply::Early;
use super::{direct_sse, head};
use crate::app::App;

/// Serves until `shutdown` resolves, then: stop accepting, end every stream,
/// let in-flight requests finish, and give up on stragglers after the
/// configured timeout.
///
/// Bounds per connection (see README, Limits): at most `--max-connections`
/// open at once (the rest get a 503 and are closed), a first head of at most
/// `head::MAX_HEAD` bytes read within `--header-read-timeout-secs`. A
/// connection only joins the graceful shutdown once its first head is in, so an
/// idle one never holds shutdown up.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = Front::new(
        app.clone(),
        access,
        warp::service(super::routes::routes(app.clone())),
    );
    // Taken out by shutdown; connections that finish their first head after
    // that are closed instead of served.
    let graceful = Arc::new(Mutex::new(Some(GracefulShutdown::new())));
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(app.settings.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    // Sent, without reading anything, to a connection over `--max-connections`.
    let too_many = Early::TooManyConnections.to_wire();
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Best effort, never waiting: the point is to give the descriptor back.
            let _ = tcp.try_write(too_many.as_bytes());
            tracing::warn!(
                max = app.settings.max_connections,
                "too many connections; refusing one"
            );
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, service) = (app.clone(), service.clone());
        let (graceful, stop_rx) = (graceful.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _permit = permit; // held as long as the connection
            let mut tcp = tcp;
            let timeout = app.settings.header_read_timeout;
            let head = match head::read_first(&mut tcp, timeout, stop_rx).await {
                head::Head::Read(head) => head,
                head::Head::TooLarge | head::Head::Idle => return,
            };
            // A connection that opens with a stream subscription is served
            // without hyper (see direct_sse.rs); everything else goes to hyper.
            if let Some(sub) = direct_sse::subscription(&app, &head) {
                match direct_sse::serve(&app, tcp, sub).await {
                    Ok(()) => return,
                    Err(given_back) => tcp = given_back,
                }
            }
            let watcher = match graceful
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                Some(graceful) => graceful.watcher(),
                None => return, // shutting down
            };
            let stalls = app.metrics.write_stalls();
            let io = TokioIo::new(Connection::new(head, tcp, app.settings.write_stall, stalls));
            // No `pipeline_flush`: with it, hyper holds responses back while
            // unread bytes sit in its buffer (a stray "\r\n" after a request),
            // so a stream's frames piled up in memory, unsent, and a closed
            // peer was never noticed (issue 11, defect 1).
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(head::MAX_HEAD)
                .serve_connection(io, service)
                .with_upgrades();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; ending streams and in-flight requests");
    let _ = stop_tx.send(true);
    app.hub.retain(|_| false);
    let graceful = graceful
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let timeout = app.settings.shutdown_timeout;
    if let Some(graceful) = graceful {
        let closed = async {
            graceful.shutdown().await;
            super::websocket::drained(&app).await; // upgraded and direct connections
        };
        if tokio::time::timeout(timeout, closed).await.is_err() {
            tracing::warn!("connections still open after {timeout:?}; closing them");
        }
    }
    Ok(())
}
