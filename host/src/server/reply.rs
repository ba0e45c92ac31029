//! Turning outcomes into HTTP responses, in exactly one place: every way a
//! request fails — a script's call error, a refused subscription or upgrade,
//! a cap, a closed `/_engine`, not ready yet — is a [`Failure`], and
//! `Response::from(failure)` gives its status, headers and body. The few
//! refusals written on a socket before hyper has it (too many connections, an
//! oversized first head) are an [`Early`], in wire form.

use std::convert::Infallible;

use serde_json::json;
use warp::http::{header, HeaderName, HeaderValue, StatusCode};
use warp::reply::Response;

use super::subscribe::QueryTooLong;
use crate::limits::Limit;
use crate::script::CallError;
use crate::streams::SubscribeError;

/// Why a request is answered with an error.
#[derive(Debug)]
pub enum Failure {
    /// No route at this path (404).
    NoRoute(String),
    /// The path has routes, not for this method (405, with `Allow`).
    MethodNotAllowed {
        method: String,
        path: String,
        allow: String,
    },
    /// The request body is over the limit, in bytes (413).
    BodyTooLarge(usize),
    /// The request body could not be read (400).
    BodyUnreadable(warp::Error),
    /// The request body is not UTF-8 (400).
    BodyNotUtf8,
    /// A call into `script` produced no response of its own.
    Call {
        script: String,
        route: String,
        error: CallError,
    },
    /// `script` returned a response HTTP cannot carry (`what`: "an invalid status 1000").
    BadResponse { script: String, what: String },
    /// A subscription's query is over the caps (414).
    QueryTooLong(QueryTooLong),
    /// The hub refused a subscriber at `path`.
    Subscribe { path: String, error: SubscribeError },
    /// A WebSocket handshake with a version other than 13 (426).
    WebSocketVersion,
    /// A WebSocket handshake without `Sec-WebSocket-Key` (400).
    WebSocketKeyMissing,
    /// A WebSocket handshake on a connection hyper cannot upgrade (400).
    NotUpgradable,
    /// `/_engine` closed (non-loopback listener, no admin token); the hint says how to open it.
    Forbidden(String),
    /// `/_engine` without the right admin token.
    Unauthorized,
    /// Not ready to serve (loading, shutting down): the reason.
    NotReady(&'static str),
    /// `/_engine/storage/…` without the data dir's token.
    StorageTokenNeeded,
    /// `/_engine/storage/…` on a server without a data dir.
    StorageInMemory,
    /// A restore body that is not UTF-8.
    BackupNotUtf8,
    /// A restore body that is not a dump.
    BackupUnreadable(anyhow::Error),
    /// Dumping or restoring failed.
    StorageFailed(anyhow::Error),
    /// A panic while answering (a host bug).
    Panicked,
}

impl From<QueryTooLong> for Failure {
    fn from(e: QueryTooLong) -> Failure {
        Failure::QueryTooLong(e)
    }
}

impl From<Failure> for Response {
    fn from(failure: Failure) -> Response {
        match failure {
            Failure::NoRoute(path) => text(StatusCode::NOT_FOUND, format!("no route for {path}\n")),
            Failure::MethodNotAllowed {
                method,
                path,
                allow,
            } => {
                let mut res = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} is not allowed on {path}\n"),
                );
                if let Ok(allow) = HeaderValue::from_str(&allow) {
                    res.headers_mut().insert(header::ALLOW, allow);
                }
                res
            }
            Failure::BodyTooLarge(limit) => text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes\n"),
            ),
            Failure::BodyUnreadable(e) => text(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}\n"),
            ),
            Failure::BodyNotUtf8 => text(
                StatusCode::BAD_REQUEST,
                "the request body is not valid UTF-8\n",
            ),
            Failure::Call {
                script,
                route,
                error,
            } => call_error(&script, &route, error),
            Failure::BadResponse { script, what } => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("script {script} returned {what}\n"),
            ),
            Failure::QueryTooLong(e) => text(StatusCode::URI_TOO_LONG, format!("{e}\n")),
            Failure::Subscribe { path, error } => match error {
                SubscribeError::NoStream => {
                    text(StatusCode::NOT_FOUND, format!("no stream at {path}\n"))
                }
                SubscribeError::TooMany(why) => {
                    tracing::warn!(stream = %path, "refusing a subscriber: {why}");
                    retry_after(
                        text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("{why}; retry later\n"),
                        ),
                        HeaderValue::from_static("5"),
                    )
                }
            },
            Failure::WebSocketVersion => {
                let version = HeaderValue::from_static("13");
                let res = text(
                    StatusCode::UPGRADE_REQUIRED,
                    "only WebSocket version 13 is spoken here\n",
                );
                with_header(res, header::SEC_WEBSOCKET_VERSION, version)
            }
            Failure::WebSocketKeyMissing => {
                text(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing\n")
            }
            Failure::NotUpgradable => text(
                StatusCode::BAD_REQUEST,
                "this connection cannot be upgraded\n",
            ),
            Failure::Forbidden(hint) => text(StatusCode::FORBIDDEN, hint),
            Failure::Unauthorized => with_header(
                text(
                    StatusCode::UNAUTHORIZED,
                    "this path needs the admin token: send \"Authorization: Bearer TOKEN\"\n",
                ),
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"aiwebengine\""),
            ),
            Failure::NotReady(reason) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "ready": false, "reason": reason }),
            ),
            Failure::StorageTokenNeeded => text(
                StatusCode::UNAUTHORIZED,
                "a token from the data dir's server.json is needed\n",
            ),
            Failure::StorageInMemory => text(
                StatusCode::NOT_FOUND,
                "this server keeps storage in memory (no --data-dir)\n",
            ),
            Failure::BackupNotUtf8 => text(StatusCode::BAD_REQUEST, "the body is not UTF-8\n"),
            Failure::BackupUnreadable(e) => text(StatusCode::BAD_REQUEST, format!("{e:#}\n")),
            Failure::StorageFailed(e) => {
                tracing::error!("storage dump/restore failed: {e:#}");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("storage failed: {e:#}\n"),
                )
            }
            Failure::Panicked => text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
        }
    }
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut res = Response::new(body.into().into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut res = Response::new(value.to_string().into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `res` with one more header.
fn with_header(mut res: Response, name: HeaderName, value: HeaderValue) -> Response {
    res.headers_mut().insert(name, value);
    res
}

/// `res` saying when to retry.
fn retry_after(res: Response, seconds: HeaderValue) -> Response {
    with_header(res, header::RETRY_AFTER, seconds)
}

/// The response for a call into `script` that produced no response of its own.
fn call_error(script: &str, route: &str, error: CallError) -> Response {
    match error {
        CallError::Exception(e) => {
            let message = crate::script::located_message(script, &e);
            match &e.stack {
                Some(stack) => tracing::error!(script, route, "handler threw {message}\n{stack}"),
                None => tracing::error!(script, route, "handler threw {message}"),
            }
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("script {script} failed: {message}\n"),
            )
        }
        CallError::Limit(limit) => {
            let status = match limit {
                Limit::Time => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            text(
                status,
                format!("script {script} exceeded {}\n", limit.phrase()),
            )
        }
        CallError::Restarting(wait) => retry_after(
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("script {script} is restarting after repeated failures; retry shortly\n"),
            ),
            HeaderValue::from(wait.as_secs().max(1)),
        ),
        CallError::Trap(why) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("script {script} crashed: {why}\n"),
        ),
        CallError::Busy => {
            tracing::warn!(script, route, "queue full; answering 503");
            retry_after(
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("script {script} is overloaded; retry shortly\n"),
                ),
                HeaderValue::from_static("1"),
            )
        }
        CallError::Storage(why) => {
            tracing::error!(script, route, "answering 503: storage failed: {why}");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "script {script}: storage failed, nothing of this request was saved: {why}\n"
                ),
            )
        }
        CallError::Cluster(why) => {
            tracing::error!(
                script,
                route,
                "answering 503: a stream message was lost: {why}"
            );
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "script {script}: a stream message it sent did not reach the cluster: {why}\n"
                ),
            )
        }
        CallError::RolledBack => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("script {script}: {}\n", CallError::RolledBack),
        ),
        CallError::Gone => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("script {script} was unloaded while handling the request\n"),
        ),
    }
}

