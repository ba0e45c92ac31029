//! The stall guard every client socket is wrapped in, whether hyper serves it
//! (requests, SSE, WebSocket) or `direct_sse` does: a write blocked for
//! `--write-stall-secs` fails (and is counted once), so a peer that stops
//! reading is closed. Also puts back in front the bytes of the first request
//! head, which the accept loop read itself.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// A client connection: the bytes the accept loop already read are put back
/// in front, and writes fail once they have been blocked for `stall_limit`, so
/// hyper (or `direct_sse`) closes the connection. Without that, a client that
/// never reads would keep its socket, and its subscription, alive indefinitely.
pub struct Connection {
    prefix: BytesMut,
    tcp: TcpStream,
    stall_limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    /// Counts connections closed for a stall (once per connection).
    stalls: Option<IntCounter>,
}

impl Connection {
    pub fn new(
        prefix: BytesMut,
        tcp: TcpStream,
        stall_limit: Duration,
        stalls: IntCounter,
    ) -> Self {
        Connection {
            prefix,
            tcp,
            stall_limit,
            stalled: None,
            stalls: Some(stalls),
        }
    }

    /// The bytes read ahead and not yet consumed, and the socket (for a
    /// connection that leaves hyper: an upgraded WebSocket).
    pub fn into_parts(self) -> (BytesMut, TcpStream) {
        (self.prefix, self.tcp)
    }

    /// Called when the socket would block: start or check the stall clock.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = self.stall_limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        ready!(timer.as_mut().poll(cx));
        if let Some(stalls) = self.stalls.take() {
            stalls.inc();
        }
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
