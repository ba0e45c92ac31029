//! The response of a stream subscription: `text/event-stream`, a `retry:` line,
//! any replay owed to a reconnecting `Last-Event-ID`, then live frames shared
//! from the hub, with a keep-alive comment whenever the stream is idle.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use warp::http::{header, HeaderValue};
use warp::reply::{Reply, Response};

use super::subscribe::Subscribe;
use crate::app::App;
use crate::registry::StreamRoute;
use crate::streams::Transport;

/// Sent first on every connection: how long EventSource waits before reconnecting.
pub(super) const PREAMBLE: &[u8] = b"retry: 2000\n\n";
/// Sent on a stream idle for the keep-alive interval.
pub(super) const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Does this `Accept` header value ask for an event stream?
pub(super) fn accepts_event_stream(accept: &str) -> bool {
    accept.to_ascii_lowercase().contains("text/event-stream")
}

pub fn subscribe(app: &App, stream: &StreamRoute, subscription: Subscribe, head: bool) -> Response {
    let mut res = if head {
        Response::new(Bytes::new().into())
    } else {
        let frames = match subscription.open(app.hub.as_ref(), Transport::Sse) {
            Ok(frames) => crate::streams::sse_bytes(frames),
            Err(e) => return super::subscribe::refusal(&stream.path, e),
        };
        tracing::debug!(stream = %stream.path, script = %stream.script.name, "subscriber connected");
        let live = tokio_stream::StreamExt::timeout_repeating(
            frames,
            tokio::time::interval_at(
                tokio::time::Instant::now() + app.settings.keep_alive,
                app.settings.keep_alive,
            ),
        )
        .map(|item| item.unwrap_or_else(|_idle| Bytes::from_static(KEEP_ALIVE)));
        let body = futures_util::stream::once(async { Bytes::from_static(PREAMBLE) })
            .chain(live)
            .map(Ok::<_, Infallible>);
        warp::reply::stream(sync_wrapper::SyncStream::new(body)).into_response()
    };
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}
