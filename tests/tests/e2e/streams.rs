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
