//! Turning outcomes into HTTP responses, in exactly one place.

use std::convert::Infallible;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use crate::limits::Limit;
use crate::script::CallError;

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

/// The response for a call into `script` that produced no response of its own.
pub fn call_error(script: &str, route: &str, error: CallError) -> Response {
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
        CallError::Restarting(wait) => {
            let mut res = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("script {script} is restarting after repeated failures; retry shortly\n"),
            );
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            res
        }
        CallError::Trap(why) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("script {script} crashed: {why}\n"),
        ),
        CallError::Busy => {
            tracing::warn!(script, route, "queue full; answering 503");
            let mut res = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("script {script} is overloaded; retry shortly\n"),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res
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

/// A WebSocket handshake that cannot be completed.
pub fn websocket_refused(status: StatusCode, why: &str) -> Response {
    let mut res = text(status, format!("{why}\n"));
    if status == StatusCode::UPGRADE_REQUIRED {
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    res
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

/// `/_engine` closed (non-loopback listener, no admin token); `hint` says how to open it.
pub fn forbidden(hint: String) -> Response {
    text(StatusCode::FORBIDDEN, hint)
}

/// `/_engine` without the right admin token.
pub fn unauthorized() -> Response {
    let mut res = text(
        StatusCode::UNAUTHORIZED,
        "this path needs the admin token: send \"Authorization: Bearer TOKEN\"\n",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"aiwebengine\""),
    );
    res
}
