//! Outbound `fetch` from scripts, against a local upstream each test starts on
//! 127.0.0.1: round trips, redirects, the allow-list, the loopback refusal,
//! timeouts, the body cap, the concurrency cap, and not blocking the script.

use crate::common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiwebengine::fetch::Rule;
use aiwebengine::Settings;
use bytes::Bytes;
use common::{eventually, fixture, seed_script, JsonValue, TestServer};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

// ---- the upstream ---------------------------------------------------------

#[derive(Default)]
struct Counters {
    /// Requests received in all.
    hits: AtomicUsize,
    /// `/concurrent` requests being answered now, and the most at once.
    now: AtomicUsize,
    max: AtomicUsize,
    /// Bumped by every `/weather`, so each reading differs.
    weather: AtomicUsize,
}

/// A small HTTP server on 127.0.0.1:0 with the endpoints the tests fetch.
struct Upstream {
    addr: SocketAddr,
    counters: Arc<Counters>,
}

type Body = BoxBody<Bytes, Infallible>;

impl Upstream {
    async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counters = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let counters = counters.clone();
                        async move { Ok::<_, Infallible>(answer(req, &counters).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, counters }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// The rule that allows exactly this upstream.
    fn rule(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    fn hits(&self) -> usize {
        self.counters.hits.load(Ordering::SeqCst)
    }
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-upstream", "yes")
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn answer(req: Request<Incoming>, counters: &Counters) -> Response<Body> {
    counters.hits.fetch_add(1, Ordering::SeqCst);
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let number = |key: &str, default: u64| {
        query
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match req.uri().path() {
        "/echo" => {
            let method = req.method().to_string();
            let mut headers = serde_json::Map::new();
            for (name, value) in req.headers() {
                headers.insert(name.to_string(), Value::from(value.to_str().unwrap_or("?")));
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let echo = json!({
                "method": method,
                "query": query,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
                "bytes": body.to_vec(),
            });
            full(200, "application/json", echo.to_string())
        }
        "/json" => full(
            200,
            "application/json",
            json!({"hello": "world", "n": [1, 2, 3]}).to_string(),
        ),
        "/text" => full(
            200,
            "text/plain",
            query.get("text").cloned().unwrap_or_default(),
        ),
        "/status" => full(number("code", 200) as u16, "text/plain", "status body"),
        "/redirect" => Response::builder()
            .status(number("status", 302) as u16)
            .header("location", query.get("to").cloned().unwrap_or_default())
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        "/loop" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "/loop")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(number("ms", 1000))).await;
            full(200, "text/plain", "slow done")
        }
        "/big" => full(
            200,
            "application/octet-stream",
            vec![b'x'; number("bytes", 0) as usize],
        ),
        "/chunked" => {
            // No content-length: the cap must hold while streaming.
            let chunks = (number("bytes", 0) / 100) as usize;
            let stream = futures_util::stream::iter(
                (0..chunks).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; 100])))),
            );
            Response::builder()
                .status(200)
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
        "/concurrent" => {
            let now = counters.now.fetch_add(1, Ordering::SeqCst) + 1;
            counters.max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(number("ms", 100))).await;
            counters.now.fetch_sub(1, Ordering::SeqCst);
            full(200, "text/plain", "ok")
        }
        "/weather" => {
            let n = counters.weather.fetch_add(1, Ordering::SeqCst);
            let body = json!({
                "latitude": 60.17,
                "current": {"temperature_2m": 10 + n, "wind_speed_10m": 3.5},
            });
            full(200, "application/json", body.to_string())
        }
        _ => full(404, "text/plain", "no such upstream path"),
    }
}

// ---- the engine -----------------------------------------------------------

fn rules(list: &[String]) -> Vec<Rule> {
    list.iter().map(|r| Rule::parse(r).unwrap()).collect()
}

/// A server running `fetcher.js` with the given `--allow-outbound` rules.
async fn engine(allow: &[String], tweak: impl FnOnce(&mut Settings)) -> TestServer {
    let allow = rules(allow);
    TestServer::start_with(&[("fetcher.js", &fixture("fetcher.js"))], move |s| {
        // No hot reload: a reload would cancel the fetches in flight.
        s.watch = false;
        s.fetch.allow = allow;
        tweak(s);
    })
    .await
}

