//! HTTP ↔ WIT: a request's path, query, headers and body into the WIT
//! `Request` a script's handler gets, and the WIT `Response` it returns into
//! HTTP.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use warp::reply::Response;

use super::reply::Failure;
use super::request_id;
use crate::bindings;
use crate::registry::MethodRoute;

/// Percent-decodes a path piece; bytes that do not form UTF-8 become U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The query's pairs, decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
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

/// The WIT request for `route`: path and parameters (`values`, as matched)
/// percent-decoded, the query as pairs, the headers as lower-case pairs.
pub fn to_wit(
    route: &MethodRoute,
    values: &[&str],
    method: &str,
    raw_path: &str,
    query: &str,
    headers: &HeaderMap,
    body: String,
) -> bindings::Request {
    bindings::Request {
        id: request_id::get(headers),
        handler: route.handler,
        method: method.to_string(),
        path: percent_decode(raw_path),
        query: query_pairs(query),
        headers: header_pairs(headers),
        params: route
            .path
            .params
            .iter()
            .cloned()
            .zip(values.iter().map(|v| percent_decode(v)))
            .collect(),
        body,
    }
}

/// How much of an oversized body is read and discarded before answering 413.
const DRAIN_LIMIT: usize = 16 << 20;

/// Collects the body as UTF-8 text, refusing anything over `limit` bytes
/// (early when Content-Length already says so).
pub async fn read_body(
    headers: &HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
    limit: usize,
) -> Result<String, Failure> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Failure::BodyTooLarge(limit));
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(Failure::BodyUnreadable)?;
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
            return Err(Failure::BodyTooLarge(limit));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            buf.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    String::from_utf8(buf.to_vec()).map_err(|_| Failure::BodyNotUtf8)
}

/// Headers the server computes itself; a script's values would only corrupt framing.
fn is_framing_header(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
}

/// A script's response as HTTP (without its body for a `HEAD`), or why it is unusable.
pub fn to_http(
    script: &str,
    response: bindings::Response,
    head: bool,
) -> Result<Response, Failure> {
    let bad_response = |what| Failure::BadResponse {
        script: script.to_string(),
        what,
    };
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return Err(bad_response(format!(
            "an invalid status {}",
            response.status
        )));
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
            return Err(bad_response(format!("an invalid header {name:?}")));
        };
        if !is_framing_header(&name) {
            res.headers_mut().append(name, value);
        }
    }
    if head {
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    }
    Ok(res)
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
        for (raw, decoded) in [
            ("/a%20b/%C3%A9", "/a b/é"),
            ("100%", "100%"),
            ("%zz%4", "%zz%4"),
            ("%41%4", "A%4"),
        ] {
            assert_eq!(percent_decode(raw), decoded, "{raw}");
        }
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
