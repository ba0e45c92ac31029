//! A request for a script: find its route, call the script's actor with the
//! request, and answer with what it returned. A GET that asks for
//! `text/event-stream` on a stream path becomes a subscription instead, and
//! one with `Upgrade: websocket` a WebSocket connection.

use std::sync::Arc;

use bytes::Buf;
use futures_util::Stream;
use warp::http::{HeaderMap, Method};
use warp::path::FullPath;
use warp::reply::Response;

use super::convert;
use super::front::{label, Matched};
use super::reply::Failure;
use super::subscribe::{self, Subscribe};
use super::{sse, websocket};
use crate::app::App;

pub async fn handle(
    method: Method,
    path: FullPath,
    query: String,
    headers: HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send,
    app: Arc<App>,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    let table = app.table.load_full();
    let raw_path = path.as_str();
    let Some(found) = table.lookup(raw_path) else {
        return Failure::NoRoute(raw_path.to_string()).into();
    };
    let entry = found.entry;
    let method_name = method.as_str().to_ascii_uppercase();
    let reads = method_name == "GET" || method_name == "HEAD";

    if let Some(stream) = entry.stream.as_ref().filter(|_| reads) {
        if method_name == "GET" && websocket::is_upgrade(&headers) {
            return websocket::upgrade(&app, stream, &query, &headers, on_upgrade);
        }
        if subscribe::wants_event_stream(&headers) || entry.method("GET").is_none() {
            let subscription = match Subscribe::from_headers(&stream.path, &query, &headers) {
                Ok(subscription) => subscription,
                Err(too_long) => return Failure::from(too_long).into(),
            };
            let res = sse::subscribe(&app, stream, subscription, method_name == "HEAD");
            let matched = Matched {
                script: stream.script.name.clone(),
                route: stream.path.clone(),
                registered_method: false,
                timed: false,
            };
            return label(res, matched);
        }
    }

    let route = entry.method(&method_name).or_else(|| {
        (method_name == "HEAD")
            .then(|| entry.method("GET"))
            .flatten()
    });
    let Some(route) = route else {
        return Failure::MethodNotAllowed {
            method: method_name,
            path: raw_path.to_string(),
            allow: entry.allow(),
        }
        .into();
    };

    let body = match convert::read_body(&headers, body, app.settings.max_body_bytes).await {
        Ok(body) => body,
        Err(failure) => return failure.into(),
    };
    let request = convert::to_wit(
        route,
        &found.values,
        &method_name,
        raw_path,
        &query,
        &headers,
        body,
    );
    let script = &route.script.name;
    let answer = match route.script.call(request).await {
        Ok(response) => convert::to_http(script, response, method_name == "HEAD"),
        Err(error) => Err(Failure::Call {
            script: script.to_string(),
            route: route.path.source.clone(),
            error,
        }),
    };
    let matched = Matched {
        script: script.clone(),
        route: route.path.source.clone(),
        registered_method: route.method == method_name,
        timed: true,
    };
    label(answer.unwrap_or_else(Response::from), matched)
}