/// Asks the script to fetch `url` with `init`; the summary of the Response
/// (status 200) or of the rejection (status 502).
async fn fetch_via(server: &TestServer, url: &str, init: Value, read: &str) -> (u16, Value) {
    let res = server
        .post(
            "/fetch",
            json!({"url": url, "init": init, "read": read}).to_string(),
        )
        .await;
    (res.status().as_u16(), res.json_value().await)
}

/// The rejection message of a fetch that must fail.
async fn rejection(server: &TestServer, url: &str, init: Value) -> String {
    let (status, v) = fetch_via(server, url, init, "text").await;
    assert_eq!(status, 502, "expected a rejection, got {v}");
    assert_eq!(v["name"], "TypeError", "{v}");
    v["error"].as_str().unwrap().to_string()
}

// ---- the tests ------------------------------------------------------------

#[tokio::test]
async fn get_and_post_round_trip_headers_and_bodies() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |_| {}).await;

    let (status, v) = fetch_via(
        &server,
        &up.url("/echo?x=1"),
        json!({"headers": {"X-Custom": "abc"}}),
        "json",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["status"].as_u64(), v["ok"].as_bool()),
        (Some(200), Some(true))
    );
    assert_eq!(v["statusText"], "OK");
    let echo = &v["json"];
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["query"]["x"], "1");
    assert_eq!(echo["headers"]["x-custom"], "abc");
    let ua = echo["headers"]["user-agent"].as_str().unwrap();
    assert!(ua.starts_with("aiwebengine/"), "{ua}");
    assert_eq!(v["headers"]["x-upstream"], "yes");
    assert_eq!(v["bodyUsed"], true);

    // POST with a string body and headers given as pairs; the script's own User-Agent wins.
    let (_, v) = fetch_via(
        &server,
        &up.url("/echo"),
        json!({"method": "post", "body": "hello ☃",
               "headers": [["content-type", "text/x-test"], ["user-agent", "mine/1"]]}),
        "json",
    )
    .await;
    let echo = &v["json"];
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], "hello ☃");
    assert_eq!(echo["headers"]["content-type"], "text/x-test");
    assert_eq!(echo["headers"]["user-agent"], "mine/1");

    // A string body without a content type gets text/plain, as in browsers.
    let (_, v) = fetch_via(
        &server,
        &up.url("/echo"),
        json!({"method": "PUT", "body": "x"}),
        "json",
    )
    .await;
    assert_eq!(v["json"]["method"], "PUT");
    assert_eq!(
        v["json"]["headers"]["content-type"],
        "text/plain;charset=UTF-8"
    );

    // Bytes go out as they are.
    let (_, v) = fetch_via(
        &server,
        &up.url("/echo"),
        json!({"method": "POST", "bodyBytes": [0, 159, 146, 150, 255]}),
        "json",
    )
    .await;
    assert_eq!(v["json"]["bytes"], json!([0, 159, 146, 150, 255]));
}

#[tokio::test]
async fn responses_read_as_json_text_or_bytes() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |_| {}).await;
    let (_, v) = fetch_via(&server, &up.url("/json"), json!({}), "json").await;
    assert_eq!(v["json"], json!({"hello": "world", "n": [1, 2, 3]}));
    assert_eq!(v["headers"]["content-type"], "application/json");
    assert_eq!(v["redirected"], false);
    assert_eq!(v["url"], up.url("/json"));

    let (status, v) = fetch_via(&server, &up.url("/status?code=404"), json!({}), "text").await;
    assert_eq!(status, 200, "a 404 upstream is a response, not a rejection");
    assert_eq!(v["status"], 404);
    assert_eq!(v["ok"], false);
    assert_eq!(v["statusText"], "Not Found");
    assert_eq!(v["text"], "status body");

    let (_, v) = fetch_via(&server, &up.url("/big?bytes=5"), json!({}), "bytes").await;
    assert_eq!(v["bytes"], json!([120, 120, 120, 120, 120]));

    // Headers and Response also work on their own.
    let v = server.get("/classes").await.json_value().await;
    assert_eq!(
        v,
        json!({"a": "1, 2", "hasB": true, "keys": ["b", "x-a"], "status": 201, "ok": true,
               "header": "y", "text": "hi", "usedAgain": "TypeError"})
    );
}

