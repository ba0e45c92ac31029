//! The request/response contract of DESIGN.md, end to end.

use crate::common;

use common::{fixture, JsonValue, TestServer};

async fn api_server() -> TestServer {
    TestServer::start(&[("api.js", &fixture("api.js"))]).await
}

#[tokio::test]
async fn params_query_path_and_method() {
    let server = api_server().await;
    let res = server
        .get("/users/42/files/a/b%20c.txt?x=1&y=h%C3%A9&x=2")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let v = res.json_value().await;
    assert_eq!(v["params"]["id"], "42");
    assert_eq!(v["params"]["rest"], "a/b c.txt");
    assert_eq!(v["query"]["y"], "hé");
    assert_eq!(v["query"]["x"], "2", "the last repeated key wins");
    assert_eq!(v["path"], "/users/42/files/a/b c.txt");
    assert_eq!(v["method"], "GET", "lower-case registration matches GET");
    // Same shape, other method, other parameter names.
    let v = server
        .post("/users/ann/files/x/y", "")
        .await
        .json_value()
        .await;
    assert_eq!(
        (v["who"].as_str(), v["file"].as_str()),
        (Some("ann"), Some("x/y"))
    );
    // A static segment beats a parameter.
    assert_eq!(
        server.get_text("/users/me").await,
        (200, "static beats param".into())
    );
}

#[tokio::test]
async fn headers_in_and_out() {
    let server = api_server().await;
    let res = server
        .client
        .get(server.url("/headers"))
        .header("X-Custom", "v1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-echo"], "v1");
    let v = res.json_value().await;
    assert_eq!(v["custom"], "v1");
    assert_eq!(v["host"], "string");
}

#[tokio::test]
async fn handler_by_global_name() {
    let server = api_server().await;
    assert_eq!(
        server.get_text("/by-name").await,
        (200, "found by name".into())
    );
}

#[tokio::test]
async fn object_body_becomes_json() {
    let server = api_server().await;
    let res = server.get("/object").await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), r#"{"ok":true,"list":[1,2]}"#);
}

#[tokio::test]
async fn async_handlers_are_awaited() {
    let server = api_server().await;
    assert_eq!(
        server.get_text("/async").await,
        (200, r#"{"value":42}"#.into())
    );
    let (status, body) = server.get_text("/async-throws").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("api.js") && body.contains("RangeError: async nope"),
        "{body}"
    );
}

#[tokio::test]
async fn a_throwing_handler_gives_500_naming_script_and_error() {
    let server = api_server().await;
    let (status, body) = server.get_text("/throws").await;
    assert_eq!(status, 500);
    assert!(body.contains("api.js"), "{body}");
    assert!(body.contains("TypeError: nope from handler"), "{body}");
    let (status, body) = server.get_text("/throws-string").await;
    assert_eq!(status, 500);
    assert!(body.contains("a bare string"), "{body}");
    // The script keeps serving.
    assert_eq!(server.get_text("/by-name").await.0, 200);
}

#[tokio::test]
async fn globals_persist_between_requests() {
    let server = api_server().await;
    for expected in 1..=5 {
        assert_eq!(server.get_text("/count").await, (200, expected.to_string()));
    }
}

#[tokio::test]
async fn non_ascii_bodies_are_byte_exact() {
    let server = api_server().await;
    let res = server.get("/unicode").await;
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        "<p>héllo wörld — 日本語 — 📬</p>".as_bytes()
    );
    let sent = "ünïcödé ✓ 𝄞 \u{2028} end";
    let res = server.post("/echo", sent).await;
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.bytes().await.unwrap().as_ref(), sent.as_bytes());
}

#[tokio::test]
async fn binary_bodies_pass_through() {
    let server = api_server().await;
    let res = server.get("/bytes").await;
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &[0u8, 1, 2, 255]);
}

#[tokio::test]
async fn invalid_utf8_body_is_a_400() {
    let server = api_server().await;
    let (status, body) = server.post_text("/echo", vec![0x66u8, 0xff, 0xfe]).await;
    assert_eq!(status, 400);
    assert!(body.contains("UTF-8"), "{body}");
}

