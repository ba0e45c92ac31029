//! The response of a stream subscription through hyper: `text/event-stream`,
//! a `retry:` line, any replay owed to a reconnecting `Last-Event-ID`, then
//! live frames shared from the hub, with a keep-alive comment whenever the
//! stream is idle.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use warp::http::HeaderValue;
use warp::reply::{Reply, Response};

use super::reply::Failure;
use super::subscribe::{self, Subscribe, PREAMBLE, SSE_HEADERS};
use crate::app::App;
use crate::registry::StreamRoute;

pub fn subscribe(app: &App, stream: &StreamRoute, subscription: Subscribe, head: bool) -> Response {
    let mut res = if head {
        Response::new(Bytes::new().into())
    } else {
        let frames = match subscription.open(app.hub.as_ref()) {
            Ok(frames) => frames,
            Err(error) => {
                let path = stream.path.clone();
                return Failure::Subscribe { path, error }.into();
            }
        };
        tracing::debug!(stream = %stream.path, script = %stream.script.name, "subscriber connected");
        let live = subscribe::sse_frames(frames, app.settings.keep_alive);
        let body = futures_util::stream::once(async { Bytes::from_static(PREAMBLE) })
            .chain(live)
            .map(Ok::<_, Infallible>);
        warp::reply::stream(sync_wrapper::SyncStream::new(body)).into_response()
    };
    for (name, value) in SSE_HEADERS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}
