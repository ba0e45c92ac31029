//! Stream subscriptions served straight on the socket.
//!
//! A connection whose first request is `GET <stream path>` with `Accept:
//! text/event-stream` never needs HTTP again: it is a one-way byte stream until
//! one side closes it. Handing it to hyper would keep hyper's per-connection
//! read and write buffers (8 KiB each) alive for as long as the subscriber
//! stays, and add chunked framing to every frame. So the accept loop reads the
//! first request head itself; if it is such a subscription, this module
//! answers it and writes the hub's shared frames directly, with nothing but
//! the socket and the subscription held per subscriber (the head itself is
//! read by `head.rs`). Everything else,
//! including subscriptions made later on a keep-alive connection, goes to
//! hyper with the bytes already read put back in front (see `listener.rs`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connection::Connection;
use super::request_id;
use super::subscribe::{self, accepts_event_stream, Subscribe, PREAMBLE, SSE_HEADERS};
use crate::app::App;

/// The response head: `sse.rs`'s headers, and the connection ends with the
/// stream; then the preamble.
fn response_head(request_id: &str) -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for (name, value) in SSE_HEADERS {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n");
    head.extend_from_slice(format!("{}: {request_id}\r\n\r\n", request_id::HEADER).as_bytes());
    head.extend_from_slice(PREAMBLE);
    head
}

/// A subscription this module can serve, from the first request's head.
pub struct Subscription {
    sub: Subscribe,
    script: Arc<str>,
    request_id: String,
}

/// Is `head` a `GET` asking for `text/event-stream` on a registered stream?
/// (An upgrade request is left to hyper, which can upgrade.)
pub fn subscription(app: &App, head: &[u8]) -> Option<Subscription> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) || req.method != Some("GET") {
        return None;
    }
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if !value("accept").is_some_and(accepts_event_stream) || value("upgrade").is_some() {
        return None;
    }
    let target = req.path?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let table = app.table.load();
    let stream = subscribe::stream_at(&table, path)?;
    let request_id = match value(request_id::HEADER) {
        Some(id) if request_id::is_valid(id.as_bytes()) => id.to_string(),
        _ => request_id::generate(),
    };
    Some(Subscription {
        // Over the caps: hyper answers (414) through `dispatch.rs`.
        sub: Subscribe::new(&stream.path, query, value("last-event-id")).ok()?,
        script: stream.script.name.clone(),
        request_id,
    })
}

/// Serves `sub` on `tcp` until the stream ends, the peer leaves, or a write
/// stalls. `Err` gives the connection back when the hub refuses (hyper then
/// answers with the proper status).
pub async fn serve(app: &App, tcp: TcpStream, sub: Subscription) -> Result<(), TcpStream> {
    let path = sub.sub.path.clone();
    let Ok(frames) = sub.sub.open(&app.hub) else {
        return Err(tcp);
    };
    tracing::debug!(stream = %path, request_id = %sub.request_id, "subscriber connected");
    app.metrics.request(&sub.script, &path, "GET", 200, None);
    let stall = app.settings.write_stall;
    let mut tcp = Connection::new(BytesMut::new(), tcp, stall, app.metrics.write_stalls());
    if tcp
        .write_all(&response_head(&sub.request_id))
        .await
        .is_err()
    {
        return Ok(());
    }
    let live = subscribe::sse_frames(frames, app.settings.keep_alive);
    let mut live = std::pin::pin!(live);
    let mut peer_gone = [0u8; 1];
    loop {
        let out: Bytes = tokio::select! {
            frame = live.next() => match frame {
                Some(bytes) => bytes,
                None => break, // the stream went away, or we lagged too far
            },
            // A subscriber only ever sends its request; a read that returns
            // means it closed (or misbehaves): either way, we are done.
            _ = tcp.read(&mut peer_gone) => break,
        };
        if tcp.write_all(&out).await.is_err() {
            break; // the peer is gone, or stalled (counted by `Connection`)
        }
    }
    let _ = tcp.shutdown().await;
    Ok(())
}