/// Refusals written straight on a socket before hyper sees the connection,
/// which is then closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Early {
    /// Over `--max-connections` (503, retry after a second).
    TooManyConnections,
    /// A first request line over the head cap (414).
    LineTooLong,
    /// A first request head over the cap (431).
    HeadTooLarge,
}

impl Early {
    pub fn status(self) -> StatusCode {
        match self {
            Early::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
            Early::LineTooLong => StatusCode::URI_TOO_LONG,
            Early::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The whole response, as HTTP/1.1 bytes.
    pub fn to_wire(self) -> String {
        let (retry_after, body) = match self {
            Early::TooManyConnections => (
                "retry-after: 1\r\n",
                "the server has too many connections\n",
            ),
            Early::LineTooLong => ("", "the request line is too long\n"),
            Early::HeadTooLarge => ("", "the request head is too large\n"),
        };
        format!(
            "HTTP/1.1 {}\r\ncontent-type: text/plain; charset=utf-8\r\n{retry_after}\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.status(),
            body.len()
        )
    }
}

/// warp's own rejections (only reachable for malformed requests).
pub async fn rejection(r: warp::Rejection) -> Result<Response, Infallible> {
    let status = if r.is_not_found() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(text(status, format!("{r:?}\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_refusals_on_the_wire() {
        assert_eq!(
            Early::TooManyConnections.to_wire(),
            "HTTP/1.1 503 Service Unavailable\r\n\
             content-type: text/plain; charset=utf-8\r\n\
             retry-after: 1\r\n\
             content-length: 36\r\n\
             connection: close\r\n\
             \r\n\
             the server has too many connections\n"
        );
        assert!(Early::LineTooLong
            .to_wire()
            .starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(Early::HeadTooLarge
            .to_wire()
            .starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }
}
