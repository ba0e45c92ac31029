//! The response of a stream subscription: `text/event-stream`, one frame per
//! broadcast, shared bytes from the hub.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use super::reply;
use crate::app::App;
use crate::registry::StreamRoute;

/// Sent first on every connection: how long EventSource waits before reconnecting.
const PREAMBLE: &[u8] = b"retry: 2000\n\n";

pub fn subscribe(app: &App, stream: &StreamRoute, head: bool) -> Response {
    let Some(frames) = app.hub.subscribe(&stream.path) else {
        return reply::text(
            StatusCode::NOT_FOUND,
            format!("no stream at {}\n", stream.path),
        );
    };
    tracing::debug!(stream = %stream.path, script = %stream.script.name, "subscriber connected");
    let mut res = if head {
        Response::new(Bytes::new().into())
    } else {
        let body = futures_util::stream::once(async { Bytes::from_static(PREAMBLE) })
            .chain(frames)
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
