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

impl Subscribe {
    /// From the stream's path, the raw query and any `Last-Event-ID` header value.
    pub fn new(path: &str, query: &str, last_event_id: Option<&str>) -> Subscribe {
        let mut from_query = None;
        let params = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .filter(|(k, v)| {
                if k == LAST_EVENT_ID_PARAM {
                    from_query = v.trim().parse().ok();
                    return false;
                }
                true
            })
            .collect();
        Subscribe {
            path: path.to_string(),
            params,
            last_event_id: last_event_id
                .and_then(|v| v.trim().parse().ok())
                .or(from_query),
        }
    }

    /// The same, taking `Last-Event-ID` from request headers.
    pub fn from_headers(path: &str, query: &str, headers: &HeaderMap) -> Subscribe {
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
        let s = Subscribe::new("/s", "room=1&lastEventId=7", None);
        assert_eq!(s.params, vec![("room".to_string(), "1".to_string())]);
        assert_eq!(s.last_event_id, Some(7));
        let s = Subscribe::new("/s", "lastEventId=7", Some(" 9 "));
        assert_eq!(s.last_event_id, Some(9));
        let s = Subscribe::new("/s", "lastEventId=x&a=%20b", None);
        assert_eq!(s.last_event_id, None);
        assert_eq!(s.params, vec![("a".to_string(), " b".to_string())]);
    }
}
