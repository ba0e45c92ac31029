//! The warp filter tree every request through hyper goes down: the engine's
//! own pages (`/_engine`) first, then the live route table's scripts; warp's
//! rejections end in `reply.rs`.

use std::convert::Infallible;
use std::sync::Arc;

use warp::Filter;

use super::{browser, dispatch, dts, operating, panic_guard, reply, storage_admin};
use crate::app::App;

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let browser = browser::routes(with_app(app.clone()))
        .or(operating::routes(with_app(app.clone())))
        .unify()
        .or(dts::route())
        .unify()
        .or(storage_admin::routes(with_app(app.clone())))
        .unify();
    let scripts = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_app(app))
        .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
        .then(|method, path, query, headers, body, app, on_upgrade| {
            panic_guard::catch(dispatch::handle(
                method, path, query, headers, body, app, on_upgrade,
            ))
        });
    browser
        .or(scripts)
        .unify()
        .recover(reply::rejection)
        .unify()
}
