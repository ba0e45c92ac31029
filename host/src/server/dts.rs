//! `GET /_engine/aiwebengine.d.ts`: the script API's TypeScript declarations
//! (`types/aiwebengine.d.ts`, built into the binary), for editors.

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

/// The declarations, as in `types/aiwebengine.d.ts`.
pub static DECLARATIONS: &str = include_str!("../../../types/aiwebengine.d.ts");

pub fn route() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("_engine" / "aiwebengine.d.ts")
        .and(warp::get().or(warp::head()).unify())
        .map(|| {
            let mut res = Response::new(DECLARATIONS.into());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/typescript; charset=utf-8"),
            );
            res
        })
}
