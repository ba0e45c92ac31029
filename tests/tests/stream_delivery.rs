//! What stream subscribers can rely on: replay on reconnect, keep-alive,
//! slow-subscriber handling, many subscribers, filters and caps.

mod common;

use std::time::Duration;

use common::{eventually, fixture, JsonValue, RawSubscriber, Sse, TestServer};
use serde_json::json;

async fn feed() -> TestServer {
    TestServer::start(&[("feed.js", &fixture("feed.js"))]).await
}

async fn feed_with(tweak: impl FnOnce(&mut aiwebengine::Settings)) -> TestServer {
    TestServer::start_with(&[("feed.js", &fixture("feed.js"))], tweak).await
}

async fn send(server: &TestServer, n: u64) -> serde_json::Value {
    server
        .post("/feed/send", json!({ "n": n }).to_string())
        .await
        .json_value()
        .await
}

fn subscribers(routes: &serde_json::Value) -> u64 {
    routes["scripts"][0]["streams"][0]["subscribers"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn reconnecting_with_last_event_id_replays_exactly_what_was_missed() {
    let server = feed().await;
    let mut first = server.subscribe("/feed").await;
    for n in 1..=3 {
        send(&server, n).await;
    }
    let mut last_id = String::new();
    for n in 1..=3 {
        let event = first.next().await.unwrap();
        assert_eq!(event.json()["n"], n);
        last_id = event.id.unwrap();
    }
    drop(first);
    for n in 4..=6 {
        send(&server, n).await;
    }
    let mut again = Sse::connect(&server.url("/feed"), Some(&last_id)).await;
    send(&server, 7).await;
    let mut seen = Vec::new();
    for _ in 4..=7 {
        let event = again.next().await.unwrap();
        seen.push((
            event.id.clone().unwrap(),
            event.json()["n"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("4".into(), 4),
            ("5".into(), 5),
            ("6".into(), 6),
            ("7".into(), 7)
        ]
    );
    assert!(
        again.next_within(Duration::from_millis(200)).await.is_err(),
        "no duplicates follow"
    );
}

#[tokio::test]
async fn an_id_older_than_the_buffer_yields_the_missed_event() {
    let server = feed_with(|s| s.hub.replay_messages = 3).await;
    for n in 1..=10 {
        send(&server, n).await;
    }
    let mut sse = Sse::connect(&server.url("/feed"), Some("2")).await;
    let gap = sse.next().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("missed"));
    assert_eq!(gap.id, None);
    assert_eq!(
        gap.json(),
        json!({ "lastEventId": 2, "firstAvailableId": 8 })
    );
    for n in 8..=10 {
        assert_eq!(sse.next().await.unwrap().json()["n"], n);
    }
}

#[tokio::test]
async fn retry_is_sent_once_and_idle_streams_get_keep_alives() {
    let server = feed_with(|s| s.keep_alive = Duration::from_millis(150)).await;
    let mut sse = server.subscribe("/feed").await;
    assert_eq!(
        sse.next_block_within(common::TIMEOUT)
            .await
            .unwrap()
            .unwrap(),
        "retry: 2000"
    );
    for _ in 0..2 {
        let block = sse
            .next_block_within(Duration::from_secs(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(block, ": keep-alive");
    }
    send(&server, 1).await;
    let block = sse
        .next_block_within(Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block, "id: 1\ndata: {\"n\":1}");
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_dropped_while_a_reader_gets_all_20_mb() {
    let server = feed_with(|s| {
        s.write_stall = Duration::from_secs(1);
        s.limits.fuel = 0; // serialising 20 MB is honest work, not a runaway
    })
    .await;
    // Two that never read: one on a fresh connection (served on the socket),
    // one on a reused keep-alive connection (served through hyper).
    let mut stalled = RawSubscriber::connect(&server.base, "/feed").await;
    let mut stalled_reused =
        RawSubscriber::connect_after_a_request(&server.base, "/feed", "/_engine/routes").await;
    let mut reader = server.subscribe("/feed").await;
    eventually("three subscribers", || async {
        subscribers(&server.routes().await) == 3
    })
    .await;
    let (status, _) = server.post_text("/feed/big?n=200&size=100000", "").await;
    assert_eq!(status, 200);
    for i in 0..200 {
        let event = reader.next().await.unwrap();
        let data = event.json();
        assert_eq!(data["i"], i);
        assert_eq!(data["chunk"].as_str().unwrap().len(), 100_000);
    }
    eventually("both stalled subscribers are disconnected", || async {
        subscribers(&server.routes().await) == 1
    })
    .await;
    assert!(
        stalled.closed_within(Duration::from_secs(10)).await,
        "its socket is closed"
    );
    assert!(
        stalled_reused.closed_within(Duration::from_secs(10)).await,
        "its socket is closed"
    );
}

#[tokio::test]
async fn a_thousand_subscribers_all_receive_a_broadcast() {
    let server = feed().await;
    let mut subs = Vec::new();
    for _ in 0..1000 {
        subs.push(RawSubscriber::connect(&server.base, "/feed").await);
    }
    eventually("all 1000 are subscribed", || async {
        subscribers(&server.routes().await) == 1000
    })
    .await;
    let v = send(&server, 42).await;
    assert_eq!(v["reached"], 1000);
    for sub in &mut subs {
        assert!(sub.read_until("data: {\"n\":42}", common::TIMEOUT).await);
    }
}

#[tokio::test]
async fn filtered_messages_reach_only_matching_subscribers() {
    let server = feed().await;
    let mut room1 = server.subscribe("/feed?room=1").await;
    let mut room2 = server.subscribe("/feed?room=2").await;
    let mut everyone = server.subscribe("/feed").await;
    let v = server
        .post("/feed/send?room=1", r#"{"only":"room 1"}"#)
        .await
        .json_value()
        .await;
    assert_eq!(v["reached"], 1);
    let v = server
        .post("/feed/send", r#"{"to":"all"}"#)
        .await
        .json_value()
        .await;
    assert_eq!(v["reached"], 3);
    assert_eq!(
        room1.next().await.unwrap().json(),
        json!({ "only": "room 1" })
    );
    assert_eq!(room1.next().await.unwrap().json(), json!({ "to": "all" }));
    assert_eq!(room2.next().await.unwrap().json(), json!({ "to": "all" }));
    assert_eq!(
        everyone.next().await.unwrap().json(),
        json!({ "to": "all" })
    );
}

#[tokio::test]
async fn subscriber_caps_answer_503() {
    let server = feed_with(|s| s.hub.per_stream = 2).await;
    let _a = server.subscribe("/feed").await;
    let _b = server.subscribe("/feed").await;
    let third = server.subscribe("/feed").await;
    assert_eq!(third.status, 503);
    drop(_a);
    eventually("a slot frees up", || async {
        Sse::connect(&server.url("/feed"), None).await.status == 200
    })
    .await;
}

#[tokio::test]
async fn a_subscription_on_a_reused_keep_alive_connection_works_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A connection's first request decides its path through the server: a
    // subscription that follows another request on the same connection is
    // served by the general HTTP path, and must behave the same.
    let server = feed().await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"n":0}"#;
    let post = format!(
        "POST /feed/send HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(post.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"reached\"") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    tcp.write_all(
        b"GET /feed HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n",
    )
    .await
    .unwrap();
    seen.clear();
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while !String::from_utf8_lossy(&seen).contains("data: {\"n\":0}") {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(text.contains("id: 1"), "replayed from the buffer: {text}");
}
