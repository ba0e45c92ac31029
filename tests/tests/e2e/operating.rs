//! What an operator relies on: Prometheus metrics after known traffic (checked
//! by `promtool`), request ids, health, and the `/_engine` access policy.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{eventually, fixture, JsonValue, RawSubscriber, Sse, TestServer, TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCRIPT: &str = "ops.js";

async fn ops() -> TestServer {
    ops_with(|_| {}).await
}

async fn ops_with(tweak: impl FnOnce(&mut aiwebengine::Settings)) -> TestServer {
    TestServer::start_with(&[(SCRIPT, &fixture("operating.js"))], tweak).await
}

/// One sample of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of the text format (our label values hold no
/// quotes, commas or braces).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

struct Scrape(Vec<Sample>);

impl Scrape {
    /// The value of the series `name` with exactly `labels`; 0 when absent
    /// (a counter never bumped is not exported yet).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map_or(0.0, |s| s.value)
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }
}

/// `promtool`, installed by `tools/promtool.sh` when missing.
fn promtool() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/promtool.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("running tools/promtool.sh");
    assert!(
        out.status.success(),
        "tools/promtool.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Checks `text` with `promtool check metrics` (format and naming lints).
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the exposition:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn scrape(server: &TestServer) -> Scrape {
    let res = server.get("/_engine/metrics").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape(parse(&res.text().await.unwrap()))
}

fn requests(script: &str, route: &str, method: &str, class: &str) -> [(&'static str, String); 4] {
    [
        ("script", script.to_string()),
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status_class", class.to_string()),
    ]
}

fn labels<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

const REQUESTS: &str = "aiwebengine_http_requests_total";

#[tokio::test]
async fn metrics_after_known_traffic_are_counted_by_route_pattern_and_pass_promtool() {
    // With wasm fuel as the CPU limit (the default is QuickJS's budget), so
    // the fuel counter has something to count.
    let server = ops_with(|s| {
        s.limits.fuel = 300_000_000;
        s.limits.cpu_budget = 0;
    })
    .await;
    for id in 1..=3 {
        assert_eq!(server.get_text(&format!("/ops/items/{id}")).await.0, 200);
    }
    assert_eq!(server.post_text("/ops/fail", "").await.0, 500);
    assert_eq!(server.get_text("/no/such/page").await.0, 404);
    let mut sub = server.subscribe("/ops/feed").await;
    assert_eq!(sub.status, 200);
    let (status, body) = server.post_text("/ops/send?n=1", "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"reached":1}"#));
    assert_eq!(sub.next().await.unwrap().data, r#"{"n":1}"#);
    // Trips the CPU limit (the fuel budget); the instance is re-created.
    assert_eq!(server.get_text("/ops/spin").await.0, 503);
    let text = server.get("/_engine/metrics").await.text().await.unwrap();
    promtool_check(&text);

    eventually("the instance is re-created after the trap", || async {
        scrape(&server)
            .await
            .get("aiwebengine_script_restarts_total", &[("script", SCRIPT)])
            == 1.0
    })
    .await;
    let m = scrape(&server).await;
    let items = requests(SCRIPT, "/ops/items/:id", "GET", "2xx");
    assert_eq!(m.get(REQUESTS, &labels(&items)), 3.0, "by route pattern");
    let fail = requests(SCRIPT, "/ops/fail", "POST", "5xx");
    assert_eq!(m.get(REQUESTS, &labels(&fail)), 1.0);
    let spin = requests(SCRIPT, "/ops/spin", "GET", "5xx");
    assert_eq!(m.get(REQUESTS, &labels(&spin)), 1.0);
    let none = requests("_none", "_none", "GET", "4xx");
    assert_eq!(m.get(REQUESTS, &labels(&none)), 1.0, "unmatched paths");
    let feed = requests(SCRIPT, "/ops/feed", "GET", "2xx");
    assert_eq!(m.get(REQUESTS, &labels(&feed)), 1.0, "the subscription");
    assert_eq!(
        m.get(
            "aiwebengine_http_request_duration_seconds_count",
            &[("script", SCRIPT), ("route", "/ops/items/:id")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "aiwebengine_http_request_duration_seconds_bucket",
            &[
                ("script", SCRIPT),
                ("route", "/ops/items/:id"),
                ("le", "+Inf")
            ]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "aiwebengine_script_limit_trips_total",
            &[("script", SCRIPT), ("kind", "cpu")]
        ),
        1.0
    );
    assert!(
        m.get(
            "aiwebengine_script_fuel_consumed_total",
            &[("script", SCRIPT)]
        ) >= common::test_limits().fuel as f64,
        "the runaway call used its whole budget"
    );
    assert_eq!(
        m.get("aiwebengine_script_queue_depth", &[("script", SCRIPT)]),
        0.0
    );
    assert_eq!(m.get("aiwebengine_scripts", &[("status", "ok")]), 1.0);
    assert_eq!(m.get("aiwebengine_scripts", &[("status", "error")]), 0.0);
    // At least the first load (a watcher event racing the first load may load
    // the same file twice; see hot_reload.rs).
    assert!(m.get("aiwebengine_script_reloads_total", &[("outcome", "ok")]) >= 1.0);
    let stream = [("stream", "/ops/feed")];
    assert_eq!(m.get("aiwebengine_stream_subscribers", &stream), 1.0);
    assert_eq!(m.get("aiwebengine_stream_messages_total", &stream), 1.0);
    let frame = "id: 1\ndata: {\"n\":1}\n\n";
    assert_eq!(
        m.get("aiwebengine_stream_sent_bytes_total", &stream),
        frame.len() as f64
    );
    assert!(m.has("aiwebengine_build_info"));

    drop(sub);
    eventually("the subscriber gauge drops", || async {
        scrape(&server)
            .await
            .get("aiwebengine_stream_subscribers", &stream)
            == 0.0
    })
    .await;
}

#[tokio::test]
async fn a_full_queue_counts_as_an_overload_trip() {
    let server = ops_with(|s| {
        s.queue_depth = 1;
        common::no_cpu_limit(s);
    })
    .await;
    // One runs, one waits in the queue, the rest are refused at once.
    let calls = (0..6).map(|_| server.get_text("/ops/slow?ms=500"));
    let answers = futures_util::future::join_all(calls).await;
    let refused = answers
        .iter()
        .filter(|(status, body)| *status == 503 && body.contains("overloaded"))
        .count();
    assert!(refused >= 1, "{answers:?}");
    let m = scrape(&server).await;
    assert_eq!(
        m.get(
            "aiwebengine_script_limit_trips_total",
            &[("script", SCRIPT), ("kind", "overload")]
        ),
        refused as f64
    );
    let slow_503 = requests(SCRIPT, "/ops/slow", "GET", "5xx");
    assert_eq!(m.get(REQUESTS, &labels(&slow_503)), refused as f64);
}

#[tokio::test]
async fn reloads_and_script_status_are_counted() {
    let server = ops().await;
    server.write("broken.js", "routeRegistry.registerRoute(");
    eventually("the broken script is counted", || async {
        let m = scrape(&server).await;
        m.get("aiwebengine_script_reloads_total", &[("outcome", "error")]) == 1.0
            && m.get("aiwebengine_scripts", &[("status", "error")]) == 1.0
    })
    .await;
    std::fs::remove_file(server.dir.path().join("broken.js")).unwrap();
    eventually("the removal is counted", || async {
        let m = scrape(&server).await;
        m.get(
            "aiwebengine_script_reloads_total",
            &[("outcome", "removed")],
        ) == 1.0
            && m.get("aiwebengine_scripts", &[("status", "error")]) == 0.0
    })
    .await;
    // A version that would take a route from another script is rejected.
    server.write(
        "thief.js",
        "routeRegistry.registerRoute('GET', '/thief', () => ({ body: 'mine' }));",
    );
    eventually("thief.js loads", || async {
        server.get_text("/thief").await.0 == 200
    })
    .await;
    let ok = |m: &Scrape| m.get("aiwebengine_script_reloads_total", &[("outcome", "ok")]);
    let loaded = ok(&scrape(&server).await);
    assert!(loaded >= 2.0, "ops.js and thief.js");
    server.write(
        "thief.js",
        "routeRegistry.registerRoute('GET', '/thief', () => ({ body: 'mine' }));\nrouteRegistry.registerRoute('POST', '/ops/fail', () => ({ body: 'stolen' }));",
    );
    eventually("the rejected version is counted", || async {
        let m = scrape(&server).await;
        m.get(
            "aiwebengine_script_reloads_total",
            &[("outcome", "rejected")],
        ) == 1.0
            && ok(&m) == loaded
    })
    .await;
}

#[tokio::test]
async fn replays_missed_events_and_lagging_subscribers_are_counted() {
    let server = ops_with(|s| {
        s.hub.lag = 4;
        common::no_cpu_limit(s); // serialising 20 MB is honest work
    })
    .await;
    for n in 1..=3 {
        server.post_text(&format!("/ops/send?n={n}"), "").await;
    }
    let mut resumed = Sse::connect(&server.url("/ops/feed"), Some("1")).await;
    assert_eq!(resumed.next().await.unwrap().id.as_deref(), Some("2"));
    let mut lost = Sse::connect(&server.url("/ops/feed"), Some("99")).await;
    assert_eq!(lost.next().await.unwrap().event.as_deref(), Some("missed"));
    let stream = [("stream", "/ops/feed")];
    let m = scrape(&server).await;
    assert_eq!(m.get("aiwebengine_stream_replays_total", &stream), 2.0);
    assert_eq!(m.get("aiwebengine_stream_missed_total", &stream), 1.0);
    assert_eq!(
        m.get("aiwebengine_stream_lag_disconnects_total", &stream),
        0.0
    );
    drop((resumed, lost));
    eventually("no subscribers", || async {
        scrape(&server)
            .await
            .get("aiwebengine_stream_subscribers", &stream)
            == 0.0
    })
    .await;

    // A reader far slower than a 20 MB burst falls more than 4 frames behind.
    let mut slow = RawSubscriber::connect(&server.base, "/ops/feed").await;
    eventually("one subscriber", || async {
        scrape(&server)
            .await
            .get("aiwebengine_stream_subscribers", &stream)
            == 1.0
    })
    .await;
    let (status, _) = server.post_text("/ops/big?n=200&size=100000", "").await;
    assert_eq!(status, 200);
    assert!(
        slow.closed_within(TIMEOUT).await,
        "the lagging subscriber is disconnected"
    );
    let m = scrape(&server).await;
    assert_eq!(
        m.get("aiwebengine_stream_lag_disconnects_total", &stream),
        1.0
    );
    assert_eq!(m.get("aiwebengine_stream_messages_total", &stream), 203.0);
}

#[tokio::test]
async fn a_stalled_connection_is_counted() {
    let server = ops_with(|s| {
        s.write_stall = Duration::from_secs(1);
        common::no_cpu_limit(s);
    })
    .await;
    let mut stalled = RawSubscriber::connect(&server.base, "/ops/feed").await;
    eventually("one subscriber", || async {
        scrape(&server)
            .await
            .get("aiwebengine_stream_subscribers", &[("stream", "/ops/feed")])
            == 1.0
    })
    .await;
    server.post_text("/ops/big?n=200&size=100000", "").await;
    eventually("the stall is counted", || async {
        scrape(&server)
            .await
            .get("aiwebengine_connection_write_stalls_total", &[])
            == 1.0
    })
    .await;
    assert!(stalled.closed_within(TIMEOUT).await);
}

#[tokio::test]
async fn request_ids_are_kept_or_made_echoed_and_seen_by_the_handler() {
    let server = ops().await;
    let whoami = |id: Option<String>| {
        let mut req = server.client.get(server.url("/ops/whoami"));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        async move {
            let res = req.send().await.unwrap();
            let echoed = res.headers()["x-request-id"].to_str().unwrap().to_string();
            let body = res.json_value().await;
            assert_eq!(body["id"], echoed.as_str(), "request.id is the echoed id");
            assert_eq!(
                body["header"],
                echoed.as_str(),
                "and the header the handler sees"
            );
            echoed
        }
    };
    assert_eq!(whoami(Some("abc-123".into())).await, "abc-123");
    let longest = "x".repeat(128);
    assert_eq!(whoami(Some(longest.clone())).await, longest);
    let is_generated = |id: &str| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    for bad in ["x".repeat(129), "has space".to_string()] {
        let id = whoami(Some(bad.clone())).await;
        assert!(is_generated(&id), "{bad:?} replaced by {id:?}");
    }
    let (a, b) = (whoami(None).await, whoami(None).await);
    assert!(is_generated(&a) && is_generated(&b) && a != b, "{a} {b}");

    // Every response carries one: a 404, an engine page, a subscription.
    for path in ["/nope", "/_engine/routes"] {
        let res = server
            .client
            .get(server.url(path))
            .header("x-request-id", "rid-7")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "rid-7", "{path}");
    }
    let addr = server.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET /ops/feed HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nX-Request-Id: sub-1\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&head).contains("\r\n\r\n") {
        let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut buf))
            .await
            .expect("a response head")
            .unwrap();
        assert!(n > 0, "connection closed");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("\r\nx-request-id: sub-1\r\n"), "{head}");
}

#[tokio::test]
async fn health_is_live_and_ready_once_loaded() {
    let server = ops_with(|s| s.admin_token = aiwebengine::admin_token::AdminToken::new("t")).await;
    let res = server.get("/_engine/health/live").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json_value().await, serde_json::json!({ "live": true }));
    let res = server.get("/_engine/health/ready").await;
    assert_eq!(res.status(), 200, "no token needed");
    assert_eq!(res.json_value().await, serde_json::json!({ "ready": true }));
}

