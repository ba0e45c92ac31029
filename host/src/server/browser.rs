//! The route browser: `GET /_engine` for people, `GET /_engine/routes` for
//! tools, both rendering the same [`Overview`].

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use super::overview::{ClusterView, Overview, StorageView};
use crate::app::App;

pub fn routes(
    app: impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let page = warp::path!("_engine")
        .and(warp::get().or(warp::head()).unify())
        .and(app.clone())
        .map(|app: Arc<App>| html_page(&Overview::of(&app)));
    let json = warp::path!("_engine" / "routes")
        .and(warp::get().or(warp::head()).unify())
        .and(app)
        .map(|app: Arc<App>| {
            let mut res = Response::new(
                serde_json::to_vec_pretty(&Overview::of(&app))
                    .unwrap_or_default()
                    .into(),
            );
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        });
    page.or(json).unify()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The note beside a registration lost to `owner`.
fn conflict_note(owner: &str) -> String {
    format!(
        "<span class=\"conflict\">conflict: served by {}</span>",
        esc(owner)
    )
}

fn html_page(overview: &Overview) -> Response {
    let mut body = String::from(concat!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>aiwebengine routes</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}",
        "table{border-collapse:collapse;width:100%;margin-bottom:1.5em}td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #ddd}",
        ".ok{color:#1a7f37}.error,.conflict{color:#cf222e}pre{background:#f6f8fa;padding:8px;white-space:pre-wrap}</style>",
        "</head><body><h1>aiwebengine</h1><p>Scripts, their routes and streams. JSON: <a href=\"/_engine/routes\">/_engine/routes</a></p>",
    ));
    match &overview.cluster {
        ClusterView::Redis(cluster) => body.push_str(&format!(
            "<p>Cluster node <b>{}</b> over Redis {} — <span class=\"{}\">{}</span>; nodes alive: {}. Subscriber counts are this node's.</p>",
            esc(&cluster.node),
            esc(&cluster.redis),
            if cluster.connected { "ok" } else { "error" },
            if cluster.connected { "connected" } else { "unreachable, retrying" },
            esc(&cluster.nodes.join(", ")),
        )),
        ClusterView::Single { .. } => {
            body.push_str("<p>Single node: streams and storage are this process's.</p>")
        }
    }
    if overview.scripts.is_empty() {
        body.push_str(
            "<p>No scripts are loaded. Drop a <code>*.js</code> file into the scripts folder.</p>",
        );
    }
    for s in &overview.scripts {
        let status = s.status;
        body.push_str(&format!(
            "<h2>{} <small class=\"{status}\">{status}</small></h2>",
            esc(&s.name)
        ));
        if let Some(loaded) = &s.loaded_at {
            body.push_str(&format!(
                "<p>version {} loaded {}</p>",
                s.version,
                esc(loaded)
            ));
        }
        if let Some(error) = &s.error {
            body.push_str(&format!(
                "<p class=\"error\">load failed at {}{}</p><pre>{}</pre>",
                esc(&error.since),
                if s.serving {
                    "; the previous version keeps serving"
                } else {
                    ""
                },
                esc(&error.message)
            ));
        }
        if let StorageView::Used { bytes, keys } = s.storage {
            body.push_str(&format!("<p>storage: {keys} keys, {bytes} bytes</p>"));
        }
        body.push_str("<table><tr><th>method</th><th>path</th><th></th></tr>");
        for r in &s.routes {
            let shown = if r.method == "GET" && !r.path.contains([':', '*']) {
                format!("<a href=\"{0}\">{0}</a>", esc(&r.path))
            } else {
                esc(&r.path)
            };
            let note = r
                .conflicts_with
                .as_deref()
                .map(conflict_note)
                .unwrap_or_default();
            body.push_str(&format!(
                "<tr><td>{}</td><td>{shown}</td><td>{note}</td></tr>",
                esc(&r.method)
            ));
        }
        for st in &s.streams {
            let note = st
                .conflicts_with
                .as_deref()
                .map(conflict_note)
                .unwrap_or_else(|| {
                    let counts = st.counts.unwrap_or_default();
                    format!(
                        "{} subscribers ({} SSE, {} WebSocket)",
                        counts.subscribers, counts.sse, counts.websocket
                    )
                });
            body.push_str(&format!(
                "<tr><td>STREAM</td><td>{}</td><td>{note}</td></tr>",
                esc(&st.path)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("</body></html>");
    let mut res = Response::new(body.into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}