#[tokio::test]
async fn redirects_are_followed_and_every_hop_is_checked() {
    let up = Upstream::start().await;
    let localhost = format!("http://localhost:{}", up.port());
    let server = engine(&[up.rule()], |_| {}).await;

    let (_, v) = fetch_via(&server, &up.url("/redirect?to=/echo"), json!({}), "json").await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["url"], up.url("/echo"));
    assert_eq!(v["redirected"], true);
    assert_eq!(v["json"]["method"], "GET");

    // 303 turns a POST into a GET without a body; 307 keeps both.
    let see_other = up.url("/redirect?status=303&to=/echo");
    let (_, v) = fetch_via(
        &server,
        &see_other,
        json!({"method": "POST", "body": "b"}),
        "json",
    )
    .await;
    assert_eq!(
        (&v["json"]["method"], &v["json"]["body"]),
        (&json!("GET"), &json!(""))
    );
    let temporary = up.url("/redirect?status=307&to=/echo");
    let (_, v) = fetch_via(
        &server,
        &temporary,
        json!({"method": "POST", "body": "b"}),
        "json",
    )
    .await;
    assert_eq!(
        (&v["json"]["method"], &v["json"]["body"]),
        (&json!("POST"), &json!("b"))
    );

    // A hop to a destination the list does not allow rejects, before any request to it.
    let to_other = up.url(&format!(
        "/redirect?to={}",
        url::form_urlencoded::byte_serialize(format!("{localhost}/echo").as_bytes())
            .collect::<String>()
    ));
    let error = rejection(&server, &to_other, json!({})).await;
    assert!(
        error.contains("redirect to") && error.contains("not allowed"),
        "{error}"
    );
    let error = rejection(
        &server,
        &up.url("/redirect?to=http://example.invalid/x"),
        json!({}),
    )
    .await;
    assert!(
        error.contains("redirect to http://example.invalid"),
        "{error}"
    );

    let before = up.hits();
    let error = rejection(&server, &up.url("/loop"), json!({})).await;
    assert!(error.contains("too many redirects"), "{error}");
    assert_eq!(up.hits() - before, 11, "the first request and 10 redirects");
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let up = Upstream::start().await;
    let localhost = format!("http://localhost:{}", up.port());
    let server = engine(&[up.rule(), localhost.clone()], |_| {}).await;
    let init = json!({"headers": {"authorization": "Bearer secret", "x-other": "kept"}});
    let same = up.url("/redirect?to=/echo");
    let (_, v) = fetch_via(&server, &same, init.clone(), "json").await;
    assert_eq!(v["json"]["headers"]["authorization"], "Bearer secret");
    let other = up.url(&format!("/redirect?to={localhost}/echo"));
    let (_, v) = fetch_via(&server, &other, init, "json").await;
    assert_eq!(v["url"], format!("{localhost}/echo"));
    assert!(v["json"]["headers"].get("authorization").is_none(), "{v}");
    assert_eq!(v["json"]["headers"]["x-other"], "kept");
}

