//! The operator's endpoints: `GET /_engine/metrics` (Prometheus text format),
//! `GET /_engine/health/live` and `GET /_engine/health/ready`.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::reply::{self, Failure};
use crate::app::App;
use crate::metrics::{self, Snapshot};

pub fn routes(
    app: impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let get = || warp::get().or(warp::head()).unify();
    let metrics = warp::path!("_engine" / "metrics")
        .and(get())
        .and(app.clone())
        .map(|app: Arc<App>| {
            let mut res = Response::new(app.metrics.render(snapshot(&app)).into());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            res
        });
    let live = warp::path!("_engine" / "health" / "live")
        .and(get())
        .map(|| reply::json(StatusCode::OK, &json!({ "live": true })));
    let ready = warp::path!("_engine" / "health" / "ready")
        .and(get())
        .and(app)
        .map(
            |app: Arc<App>| match app.health.state().not_ready_reason() {
                None => reply::json(StatusCode::OK, &json!({ "ready": true })),
                Some(reason) => Failure::NotReady(reason).into(),
            },
        );
    metrics.or(live).unify().or(ready).unify()
}

/// The state gauges, read from the app now.
fn snapshot(app: &App) -> Snapshot {
    let table = app.table.load();
    let mut by_status: Vec<(&'static str, i64)> = Vec::new();
    let mut queue_depths = Vec::new();
    for view in app.scripts() {
        let conflicts = table.conflicts.get(&view.name);
        let status = view.status(conflicts.map(Vec::as_slice).unwrap_or_default());
        match by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => by_status.push((status, 1)),
        }
        if let Some(live) = &view.live {
            queue_depths.push((view.name.clone(), live.queued() as i64));
        }
    }
    let subscribers = table
        .stream_paths()
        .map(|path| (path.to_string(), app.hub.subscriber_count(path) as i64))
        .collect();
    let storage = app
        .storage
        .usages()
        .into_iter()
        .map(|(namespace, usage)| (namespace, usage.keys as i64, usage.bytes as i64))
        .collect();
    Snapshot {
        scripts_by_status: by_status,
        queue_depths,
        subscribers,
        storage,
        cluster: app
            .cluster
            .as_ref()
            .map(|c| (c.link.is_up(), c.nodes().len() as i64)),
    }
}