#[tokio::test]
async fn an_admin_token_guards_every_engine_path_but_health() {
    let server =
        ops_with(|s| s.admin_token = aiwebengine::admin_token::AdminToken::new("s3cret")).await;
    let get = |path: &'static str, token: Option<&'static str>| {
        let mut req = server.client.get(server.url(path));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        async move { req.send().await.unwrap() }
    };
    for path in [
        "/_engine",
        "/_engine/routes",
        "/_engine/metrics",
        "/%5Fengine/routes",
    ] {
        let res = get(path, None).await;
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"aiwebengine\""
        );
        assert_eq!(get(path, Some("wrong")).await.status(), 401, "{path}");
    }
    for path in ["/_engine", "/_engine/routes", "/_engine/metrics"] {
        assert_eq!(get(path, Some("s3cret")).await.status(), 200, "{path}");
    }
    for path in [
        "/_engine/health/live",
        "/_engine/health/ready",
        "/ops/items/1",
    ] {
        assert_eq!(get(path, None).await.status(), 200, "{path}");
    }
}

/// A server listening on every interface (0.0.0.0), reached through 127.0.0.1.
async fn on_all_interfaces(token: Option<&str>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SCRIPT), fixture("operating.js")).unwrap();
    let mut settings = common::settings(dir.path());
    settings.admin_token = token.and_then(aiwebengine::admin_token::AdminToken::new);
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let engine = aiwebengine::start(listener, settings).await.unwrap();
    TestServer {
        base,
        dir,
        engine,
        client: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap(),
    }
}