#[tokio::test]
async fn destinations_not_on_the_list_are_refused() {
    let up = Upstream::start().await;
    let server = engine(&[], |_| {}).await;
    let error = rejection(&server, &up.url("/echo"), json!({})).await;
    assert!(error.starts_with("TypeError: fetch failed:"), "{error}");
    assert!(
        error.contains("no outbound destination is allowed"),
        "{error}"
    );

    let other_port = format!("http://127.0.0.1:{}", up.port() as u32 + 1);
    let server = engine(&[other_port, "https://*.example.com".into()], |_| {}).await;
    let error = rejection(&server, &up.url("/echo"), json!({})).await;
    assert!(error.contains("not allowed by --allow-outbound"), "{error}");
    let error = rejection(&server, "http://api.example.com/", json!({})).await;
    assert!(error.contains("not allowed"), "http is not https: {error}");
    let error = rejection(&server, "file:///etc/passwd", json!({})).await;
    assert!(error.contains("only http and https"), "{error}");
    assert_eq!(up.hits(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn loopback_is_refused_unless_a_rule_names_it() {
    let up = Upstream::start().await;
    let port = up.port();
    let server = engine(&["*://*:*".into(), format!("http://*:{port}")], |_| {}).await;
    for (url, class) in [
        (up.url("/echo"), "loopback"),
        (format!("http://127.0.0.2:{port}/echo"), "loopback"),
        (format!("http://[::1]:{port}/echo"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/echo"), "loopback"),
        (format!("http://0.0.0.0:{port}/echo"), "unspecified"),
    ] {
        let error = rejection(&server, &url, json!({})).await;
        assert!(
            error.contains(&format!("a {class} address")),
            "{url}: {error}"
        );
    }
    assert_eq!(up.hits(), 0);

    // Named, it is allowed (the other tests rely on it too).
    let server = engine(&[format!("http://127.0.0.1:{port}")], |_| {}).await;
    let (_, v) = fetch_via(&server, &up.url("/text?text=ok"), json!({}), "text").await;
    assert_eq!(v["text"], "ok");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_named() {
    let up = Upstream::start().await;
    let port = up.port();
    let url = format!("http://localhost:{port}/text?text=via-name");
    let server = engine(&["*://*:*".into()], |_| {}).await;
    let error = rejection(&server, &url, json!({})).await;
    assert!(
        error.contains("localhost is refused: it resolves to") && error.contains("loopback"),
        "{error}"
    );
    assert_eq!(up.hits(), 0);

    let server = engine(&[format!("http://localhost:{port}")], |_| {}).await;
    let (status, v) = fetch_via(&server, &url, json!({}), "text").await;
    assert_eq!((status, &v["text"]), (200, &json!("via-name")), "{v}");
}

#[tokio::test]
async fn a_fetch_past_its_timeout_rejects() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |_| {}).await;
    let started = Instant::now();
    let error = rejection(&server, &up.url("/slow?ms=5000"), json!({"timeout": 200})).await;
    assert!(error.contains("timed out after 200 ms"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn waiting_for_a_fetch_does_not_count_against_the_call_time_limit() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |s| {
        s.limits.timeout = Duration::from_millis(300);
    })
    .await;
    // Two fetches one after the other, each longer than the per-call limit.
    let second = up.url("/slow?ms=600");
    let first = up.url(&format!(
        "/text?text={}",
        url::form_urlencoded::byte_serialize(second.as_bytes()).collect::<String>()
    ));
    let res = server
        .post("/fetch-chain", json!({"url": first}).to_string())
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json_value().await, json!({"text": "slow done"}));
    let (status, v) = fetch_via(&server, &up.url("/slow?ms=800"), json!({}), "text").await;
    assert_eq!((status, &v["text"]), (200, &json!("slow done")), "{v}");
}

#[tokio::test]
async fn a_body_larger_than_the_cap_rejects() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |s| s.fetch.max_bytes = 1000).await;
    let (status, v) = fetch_via(&server, &up.url("/big?bytes=1000"), json!({}), "text").await;
    assert_eq!(status, 200);
    assert_eq!(v["text"].as_str().unwrap().len(), 1000);
    let error = rejection(&server, &up.url("/big?bytes=1001"), json!({})).await;
    assert!(
        error.contains("larger than --fetch-max-bytes (1000)"),
        "{error}"
    );
    let error = rejection(&server, &up.url("/chunked?bytes=5000"), json!({})).await;
    assert!(
        error.contains("larger than --fetch-max-bytes (1000)"),
        "{error}"
    );
}

#[tokio::test]
async fn fetches_beyond_the_concurrency_cap_wait_for_a_slot() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |s| s.fetch.concurrency = 2).await;
    let urls: Vec<String> = (0..6).map(|_| up.url("/concurrent?ms=150")).collect();
    let res = server
        .post("/fetch-all", json!({"urls": urls}).to_string())
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json_value().await,
        json!([200, 200, 200, 200, 200, 200])
    );
    assert_eq!(up.counters.max.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_handler_awaiting_a_slow_fetch_does_not_block_the_script() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |_| {}).await;
    let slow = {
        let client = server.client.clone();
        let url = server.url("/fetch");
        let body = json!({"url": up.url("/slow?ms=1500"), "read": "text"}).to_string();
        tokio::spawn(async move { client.post(url).body(body).send().await.unwrap() })
    };
    eventually("the slow fetch reached the upstream", || async {
        up.hits() == 1
    })
    .await;
    let quick = Instant::now();
    assert_eq!(server.get_text("/quick").await, (200, "quick".into()));
    assert!(
        quick.elapsed() < Duration::from_millis(1000),
        "the script answered another request while its fetch was in flight ({:?})",
        quick.elapsed()
    );
    assert!(!slow.is_finished(), "the slow fetch is still running");
    let res = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json_value().await["text"], "slow done");
}

