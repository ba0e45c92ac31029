//! The one subscription path that SSE (through hyper or straight on the
//! socket) and WebSocket share: which requests are subscriptions, what a
//! subscriber asks for (its query as filter parameters, where to resume), the
//! stream it names, opening it on the hub (caps, replay, lag), and an SSE
//! subscription's bytes: its head, preamble, frames and keep-alives. (The
//! stalled-peer guard is the socket's, `connection.rs`, for every transport.)

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;
use warp::http::{header, HeaderMap};

use crate::registry::{RouteTable, StreamRoute};
use crate::streams::{Frame, Hub, Lagged, Params, Sink, SinkSubscription, SubscribeError};

/// Sent first on every SSE connection: how long EventSource waits before reconnecting.
pub const PREAMBLE: &[u8] = b"retry: 2000\n\n";
/// Sent on an SSE stream idle for the keep-alive interval.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// The headers of every SSE response.
pub const SSE_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];

/// Does this `Accept` header value ask for an event stream?
pub fn accepts_event_stream(accept: &str) -> bool {
    accept.to_ascii_lowercase().contains("text/event-stream")
}

/// Does a request with these headers ask for an event stream?
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(accepts_event_stream)
}

/// A subscription's SSE frames, and `KEEP_ALIVE` whenever none came for
/// `every`. One timer per subscriber, pushed back with each frame: a later
/// deadline is a lock-free update in tokio, where a fresh `timeout` per frame
/// took the timer wheel's lock twice per subscriber per message.
pub fn sse_frames(
    frames: impl Stream<Item = Result<Arc<Frame>, Lagged>>,
    every: Duration,
) -> impl Stream<Item = Bytes> {
    let idle = tokio::time::interval_at(Instant::now() + every, every);
    tokio_stream::StreamExt::timeout_repeating(crate::streams::sse_bytes(frames), idle)
        .map(|item| item.unwrap_or_else(|_idle| Bytes::from_static(KEEP_ALIVE)))
}

/// The stream registered at `path` (as requested), if any.
pub fn stream_at<'t>(table: &'t RouteTable, path: &'t str) -> Option<&'t StreamRoute> {
    table.lookup(path)?.entry.stream.as_ref()
}

/// The query parameter that resumes a subscription, for clients that cannot
/// send a `Last-Event-ID` header (a browser's WebSocket).
const LAST_EVENT_ID_PARAM: &str = "lastEventId";

/// What a subscriber asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub path: String,
    /// The query pairs (less `lastEventId`), matched against message filters.
    pub params: Params,
    /// Replay what came after this id (`Last-Event-ID`, else `?lastEventId=`).
    pub last_event_id: Option<u64>,
}

/// Longest query string a subscriber may keep for filters, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Most query parameters a subscriber may keep for filters.
pub const MAX_QUERY_PARAMS: usize = 16;

impl Subscribe {
    /// From the stream's path, the raw query and any `Last-Event-ID` header value.
    ///
    /// The query's parameters are kept for the whole connection (filters match
    /// against them), so they are bounded: at most `MAX_QUERY_BYTES` of query
    /// and `MAX_QUERY_PARAMS` pairs, else `Err(QueryTooLong)` (answered 414).
    /// Without this, a query of 30 KB of `&` cost a subscriber ~1 MiB.
    pub fn new(
        path: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Result<Subscribe, QueryTooLong> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(QueryTooLong);
        }
        let mut from_query = None;
        let mut params = Params::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key == LAST_EVENT_ID_PARAM {
                from_query = value.trim().parse().ok();
                continue;
            }
            if key.is_empty() && value.is_empty() {
                continue; // "a&&b": nothing to keep
            }
            if params.len() == MAX_QUERY_PARAMS {
                return Err(QueryTooLong);
            }
            params.push((key.into_owned(), value.into_owned()));
        }
        params.shrink_to_fit();
        Ok(Subscribe {
            path: path.to_string(),
            params,
            last_event_id: last_event_id
                .and_then(|v| v.trim().parse().ok())
                .or(from_query),
        })
    }

    /// The same, taking `Last-Event-ID` from request headers.
    pub fn from_headers(
        path: &str,
        query: &str,
        headers: &HeaderMap,
    ) -> Result<Subscribe, QueryTooLong> {
        let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
        Subscribe::new(path, query, header)
    }

    /// Opens the subscription as SSE (`Failure::Subscribe` answers a refusal).
    pub fn open(
        self,
        hub: &Hub,
    ) -> Result<impl Stream<Item = Result<Arc<Frame>, Lagged>> + Send + 'static, SubscribeError>
    {
        hub.subscribe_frames(&self.path, self.last_event_id, self.params)
    }

    /// Opens the subscription as a WebSocket writing to `sink`.
    pub fn open_sink(self, hub: &Hub, sink: Arc<Sink>) -> Result<SinkSubscription, SubscribeError> {
        hub.subscribe_sink(&self.path, self.last_event_id, self.params, sink)
    }
}

/// A subscription's query over `MAX_QUERY_BYTES` or `MAX_QUERY_PARAMS` (answered 414).
#[derive(Debug)]
pub struct QueryTooLong;

impl fmt::Display for QueryTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a stream subscription's query may hold at most {MAX_QUERY_BYTES} bytes \
             and {MAX_QUERY_PARAMS} parameters"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_point_comes_from_the_header_or_the_query() {
        let s = Subscribe::new("/s", "room=1&lastEventId=7", None).unwrap();
        assert_eq!(s.params, vec![("room".to_string(), "1".to_string())]);
        assert_eq!(s.last_event_id, Some(7));
        let s = Subscribe::new("/s", "lastEventId=7", Some(" 9 ")).unwrap();
        assert_eq!(s.last_event_id, Some(9));
        let s = Subscribe::new("/s", "lastEventId=x&a=%20b", None).unwrap();
        assert_eq!(s.last_event_id, None);
        assert_eq!(s.params, vec![("a".to_string(), " b".to_string())]);
    }
}