#[tokio::test]
async fn oversized_body_is_a_413() {
    let server = TestServer::start_with(&[("api.js", &fixture("api.js"))], |s| {
        s.max_body_bytes = 1000
    })
    .await;
    assert_eq!(server.post_text("/echo", "x".repeat(1000)).await.0, 200);
    assert_eq!(server.post_text("/echo", "x".repeat(1001)).await.0, 413);
    // Without Content-Length (chunked), the limit still holds.
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>("y".repeat(100))));
    let res = server
        .client
        .post(server.url("/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn unknown_path_404_wrong_method_405_with_allow() {
    let server = api_server().await;
    assert_eq!(server.get_text("/nope").await.0, 404);
    let res = server
        .client
        .put(server.url("/users/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "DELETE");
    let res = server
        .client
        .delete(server.url("/users/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = server.client.put(server.url("/echo")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
}

#[tokio::test]
async fn head_is_answered_by_get_routes() {
    let server = api_server().await;
    let res = server
        .client
        .head(server.url("/unicode"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-length"],
        "<p>héllo wörld — 日本語 — 📬</p>".len().to_string()
    );
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_responses_are_500s_not_crashes() {
    let server = api_server().await;
    let (status, body) = server.get_text("/nothing").await;
    assert_eq!(status, 500);
    assert!(body.contains("returned nothing"), "{body}");
    let (status, body) = server.get_text("/bad-status").await;
    assert_eq!(status, 500);
    assert!(body.contains("status"), "{body}");
}

#[tokio::test]
async fn routes_cannot_be_registered_from_a_handler() {
    let server = api_server().await;
    let (status, body) = server.get_text("/late-register").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("only be called while the script loads"),
        "{body}"
    );
    assert_eq!(server.get_text("/sneaky").await.0, 404);
}

#[tokio::test]
async fn the_sandbox_exposes_no_host_capabilities() {
    let server = TestServer::start(&[("sandbox_probe.js", &fixture("sandbox_probe.js"))]).await;
    let v = server.get("/probe").await.json_value().await;
    assert_eq!(v["visible"], serde_json::json!([]), "{v}");
    assert_eq!(v["dynamicImport"], "refused");
    assert_eq!(v["hasMathRandom"], true);
    assert_eq!(v["hasDate"], true);
}

const BODIES: &str = r#"
routeRegistry.registerRoute("GET", "/plain", () => ({ body: "just text" }));
routeRegistry.registerRoute("GET", "/empty", () => ({ status: 204 }));
routeRegistry.registerRoute("GET", "/array-buffer", () => ({
  body: new Uint8Array([7, 0, 255, 128]).buffer,
}));
routeRegistry.registerRoute("GET", "/uint16", () => ({ body: new Uint16Array([0x0201, 0x0403]) }));
routeRegistry.registerRoute("GET", "/float64", () => ({ body: new Float64Array([1.5]) }));
routeRegistry.registerRoute("GET", "/view", () => ({
  body: new Uint8Array([9, 8, 7, 6, 5]).subarray(1, 4),
}));
routeRegistry.registerRoute("GET", "/cookies", () => ({
  headers: { "Set-Cookie": ["a=1", "b=2"], "X-One": ["only"] },
  body: "two cookies",
}));
"#;

#[tokio::test]
async fn a_string_body_without_a_type_is_utf8_text() {
    let server = TestServer::start(&[("bodies.js", BODIES)]).await;
    let res = server.get("/plain").await;
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.text().await.unwrap(), "just text");
    let res = server.get("/empty").await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn array_buffer_and_typed_array_bodies_are_raw_bytes() {
    let server = TestServer::start(&[("bodies.js", BODIES)]).await;
    let bytes = |path: &'static str| {
        let server = &server;
        async move {
            let res = server.get(path).await;
            assert_eq!(res.status(), 200, "{path}");
            res.bytes().await.unwrap().to_vec()
        }
    };
    assert_eq!(bytes("/array-buffer").await, [7, 0, 255, 128]);
    // Typed arrays other than bytes go out as their memory (little-endian here).
    assert_eq!(bytes("/uint16").await, [1, 2, 3, 4]);
    assert_eq!(bytes("/float64").await, 1.5f64.to_le_bytes());
    assert_eq!(bytes("/view").await, [8, 7, 6], "only the view's own bytes");
}

/// Every value of header `name`, one per line it came on.
fn header_values(res: &reqwest::Response, name: &str) -> Vec<String> {
    res.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_header_array_gives_one_line_per_value() {
    let server = TestServer::start(&[("bodies.js", BODIES)]).await;
    let res = server.get("/cookies").await;
    let cookies = header_values(&res, "set-cookie");
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(res.headers()["x-one"], "only");
}

#[tokio::test]
async fn repeated_request_headers_are_joined() {
    let server = api_server().await;
    let res = server
        .client
        .get(server.url("/headers"))
        .header("X-Custom", "v1")
        .header("X-Custom", "v2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.json_value().await["custom"], "v1, v2");
}

/// Every instance starts from the build's snapshot of the guest (see
/// host/build.rs), yet draws its own `Math.random` sequence and measures
/// `performance.now()` from its own load, not from the build.
#[tokio::test]
async fn instances_from_the_snapshot_have_their_own_randomness_and_clock() {
    let probe = |path: &str| {
        format!(
            r#"routeRegistry.registerRoute("GET", "{path}", () => ({{
  body: {{ random: [Math.random(), Math.random()], now: performance.now(), origin: performance.timeOrigin, wall: Date.now() }},
}}));"#
        )
    };
    let server = TestServer::start(&[("a.js", &probe("/a")), ("b.js", &probe("/b"))]).await;
    let a = server.get("/a").await.json_value().await;
    let b = server.get("/b").await.json_value().await;
    assert_ne!(
        a["random"], b["random"],
        "two scripts drew the same numbers"
    );
    for v in [&a, &b] {
        let now = v["now"].as_f64().unwrap();
        // Since its load, a moment ago: not since the build.
        assert!((0.0..60_000.0).contains(&now), "{v}");
        let (origin, wall) = (v["origin"].as_f64().unwrap(), v["wall"].as_f64().unwrap());
        assert!((0.0..60_000.0).contains(&(wall - origin)), "{v}");
    }
    // A new version of a script is a new instance: new numbers too.
    server.write("a.js", &format!("{}\n// v2", probe("/a")));
    common::eventually("a.js reloads with new numbers", || {
        let (server, before) = (&server, a["random"].clone());
        async move { server.get("/a").await.json_value().await["random"] != before }
    })
    .await;
}

const SHAPES: &str = r#"
routeRegistry.registerRoute("GET", "/numeric-status", () => ({ status: "201", body: "made" }));
routeRegistry.registerRoute("GET", "/bad-status", () => ({ status: 1000 }));
routeRegistry.registerRoute("GET", "/fraction", () => ({ status: 200.5 }));
routeRegistry.registerRoute("GET", "/number", () => 42);
routeRegistry.registerRoute("GET", "/function", () => function named() {});
routeRegistry.registerRoute("GET", "/headers", () => ({
  headers: { "Content-Type": "text/x-mine", "X-Count": 5, "X-Skip": null, "X-Many": [1, true] },
  body: "mine",
}));
routeRegistry.registerRoute("GET", "/data-view", () => ({
  body: new DataView(new Uint8Array([1, 2, 3, 4, 5]).buffer, 1, 3),
}));
routeRegistry.registerRoute("GET", "/async-json", async () => ({ body: { late: [1, 2] } }));
routeRegistry.registerRoute("GET", "/async-bad", async () => ({ status: "nope" }));
routeRegistry.registerRoute("GET", "/undefined-json", () => ({ body: () => 1 }));
"#;

/// The response rules (status, headers, body), the same for a direct answer
/// and a Promise's, with the errors a script sees for a wrong shape.
#[tokio::test]
async fn handler_results_are_normalised_by_the_documented_rules() {
    let server = TestServer::start(&[("shapes.js", SHAPES)]).await;
    assert_eq!(
        server.get_text("/numeric-status").await,
        (201, "made".into())
    );
    for (path, words) in [
        (
            "/bad-status",
            "RangeError: response status must be an integer from 100 to 999, got 1000",
        ),
        ("/fraction", "got 200.5"),
        (
            "/number",
            "TypeError: handler must return an object {status, headers, body}, got 42",
        ),
        ("/function", "got function named"),
        (
            "/async-bad",
            "response status must be an integer from 100 to 999, got \"nope\"",
        ),
    ] {
        let (status, body) = server.get_text(path).await;
        assert_eq!(status, 500, "{path}: {body}");
        assert!(body.contains(words), "{path}: {body}");
    }
    let res = server.get("/headers").await;
    let types: Vec<_> = res.headers().get_all("content-type").iter().collect();
    assert_eq!(types.len(), 1, "no default beside a given one: {types:?}");
    assert!(
        types[0].to_str().unwrap().starts_with("text/x-mine"),
        "{types:?}"
    );
    assert_eq!(res.headers()["x-count"], "5");
    assert!(res.headers().get("x-skip").is_none());
    let many = header_values(&res, "x-many");
    assert_eq!(many, ["1", "true"]);
    assert_eq!(res.text().await.unwrap(), "mine");
    let res = server.get("/data-view").await;
    assert_eq!(res.bytes().await.unwrap().to_vec(), [2, 3, 4]);
    let res = server.get("/async-json").await;
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), r#"{"late":[1,2]}"#);
    assert_eq!(
        server.get_text("/undefined-json").await,
        (200, "null".into())
    );
}