#[tokio::test]
async fn bad_arguments_reject_and_never_throw() {
    let server = engine(&[], |_| {}).await;
    let v = server.get("/bad-arguments").await.json_value().await;
    let cases = v.as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        assert_eq!(case["name"], "TypeError", "{case}");
    }
    let text = v.to_string();
    for expected in [
        "input must be a URL string",
        "invalid URL",
        "cannot have a body",
        "invalid method",
        "timeout must be a positive number",
        "invalid header name",
        "body must be a string, Uint8Array or ArrayBuffer",
        "cannot be set by a script",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
}

#[tokio::test]
async fn a_timer_callback_can_fetch() {
    let up = Upstream::start().await;
    let server = engine(&[up.rule()], |_| {}).await;
    let mut sse = server.subscribe("/fetched").await;
    let res = server
        .post(
            "/fetch-later",
            json!({"url": up.url("/text?text=from-a-timer")}).to_string(),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        sse.next().await.unwrap().json(),
        json!({"text": "from-a-timer"})
    );
}

#[tokio::test]
async fn the_weather_example_streams_what_changed() {
    let up = Upstream::start().await;
    let source = seed_script("weather.js");
    let upstream_line = source
        .lines()
        .find(|l| l.trim_start().starts_with("\"https://api.open-meteo.com"))
        .expect("weather.js names its upstream");
    let source = source
        .replace(upstream_line, &format!("  {:?};", up.url("/weather")))
        .replace("const POLL_MS = 60000;", "const POLL_MS = 100;");
    let allow = rules(&[up.rule()]);
    let server = TestServer::start_with(&[("weather.js", &source)], move |s| {
        s.watch = false;
        s.fetch.allow = allow;
    })
    .await;
    assert_eq!(up.hits(), 0, "nothing is fetched until asked");
    let mut sse = server.subscribe("/weather/stream").await;
    let v = server.get("/weather/current").await.json_value().await;
    assert_eq!(v["current"]["temperature_2m"], 10, "{v}");
    assert_eq!(v["error"], Value::Null);
    // The first reading, then only what changed at each poll.
    let first = sse.next().await.unwrap().json();
    assert_eq!(first["changed"]["temperature_2m"]["to"], 10, "{first}");
    let next = sse.next().await.unwrap().json();
    assert_eq!(
        next["changed"],
        json!({"temperature_2m": {"from": 10, "to": 11}}),
        "{next}"
    );
    let page = server.get_text("/weather").await;
    assert!(page.1.contains("EventSource(\"/weather/stream\")"));
}

#[tokio::test]
async fn the_weather_example_reports_a_refused_upstream() {
    // Without --allow-outbound the example keeps serving and says why it has no data.
    let server = TestServer::start(&[("weather.js", &seed_script("weather.js"))]).await;
    let (status, text) = server.get_text("/weather/current").await;
    assert_eq!(status, 502);
    let v: Value = serde_json::from_str(&text).unwrap();
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("no outbound destination is allowed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_network_failure_rejects() {
    // A port nothing listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = engine(&[format!("http://127.0.0.1:{port}")], |_| {}).await;
    let error = rejection(&server, &format!("http://127.0.0.1:{port}/"), json!({})).await;
    assert!(
        error.starts_with("TypeError: fetch failed: could not connect"),
        "{error}"
    );
    // The script goes on serving.
    assert_eq!(server.get_text("/quick").await, (200, "quick".into()));
}
