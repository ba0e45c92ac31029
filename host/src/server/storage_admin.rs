//! `GET|PUT /_engine/storage/SCRIPT`: dump and restore a script's storage on a
//! running server, for `aiwebengine storage dump|restore` (which cannot open
//! the database the server holds). Only callers holding the token the server
//! wrote into its data dir (`server.json`) get in.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::reply::{self, Failure};
use crate::app::App;
use crate::storage::backup;

pub fn routes(
    app: impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let dump = warp::path!("_engine" / "storage" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(app.clone())
        .then(
            |name: String, auth: Option<String>, app: Arc<App>| async move {
                let name = decode(&name);
                if let Err(refused) = check(&app, auth.as_deref()) {
                    return refused.into();
                }
                let storage = app.storage.clone();
                let dumped = tokio::task::spawn_blocking(move || storage.dump(&name)).await;
                match dumped {
                    Ok(Ok(pairs)) => {
                        let mut res = Response::new(backup::to_lines(&pairs).into());
                        res.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/x-ndjson"),
                        );
                        res
                    }
                    Ok(Err(e)) => Failure::StorageFailed(e).into(),
                    Err(e) => Failure::StorageFailed(e.into()).into(),
                }
            },
        );
    let restore = warp::path!("_engine" / "storage" / String)
        .and(warp::put())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(4 << 30))
        .and(warp::body::bytes())
        .and(app)
        .then(
            |name: String, auth: Option<String>, body: Bytes, app: Arc<App>| async move {
                let name = decode(&name);
                if let Err(refused) = check(&app, auth.as_deref()) {
                    return refused.into();
                }
                let Ok(text) = std::str::from_utf8(&body) else {
                    return Failure::BackupNotUtf8.into();
                };
                let pairs = match backup::from_lines(text, app.storage.limits()) {
                    Ok(pairs) => pairs,
                    Err(e) => return Failure::BackupUnreadable(e).into(),
                };
                let count = pairs.len();
                let storage = app.storage.clone();
                let restored =
                    tokio::task::spawn_blocking(move || storage.restore(&name, pairs)).await;
                match restored {
                    Ok(Ok(())) => reply::text(StatusCode::OK, format!("restored {count} keys\n")),
                    Ok(Err(e)) => Failure::StorageFailed(e).into(),
                    Err(e) => Failure::StorageFailed(e.into()).into(),
                }
            },
        );
    dump.or(restore).unify()
}

fn decode(name: &str) -> String {
    url::form_urlencoded::parse(format!("n={name}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn check(app: &App, auth: Option<&str>) -> Result<(), Failure> {
    match &app.storage.admin {
        Some(admin) if admin.authorised(auth) => Ok(()),
        Some(_) => Err(Failure::StorageTokenNeeded),
        None => Err(Failure::StorageInMemory),
    }
}
