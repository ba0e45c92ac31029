//! The route browser: `GET /_engine` for people, `GET /_engine/routes` for tools.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use crate::app::App;

pub fn routes(
    app: impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let page = warp::path!("_engine")
        .and(warp::get().or(warp::head()).unify())
        .and(app.clone())
        .map(|app: Arc<App>| html_page(&snapshot(&app)));
    let json = warp::path!("_engine" / "routes")
        .and(warp::get().or(warp::head()).unify())
        .and(app)
        .map(|app: Arc<App>| {
            let mut res = Response::new(
                serde_json::to_vec_pretty(&snapshot(&app))
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

/// A script's status: "error" (its newest version failed to load), "conflict"
/// (some of its routes are served by another script) or "ok".
fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Every script with its status, routes and streams, as JSON.
pub fn snapshot(app: &App) -> Value {
    // In cluster mode usage is a Redis call: skip it while Redis is away.
    let redis_down = app.cluster.as_ref().is_some_and(|c| !c.link.is_up());
    let table = app.table.load();
    let scripts: Vec<Value> = app
        .scripts()
        .into_iter()
        .map(|view| {
            let conflicts = table.conflicts.get(&view.name).cloned().unwrap_or_default();
            let routes = view.routes_json(&conflicts);
            let streams = view.streams_json(&conflicts, |path| {
                let all = app.hub.subscriber_count(path);
                let websocket = app.hub.websocket_count(path);
                let mut counts = Map::new();
                counts.insert("subscribers".into(), json!(all));
                counts.insert("websocket".into(), json!(websocket));
                counts.insert("sse".into(), json!(all.saturating_sub(websocket)));
                counts
            });
            let status = view.status(&conflicts);
            let usage = match redis_down {
                true => Err(anyhow::anyhow!("Redis is unreachable")),
                false => app.storage.usage(&view.name),
            };
            let storage = match usage {
                Ok(usage) => json!({ "keys": usage.keys, "bytes": usage.bytes }),
                Err(e) => json!({ "error": format!("{e:#}") }),
            };
            json!({
                "name": view.name,
                "status": status,
                "storage": storage,
                "serving": view.live.is_some(),
                "version": view.version,
                "loadedAt": view.live.as_ref().map(|l| time(l.loaded_at)),
                "error": view.error.as_ref().map(|(e, since)| json!({
                    "message": e.message,
                    "since": time(*since),
                })),
                "routes": routes,
                "streams": streams,
            })
        })
        .collect();
    json!({ "scripts": scripts, "cluster": crate::cluster::status(app.cluster.as_ref()) })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// `Value[key]` gives `Null` for anything missing: it cannot panic.
#[allow(clippy::indexing_slicing)]
fn html_page(snapshot: &Value) -> Response {
    let mut body = String::from(concat!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>aiwebengine routes</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}",
        "table{border-collapse:collapse;width:100%;margin-bottom:1.5em}td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #ddd}",
        ".ok{color:#1a7f37}.error,.conflict{color:#cf222e}pre{background:#f6f8fa;padding:8px;white-space:pre-wrap}</style>",
        "</head><body><h1>aiwebengine</h1><p>Scripts, their routes and streams. JSON: <a href=\"/_engine/routes\">/_engine/routes</a></p>",
    ));
    let cluster = &snapshot["cluster"];
    if cluster["mode"] == "redis" {
        let nodes: Vec<&str> = cluster["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .collect();
        body.push_str(&format!(
            "<p>Cluster node <b>{}</b> over Redis {} — <span class=\"{}\">{}</span>; nodes alive: {}. Subscriber counts are this node's.</p>",
            esc(cluster["node"].as_str().unwrap_or("")),
            esc(cluster["redis"].as_str().unwrap_or("")),
            if cluster["connected"] == true { "ok" } else { "error" },
            if cluster["connected"] == true { "connected" } else { "unreachable, retrying" },
            esc(&nodes.join(", ")),
        ));
    } else {
        body.push_str("<p>Single node: streams and storage are this process's.</p>");
    }
    let scripts = snapshot["scripts"].as_array().cloned().unwrap_or_default();
    if scripts.is_empty() {
        body.push_str(
            "<p>No scripts are loaded. Drop a <code>*.js</code> file into the scripts folder.</p>",
        );
    }
    for s in scripts {
        let status = s["status"].as_str().unwrap_or("");
        body.push_str(&format!(
            "<h2>{} <small class=\"{status}\">{status}</small></h2>",
            esc(s["name"].as_str().unwrap_or(""))
        ));
        if let Some(loaded) = s["loadedAt"].as_str() {
            body.push_str(&format!(
                "<p>version {} loaded {}</p>",
                s["version"],
                esc(loaded)
            ));
        }
        if let Some(msg) = s["error"]["message"].as_str() {
            body.push_str(&format!(
                "<p class=\"error\">load failed at {}{}</p><pre>{}</pre>",
                esc(s["error"]["since"].as_str().unwrap_or("")),
                if s["serving"] == true {
                    "; the previous version keeps serving"
                } else {
                    ""
                },
                esc(msg)
            ));
        }
        if let Some(keys) = s["storage"]["keys"].as_u64() {
            body.push_str(&format!(
                "<p>storage: {keys} keys, {} bytes</p>",
                s["storage"]["bytes"]
            ));
        }
        body.push_str("<table><tr><th>method</th><th>path</th><th></th></tr>");
        for r in s["routes"].as_array().into_iter().flatten() {
            let (method, path) = (
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or(""),
            );
            let shown = if method == "GET" && !path.contains([':', '*']) {
                format!("<a href=\"{0}\">{0}</a>", esc(path))
            } else {
                esc(path)
            };
            let note = r["conflictsWith"]
                .as_str()
                .map(|o| {
                    format!(
                        "<span class=\"conflict\">conflict: served by {}</span>",
                        esc(o)
                    )
                })
                .unwrap_or_default();
            body.push_str(&format!(
                "<tr><td>{}</td><td>{shown}</td><td>{note}</td></tr>",
                esc(method)
            ));
        }
        for st in s["streams"].as_array().into_iter().flatten() {
            let note = st["conflictsWith"]
                .as_str()
                .map(|o| {
                    format!(
                        "<span class=\"conflict\">conflict: served by {}</span>",
                        esc(o)
                    )
                })
                .unwrap_or_else(|| {
                    format!(
                        "{} subscribers ({} SSE, {} WebSocket)",
                        st["subscribers"], st["sse"], st["websocket"]
                    )
                });
            body.push_str(&format!(
                "<tr><td>STREAM</td><td>{}</td><td>{note}</td></tr>",
                esc(st["path"].as_str().unwrap_or(""))
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
