//! A request for a script: find its route, read its body, call the script's
//! actor, and turn the answer into an HTTP response. A GET that asks for
//! `text/event-stream` on a stream path becomes a subscription instead, and
//! one with `Upgrade: websocket` a WebSocket connection.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;

use super::front::{label, Matched};
use super::subscribe::Subscribe;
use super::{reply, request_id};
use crate::app::App;
use crate::bindings::Request;

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
        return reply::text(StatusCode::NOT_FOUND, format!("no route for {raw_path}\n"));
    };
    let entry = found.entry;
    let method_name = method.as_str().to_ascii_uppercase();
    let reads = method_name == "GET" || method_name == "HEAD";

    let query_pairs = || -> Vec<(String, String)> {
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    if let Some(stream) = entry.stream.as_ref().filter(|_| reads) {
        if method_name == "GET" && super::websocket::is_upgrade(&headers) {
            return super::websocket::upgrade(&app, stream, &query, &headers, on_upgrade);
        }
        if wants_event_stream(&headers) || entry.method("GET").is_none() {
            let subscription = match Subscribe::from_headers(&stream.path, &query, &headers) {
                Ok(subscription) => subscription,
                Err(why) => return reply::text(StatusCode::URI_TOO_LONG, why),
            };
            let res = super::sse::subscribe(&app, stream, subscription, method_name == "HEAD");
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
        let mut res = reply::text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method_name} is not allowed on {raw_path}\n"),
        );
        if let Ok(allow) = HeaderValue::from_str(&entry.allow()) {
            res.headers_mut().insert(header::ALLOW, allow);
        }
        return res;
    };

    let body = match read_body(&headers, body, app.settings.max_body_bytes).await {
        Ok(body) => body,
        Err(res) => return res,
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return reply::text(
            StatusCode::BAD_REQUEST,
            "the request body is not valid UTF-8\n",
        );
    };

    let request = Request {
        id: request_id::get(&headers),
        handler: route.handler,
        method: method_name.clone(),
        path: percent_decode(raw_path),
        query: query_pairs(),
        headers: header_pairs(&headers),
        params: route
            .path
            .params
            .iter()
            .cloned()
            .zip(found.values.iter().map(|v| percent_decode(v)))
            .collect(),
        body,
    };
    let script = &route.script.name;
    let res = match route.script.call(request).await {
        Ok(response) => to_http(script, response, method_name == "HEAD"),
        Err(e) => reply::call_error(script, &route.path.source, e),
    };
    let matched = Matched {
        script: script.clone(),
        route: route.path.source.clone(),
        registered_method: route.method == method_name,
        timed: true,
    };
    label(res, matched)
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(super::sse::accepts_event_stream)
}

/// Percent-decodes a path piece; bytes that do not form UTF-8 become U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Lower-case names; repeated headers joined with ", " as HTTP allows.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match out.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            None => out.push((name.as_str().to_string(), value.into_owned())),
        }
    }
    out
}

/// How much of an oversized body is read and discarded before answering 413.
const DRAIN_LIMIT: usize = 16 << 20;

/// Collects the body, refusing (413) anything over `limit` bytes, early when
/// Content-Length already says so.
async fn read_body(
    headers: &HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
    limit: usize,
) -> Result<Bytes, Response> {
    let too_large = || {
        reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes\n"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            reply::text(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}\n"),
            )
        })?;
        if buf.len() + chunk.remaining() > limit {
            // Read on (up to a bound) so the client, still sending, sees the 413
            // rather than a reset connection.
            let mut drained = buf.len() + chunk.remaining();
            while drained < DRAIN_LIMIT {
                match body.next().await {
                    Some(Ok(more)) => drained += more.remaining(),
                    _ => break,
                }
            }
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            buf.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Headers the server computes itself; a script's values would only corrupt framing.
fn is_framing_header(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
}

fn to_http(script: &str, response: crate::bindings::Response, head: bool) -> Response {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "script {script} returned an invalid status {}\n",
                response.status
            ),
        );
    };
    let body_len = response.body.len();
    let mut res = Response::new(if head {
        Bytes::new().into()
    } else {
        response.body.into()
    });
    *res.status_mut() = status;
    for (name, value) in response.headers {
        let parsed = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&with_charset(&name, value)),
        );
        let (Ok(name), Ok(value)) = parsed else {
            tracing::warn!(script, header = %name, "script returned an invalid header");
            return reply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("script {script} returned an invalid header {name:?}\n"),
            );
        };
        if !is_framing_header(&name) {
            res.headers_mut().append(name, value);
        }
    }
    if head {
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    }
    res
}

/// `text/*` without a charset is sent as UTF-8, and says so.
fn with_charset(name: &str, value: String) -> String {
    // Byte-wise: a value may hold non-ASCII text, and slicing a `str` mid-character panics.
    let is_text = value
        .as_bytes()
        .get(..5)
        .is_some_and(|start| start.eq_ignore_ascii_case(b"text/"));
    if name.eq_ignore_ascii_case("content-type")
        && is_text
        && !value.to_ascii_lowercase().contains("charset")
    {
        format!("{value}; charset=utf-8")
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_is_added_to_text_types_only() {
        assert_eq!(
            with_charset("Content-Type", "text/html".into()),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            with_charset("content-type", "text/plain; charset=latin1".into()),
            "text/plain; charset=latin1"
        );
        assert_eq!(
            with_charset("content-type", "application/json".into()),
            "application/json"
        );
        assert_eq!(with_charset("x-note", "text/html".into()), "text/html");
        // Non-ASCII values once panicked here (a slice through a character).
        assert_eq!(
            with_charset("content-type", "tëxt/html".into()),
            "tëxt/html"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b/%C3%A9"), "/a b/é");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%4"), "A%4");
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.append("X-B", HeaderValue::from_static("3"));
        assert_eq!(
            header_pairs(&h),
            vec![("x-a".into(), "1, 2".into()), ("x-b".into(), "3".into())]
        );
    }
}
