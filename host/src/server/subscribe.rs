//! The one subscription path that SSE and WebSocket share: read what a
//! subscriber asks for (its query as filter parameters, where to resume),
//! open it on the hub (caps, replay, lag), and the answer when the hub refuses.

use std::sync::Arc;

use futures_util::Stream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;

use super::reply;
use crate::streams::{Frame, Hub, Lagged, Params, SubscribeError, Transport};

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
    /// and `MAX_QUERY_PARAMS` pairs, else `Err` with the reason (answered 414).
    /// Without this, a query of 30 KB of `&` cost a subscriber ~1 MiB.
    pub fn new(path: &str, query: &str, last_event_id: Option<&str>) -> Result<Subscribe, String> {
        let too_long = || {
            format!(
                "a stream subscription's query may hold at most {MAX_QUERY_BYTES} bytes \
                 and {MAX_QUERY_PARAMS} parameters\n"
            )
        };
        if query.len() > MAX_QUERY_BYTES {
            return Err(too_long());
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
                return Err(too_long());
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
    pub fn from_headers(path: &str, query: &str, headers: &HeaderMap) -> Result<Subscribe, String> {
        let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
        Subscribe::new(path, query, header)
    }

    /// Opens the subscription (`refusal` answers an error).
    pub fn open(
        self,
        hub: &Hub,
        transport: Transport,
    ) -> Result<impl Stream<Item = Result<Arc<Frame>, Lagged>> + Send + 'static, SubscribeError>
    {
        hub.subscribe_frames(&self.path, self.last_event_id, self.params, transport)
    }
}

/// The response when the hub refuses a subscriber.
pub fn refusal(path: &str, error: SubscribeError) -> Response {
    match error {
        SubscribeError::NoStream => {
            reply::text(StatusCode::NOT_FOUND, format!("no stream at {path}\n"))
        }
        SubscribeError::TooMany(why) => {
            tracing::warn!(stream = %path, "refusing a subscriber: {why}");
            let mut res = reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{why}; retry later\n"),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            res
        }
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
