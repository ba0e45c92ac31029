//! Graceful shutdown of hyper connections that may be upgraded (WebSocket):
//! hyper-util's `GracefulShutdown` only watches connections without upgrades,
//! so this is the same idea for `http1::UpgradeableConnection`. A connection
//! already upgraded is no longer hyper's: the WebSocket closes itself when the
//! hub ends its stream (see `websocket.rs`).

use std::error::Error as StdError;
use std::pin::Pin;

use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::server::conn::http1::UpgradeableConnection;
use hyper::service::HttpService;
use tokio::sync::watch;

/// Tells every watched connection to finish, and waits until they have.
pub struct GracefulShutdown {
    tx: watch::Sender<bool>,
}

/// One connection's view of the shutdown signal.
pub struct Watcher {
    rx: watch::Receiver<bool>,
}

impl GracefulShutdown {
    pub fn new() -> Self {
        GracefulShutdown {
            tx: watch::channel(false).0,
        }
    }

    pub fn watcher(&self) -> Watcher {
        Watcher {
            rx: self.tx.subscribe(),
        }
    }

    /// Signals every connection, then waits for all of them to end.
    pub async fn shutdown(self) {
        let _ = self.tx.send(true);
        self.tx.closed().await;
    }
}

impl Watcher {
    /// Drives `conn` to its end; once shutdown is signalled, hyper finishes
    /// the request in flight and closes it.
    pub async fn watch<I, S, B>(mut self, conn: UpgradeableConnection<I, S>) -> hyper::Result<()>
    where
        S: HttpService<Incoming, ResBody = B>,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        I: Read + Write + Unpin + Send + 'static,
        B: Body + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            done = conn.as_mut() => return done,
            _ = self.rx.wait_for(|stop| *stop) => {}
        }
        Pin::as_mut(&mut conn).graceful_shutdown();
        conn.await
    }
}
