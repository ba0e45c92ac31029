//! The accept loop: HTTP/1.1 connections through hyper to the warp filters
//! (or, for a connection that opens with a stream subscription, straight to
//! `direct_sse`), each socket wrapped so that a peer that stops reading cannot
//! hold it open for ever, and a graceful shutdown that ends streams and waits a
//! bounded time.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use super::direct_sse;
use super::graceful::GracefulShutdown;
use crate::app::App;

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until `shutdown` resolves, then: stop accepting, end every stream,
/// let in-flight requests finish, and give up on stragglers after the
/// configured timeout.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = warp::service(super::routes(app.clone()));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
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
        let _ = tcp.set_nodelay(true);
        let (app, service, watcher) = (app.clone(), service.clone(), graceful.watcher());
        tokio::spawn(async move {
            let mut tcp = tcp;
            // A connection that opens with a stream subscription is served
            // without hyper (see direct_sse.rs); everything else goes to hyper.
            let head = direct_sse::read_head(&mut tcp, HEADER_READ_TIMEOUT).await;
            if let Some(sub) = direct_sse::subscription(&app, &head) {
                match direct_sse::serve(&app, tcp, sub).await {
                    Ok(()) => return,
                    Err(given_back) => tcp = given_back,
                }
            }
            let io = TokioIo::new(Connection::new(head, tcp, app.settings.write_stall));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .pipeline_flush(true)
                .serve_connection(io, TowerToHyperService::new(service))
                .with_upgrades();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; ending streams and in-flight requests");
    app.hub.retain(|_| false);
    let timeout = app.settings.shutdown_timeout;
    let closed = async {
        graceful.shutdown().await;
        super::websocket::drained(&app).await; // upgraded and direct connections
    };
    if tokio::time::timeout(timeout, closed).await.is_err() {
        tracing::warn!("connections still open after {timeout:?}; closing them");
    }
    Ok(())
}

/// A client connection as hyper sees it: the bytes the accept loop already
/// read are put back in front, and writes fail once they have been blocked for
/// `stall_limit`, so hyper closes the connection. Without that, a client that
/// never reads would keep its socket, and its subscription, alive indefinitely.
struct Connection {
    prefix: BytesMut,
    tcp: TcpStream,
    stall_limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    fn new(prefix: BytesMut, tcp: TcpStream, stall_limit: Duration) -> Self {
        Connection {
            prefix,
            tcp,
            stall_limit,
            stalled: None,
        }
    }

    /// Called when the socket would block: start or check the stall clock.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = self.stall_limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("peer took no data for {limit:?}"),
        )))
    }

    fn wrote(
        &mut self,
        result: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Pending => self.poll_stall(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix.split_to(n));
        if self.prefix.is_empty() {
            self.prefix = BytesMut::new(); // give the memory back
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.wrote(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.wrote(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
