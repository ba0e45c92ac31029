//! The last line of defence for a request: a panic anywhere while answering it
//! (a host bug reachable from a request or a script's answer) becomes a logged
//! error and a 500 for that request, instead of a connection hyper drops
//! without a word. Nothing shared is left half-updated by such a panic: shared
//! state lives behind locks that are taken with `PoisonError::into_inner`, and
//! the route table is swapped whole.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use warp::http::StatusCode;
use warp::reply::Response;

use super::reply;

/// Runs `answer`; a panic inside it becomes a 500.
pub async fn catch(answer: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            tracing::error!(
                panic = %panic_message(panic.as_ref()),
                "internal error while answering a request"
            );
            reply::text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
        }
    }
}

/// The text a panic was raised with, when it has one.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_while_answering_is_a_500() {
        let res = catch(async {
            let v: Vec<u8> = Vec::new();
            let _ = v.get(3).expect("a host bug");
            reply::text(StatusCode::OK, "unreachable")
        })
        .await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let res = catch(async { reply::text(StatusCode::OK, "fine") }).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}
