//! The last line of defence for a request: a panic anywhere while answering it
//! (a host bug reachable from a request or a script's answer) becomes a logged
//! error and a 500 for that request, instead of a connection hyper drops
//! without a word. Nothing shared is left half-updated by such a panic: shared
//! state lives behind locks that are taken with `PoisonError::into_inner`, and
//! the route table is swapped whole.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use warp::reply::Response;

use super::reply::Failure;
use crate::panics::panic_message;

/// Runs `answer`; a panic inside it becomes a 500.
pub async fn catch(answer: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            tracing::error!(
                panic = %panic_message(panic.as_ref()),
                "internal error while answering a request"
            );
            Failure::Panicked.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply;
    use super::*;
    use warp::http::StatusCode;

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
