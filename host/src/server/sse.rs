//! The response of a stream subscription: `text/event-stream`, a `retry:` line,
//! any replay owed to a reconnecting `Last-Event-ID`, then live frames shared
//! from the hub, with a keep-alive comment whenever the stream is idle.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use super::reply;
use crate::app::App;
use crate::registry::StreamRoute;
use crate::streams::{Params, SubscribeError};

/// Sent first on every connection: how long EventSource waits before reconnecting.
pub(super) const PREAMBLE: &[u8] = b"retry: 2000\n\n";
/// Sent on a stream idle for the keep-alive interval.
pub(super) const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Does this `Accept` header value ask for an event stream?
pub(super) fn accepts_event_stream(accept: &str) -> bool {
    accept.to_ascii_lowercase().contains("text/event-stream")
}

/// Longest query string a subscriber may keep for filters, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Most query parameters a subscriber may keep for filters.
pub const MAX_QUERY_PARAMS: usize = 16;

/// A subscriber's query parameters, kept for its whole connection (filters
/// match against them), so bounded: at most `MAX_QUERY_BYTES` of query and
/// `MAX_QUERY_PARAMS` pairs, else the subscription is refused (414). Without
/// this, a query of 30 KB of `&` cost a subscriber ~1 MiB of parsed pairs.
pub(super) fn subscriber_params(query: &str) -> Result<Params, String> {
    let too_long = || {
        format!(
            "a stream subscription's query may hold at most {MAX_QUERY_BYTES} bytes \
             and {MAX_QUERY_PARAMS} parameters\n"
        )
    };
    if query.len() > MAX_QUERY_BYTES {
        return Err(too_long());
    }
    let mut params = Params::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key.is_empty() && value.is_empty() {
            continue; // "a&&b": nothing to keep
        }
        if params.len() == MAX_QUERY_PARAMS {
            return Err(too_long());
        }
        params.push((key.into_owned(), value.into_owned()));
    }
    params.shrink_to_fit();
    Ok(params)
}

fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn subscribe(
    app: &App,
    stream: &StreamRoute,
    headers: &HeaderMap,
    params: Params,
    head: bool,
) -> Response {
    let mut res = if head {
        Response::new(Bytes::new().into())
    } else {
        let frames = match app
            .hub
            .subscribe(&stream.path, last_event_id(headers), params)
        {
            Ok(frames) => frames,
            Err(SubscribeError::NoStream) => {
                return reply::text(
                    StatusCode::NOT_FOUND,
                    format!("no stream at {}\n", stream.path),
                )
            }
            Err(SubscribeError::TooMany(why)) => {
                tracing::warn!(stream = %stream.path, "refusing a subscriber: {why}");
                let mut res = reply::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{why}; retry later\n"),
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return res;
            }
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