#[tokio::test]
async fn a_non_loopback_listener_without_a_token_closes_engine_paths() {
    let server = on_all_interfaces(None).await;
    for path in ["/_engine", "/_engine/routes", "/_engine/metrics"] {
        let (status, body) = server.get_text(path).await;
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("--admin-token"), "a hint: {body}");
    }
    for path in [
        "/_engine/health/live",
        "/_engine/health/ready",
        "/ops/items/1",
    ] {
        assert_eq!(server.get_text(path).await.0, 200, "{path}");
    }

    let server = on_all_interfaces(Some("s3cret")).await;
    let res = server
        .client
        .get(server.url("/_engine/routes"))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a token opens it again");
    assert_eq!(server.get_text("/_engine/routes").await.0, 401);
}

#[tokio::test]
async fn storage_operations_commits_and_usage_are_counted() {
    let kv = fixture("storage_kv.js");
    let server = TestServer::start_with(&[("kv.js", &kv)], |s| {
        s.data_dir = Some(s.scripts_dir.with_extension("data"));
    })
    .await;
    let put = |key: &str, body: &str| {
        server
            .client
            .put(server.url(&format!("/kv/{key}")))
            .body(body.to_string())
            .send()
    };
    assert_eq!(put("a", "1").await.unwrap().status(), 200);
    assert_eq!(put("b", r#""hello""#).await.unwrap().status(), 200);
    assert_eq!(server.get_text("/kv/a").await.0, 200);
    assert_eq!(server.get_text("/kv/missing").await.0, 200);
    let deleted = server.client.delete(server.url("/kv/a")).send().await;
    assert_eq!(deleted.unwrap().status(), 200);
    // Two sets, then a throw: the turn is discarded.
    assert_eq!(server.post_text("/throw", "").await.0, 500);
    // A key over 1024 bytes: storage.get throws a RangeError.
    let long = "k".repeat(1100);
    assert_eq!(server.get_text(&format!("/kv/{long}")).await.0, 500);

    let text = server.get("/_engine/metrics").await.text().await.unwrap();
    promtool_check(&text);
    let m = Scrape(parse(&text));
    let ops = |op: &str| {
        m.get(
            "aiwebengine_storage_operations_total",
            &[("namespace", "kv"), ("op", op)],
        )
    };
    assert_eq!(ops("get"), 3.0, "{text}");
    assert_eq!(ops("set"), 4.0);
    assert_eq!(ops("delete"), 1.0);
    let commits = |outcome: &str| {
        m.get(
            "aiwebengine_storage_commits_total",
            &[("namespace", "kv"), ("outcome", outcome)],
        )
    };
    assert_eq!(commits("ok"), 3.0);
    assert_eq!(commits("discarded"), 1.0);
    assert_eq!(commits("failed"), 0.0);
    assert_eq!(
        m.get(
            "aiwebengine_storage_errors_total",
            &[("namespace", "kv"), ("kind", "range")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "aiwebengine_storage_commit_duration_seconds_count",
            &[("namespace", "kv")]
        ),
        3.0
    );
    // Only "b" = "\"hello\"" is left: one key of 1 + 7 bytes.
    assert_eq!(
        m.get("aiwebengine_storage_keys", &[("namespace", "kv")]),
        1.0
    );
    assert_eq!(
        m.get("aiwebengine_storage_bytes", &[("namespace", "kv")]),
        8.0
    );
}
