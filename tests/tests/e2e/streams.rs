//! Stream registration and broadcast across scripts.

use crate::common;

use std::time::Duration;

use common::{fixture, JsonValue, TestServer};

async fn two_scripts() -> TestServer {
    TestServer::start(&[
        ("a.js", &fixture("streams_a.js")),
        ("b.js", &fixture("streams_b.js")),
    ])
    .await
}

#[tokio::test]
async fn one_argument_send_reaches_only_the_callers_streams() {
    let server = two_scripts().await;
    let mut a = server.subscribe("/a-stream").await;
    let mut b = server.subscribe("/b-stream").await;
    let v = server.post("/a/send", "hi").await.json_value().await;
    assert_eq!(v["reached"], 1);
    let event = a.next().await.unwrap();
    assert_eq!(event.json(), serde_json::json!({"from": "a", "body": "hi"}));
    let v = server.post("/b/send", "").await.json_value().await;
    assert_eq!(v["reached"], 1);
    // Per-stream order: had a's message reached b, it would come first.
    let event = b.next().await.unwrap();
    assert_eq!(event.json()["from"], "b", "b must not see a's message");
    assert_eq!(event.id.as_deref(), Some("1"));
}

#[tokio::test]
async fn two_argument_send_targets_any_stream_and_counts() {
    let server = two_scripts().await;
    let mut b1 = server.subscribe("/b-stream").await;
    let mut b2 = server.subscribe("/b-stream").await;
    let v = server.post("/a/send-to-b", "").await.json_value().await;
    assert_eq!(v["reached"], 2);
    assert_eq!(b1.next().await.unwrap().json()["from"], "a-direct");
    assert_eq!(b2.next().await.unwrap().json()["from"], "a-direct");
    let (status, body) = server.post_text("/a/send-nowhere", "").await;
    assert_eq!(status, 500);
    assert!(body.contains("no stream is registered"), "{body}");
}

#[tokio::test]
async fn ids_increase_per_stream() {
    let server = two_scripts().await;
    let mut a = server.subscribe("/a-stream").await;
    for _ in 0..3 {
        server.post("/a/send", "x").await;
    }
    let ids: Vec<String> = [a.next().await, a.next().await, a.next().await]
        .into_iter()
        .map(|e| e.unwrap().id.unwrap())
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);
}

#[tokio::test]
async fn plain_get_on_a_stream_without_page_subscribes() {
    let server = two_scripts().await;
    let res = server
        .client
        .get(server.url("/a-stream"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let res = server.post("/a-stream", "").await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn subscriber_counts_follow_connections() {
    let server = two_scripts().await;
    let count = |v: serde_json::Value| {
        v["scripts"][0]["streams"][0]["subscribers"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(server.routes().await), 0);
    let a = server.subscribe("/a-stream").await;
    assert_eq!(count(server.routes().await), 1);
    drop(a);
    common::eventually("the subscriber count drops", || async {
        // A broadcast notices the closed connection.
        server.post("/a/send", "").await;
        count(server.routes().await) == 0
    })
    .await;
}

/// `routeRegistry.sendStreamMessage` runs in Rust (it is every broadcast's
/// hot path, and quotes a string itself): the same JSON text as
/// `JSON.stringify`, a script's own `JSON.stringify` still honoured, and
/// the same errors as the JavaScript API had.
const QUOTING: &str = r#"
routeRegistry.registerStreamRoute("/q");
const samples = [
  "plain", "quote \" and \\ backslash", "\b\f\n\r\t", "\u0000\u0001\u001f\u007f",
  "\u2028\u2029", "é ü 漢字 🎉", "lone \ud800 surrogate", "",
];
routeRegistry.registerRoute("POST", "/q/send", () => {
  for (const s of samples) routeRegistry.sendStreamMessage("/q", s);
  const saved = JSON.stringify;
  JSON.stringify = (value) => `"replaced ${typeof value}"`;
  try {
    routeRegistry.sendStreamMessage("/q", "x");
  } finally {
    JSON.stringify = saved;
  }
  routeRegistry.sendStreamMessage("/q");
  routeRegistry.sendStreamMessage("/q", { a: [1, "b"] }, {});
  return { body: samples.map((s) => JSON.stringify(s)) };
});
routeRegistry.registerRoute("POST", "/q/bad", () => {
  const tries = [["q", 1], [5, 1], ["/q", 1, 7]];
  return {
    body: tries.map((args) => {
      try {
        routeRegistry.sendStreamMessage(...args);
        return "no error";
      } catch (e) {
        return String(e);
      }
    }),
  };
});
"#;

#[tokio::test]
async fn send_stream_message_gives_json_stringify_text_and_checks_its_arguments() {
    let server = TestServer::start(&[("q.js", QUOTING)]).await;
    let mut sub = server.subscribe("/q").await;
    let expected: Vec<String> =
        serde_json::from_value(server.post("/q/send", "").await.json_value().await).unwrap();
    let expected = expected.into_iter().chain([
        "\"replaced string\"".into(),
        "null".into(),
        r#"{"a":[1,"b"]}"#.into(),
    ]);
    for want in expected {
        let event = sub.next().await.expect("an event per message");
        assert_eq!(event.data, want);
    }
    let errors = server.post("/q/bad", "").await.json_value().await;
    assert_eq!(
        errors,
        serde_json::json!([
            "TypeError: sendStreamMessage: path must be a string starting with \"/\", got \"q\"",
            "TypeError: sendStreamMessage: path must be a string starting with \"/\", got 5",
            "TypeError: sendStreamMessage: filter must be an object like {room: \"42\"}, got 7",
        ])
    );
}
