//! What stream subscribers can rely on: replay on reconnect, keep-alive,
//! slow-subscriber handling, many subscribers, filters and caps.

use crate::common;

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
    // No duplicate follows: the next event is the next message.
    send(&server, 8).await;
    let event = again.next().await.unwrap();
    assert_eq!(
        (event.id.as_deref(), &event.json()["n"]),
        (Some("8"), &json!(8))
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
    // More keep-alives may come while the message is on its way, nothing else.
    let block = loop {
        let block = sse
            .next_block_within(Duration::from_secs(2))
            .await
            .unwrap()
            .unwrap();
        if block != ": keep-alive" {
            break block;
        }
    };
    assert_eq!(block, "id: 1\ndata: {\"n\":1}");
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_dropped_while_a_reader_gets_all_20_mb() {
    let server = feed_with(|s| {
        // Long enough that the reader, on a loaded machine, is never taken for
        // a stalled client; short enough for the test's deadlines.
        s.write_stall = Duration::from_secs(3);
        common::no_cpu_limit(s); // serialising 20 MB is honest work, not a runaway
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
    assert_eq!(third.headers["retry-after"], "5");
    // The same on a fresh connection, served on the socket.
    let mut raw = RawSubscriber::connect(&server.base, "/feed").await;
    assert!(raw.read_until("retry later", common::TIMEOUT).await);
    let text = raw.text();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 5"),
        "{text}"
    );
    drop(_a);
    eventually("a slot frees up", || async {
        Sse::connect(&server.url("/feed"), None).await.status == 200
    })
    .await;
}

const TWO_FEEDS: &str = r#"
routeRegistry.registerStreamRoute("/one");
routeRegistry.registerStreamRoute("/two");
routeRegistry.registerRoute("POST", "/send", (req) => ({
  body: { reached: routeRegistry.sendStreamMessage(req.query.to, { n: Number(req.body) }) },
}));
"#;

#[tokio::test]
async fn the_server_wide_subscriber_cap_answers_503() {
    let server = TestServer::start_with(&[("feeds.js", TWO_FEEDS)], |s| s.hub.total = 2).await;
    let one = server.subscribe("/one").await;
    let _two = server.subscribe("/two").await;
    assert_eq!(one.status, 200);
    let third = server.subscribe("/one").await;
    assert_eq!(third.status, 503);
    assert_eq!(third.headers["retry-after"], "5");
    let fourth = server.subscribe("/two").await;
    assert_eq!(fourth.status, 503, "the cap counts every stream");
    drop(one);
    eventually("a slot frees up", || async {
        Sse::connect(&server.url("/two"), None).await.status == 200
    })
    .await;
}

#[tokio::test]
async fn replay_bytes_bounds_the_buffer() {
    // Room for three frames of {"n":N} with N < 10.
    let frame = "id: 1\ndata: {\"n\":1}\n\n".len();
    let server = feed_with(|s| s.hub.replay_bytes = 3 * frame).await;
    for n in 1..=6 {
        send(&server, n).await;
    }
    let mut sse = Sse::connect(&server.url("/feed"), Some("1")).await;
    let gap = sse.next().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("missed"));
    assert_eq!(
        gap.json(),
        json!({ "lastEventId": 1, "firstAvailableId": 4 })
    );
    for n in 4..=6 {
        assert_eq!(sse.next().await.unwrap().json()["n"], n);
    }
}

#[tokio::test]
async fn an_unknown_id_yields_missed_then_the_whole_buffer() {
    let server = feed().await;
    for n in 1..=3 {
        send(&server, n).await;
    }
    // As after a server restart: the client's id is ahead of the stream.
    let mut sse = Sse::connect(&server.url("/feed"), Some("99")).await;
    let gap = sse.next().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("missed"));
    assert_eq!(gap.id, None);
    assert_eq!(
        gap.json(),
        json!({ "lastEventId": 99, "firstAvailableId": 1 })
    );
    for n in 1..=3 {
        let event = sse.next().await.unwrap();
        assert_eq!(event.id, Some(n.to_string()));
        assert_eq!(event.json()["n"], n);
    }
}

const ROOMS: &str = r#"
routeRegistry.registerStreamRoute("/rooms");
routeRegistry.registerRoute("POST", "/rooms/send", (req) => ({
  body: { reached: routeRegistry.sendStreamMessage("/rooms", { text: req.body }, req.query) },
}));
"#;

#[tokio::test]
async fn a_filter_needs_every_pair_and_replay_filters_too() {
    let server = TestServer::start(&[("rooms.js", ROOMS)]).await;
    let mut both = server.subscribe("/rooms?room=1&lang=fi").await;
    let mut room_only = server.subscribe("/rooms?room=1").await;
    let mut other = server.subscribe("/rooms?room=2&lang=fi").await;
    let reached = |v: serde_json::Value| v["reached"].as_u64().unwrap();
    let server = &server;
    let send = |query: &'static str, text: &'static str| async move {
        let v = server
            .post(&format!("/rooms/send{query}"), text)
            .await
            .json_value()
            .await;
        reached(v)
    };
    assert_eq!(send("?room=1&lang=fi", "fi-1").await, 1);
    assert_eq!(send("?room=1", "room-1").await, 2);
    assert_eq!(send("?lang=fi", "fi").await, 2);
    assert_eq!(send("", "all").await, 3);
    async fn next_texts(sse: &mut Sse, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                sse.next().await.unwrap().json()["text"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        out
    }
    assert_eq!(
        next_texts(&mut both, 4).await,
        ["fi-1", "room-1", "fi", "all"]
    );
    assert_eq!(next_texts(&mut room_only, 2).await, ["room-1", "all"]);
    assert_eq!(next_texts(&mut other, 2).await, ["fi", "all"]);
    // A reconnect replays through the same filter.
    let mut again = Sse::connect(&server.url("/rooms?room=2&lang=fi"), Some("0")).await;
    assert_eq!(next_texts(&mut again, 2).await, ["fi", "all"]);
    assert_eq!(send("?room=2", "room-2").await, 2);
    assert_eq!(
        next_texts(&mut again, 1).await,
        ["room-2"],
        "nothing else was replayed"
    );
}

const BIG_AND_MARKER: &str = r#"
routeRegistry.registerStreamRoute("/feed");
routeRegistry.registerStreamRoute("/marker");
routeRegistry.registerRoute("POST", "/feed/big", (req) => {
  const chunk = "x".repeat(Number(req.query.size));
  for (let i = 0; i < Number(req.query.n); i++) routeRegistry.sendStreamMessage("/feed", { i, chunk });
  return { body: "sent" };
});
routeRegistry.registerRoute("POST", "/feed/send", (req) => ({
  body: { reached: routeRegistry.sendStreamMessage("/feed", JSON.parse(req.body)) },
}));
routeRegistry.registerRoute("POST", "/marker", () => ({
  body: { reached: routeRegistry.sendStreamMessage("/marker", { marker: true }) },
}));
"#;

fn stream_subscribers(routes: &serde_json::Value, path: &str) -> u64 {
    routes["scripts"][0]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == path)
        .unwrap()["subscribers"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_lagging_subscriber_is_disconnected_and_replays_exactly_what_it_missed() {
    let server = TestServer::start_with(&[("big.js", BIG_AND_MARKER)], |s| {
        s.hub.lag = 4;
        s.hub.replay_bytes = 64 << 20;
        common::no_cpu_limit(s); // serialising 20 MB is honest work, not a runaway
    })
    .await;
    // Does not read while the messages go out: its socket fills up, its writer
    // blocks, and its place in the ring (4 frames) is overrun.
    let mut slow = RawSubscriber::connect(&server.base, "/feed").await;
    let mut marker = server.subscribe("/marker").await;
    eventually("subscribed", || async {
        stream_subscribers(&server.routes().await, "/feed") == 1
    })
    .await;
    let (status, _) = server.post_text("/feed/big?n=200&size=100000", "").await;
    assert_eq!(status, 200);
    // One fan-out queue serves every stream in order: once the marker is
    // delivered, all 200 frames are in the ring.
    server.post_text("/marker", "").await;
    assert_eq!(marker.next().await.unwrap().json()["marker"], true);
    // When it reads again it finds itself too far behind, and is disconnected.
    assert!(
        slow.read_to_close(common::TIMEOUT).await,
        "it is disconnected"
    );
    eventually("it is no longer counted", || async {
        stream_subscribers(&server.routes().await, "/feed") == 0
    })
    .await;
    // What it got is whole frames in order from 1; it reconnects from the last one.
    let text = slow.text();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let mut blocks: Vec<&str> = body.split("\n\n").collect();
    blocks.pop(); // not followed by a blank line: not a whole event
    let ids: Vec<u64> = blocks
        .iter()
        .filter_map(|block| block.strip_prefix("id: "))
        .map(|block| block.split('\n').next().unwrap().parse().unwrap())
        .collect();
    let last = ids.last().copied().unwrap_or(0);
    assert!(last < 200, "it did fall behind");
    assert_eq!(ids, (1..=last).collect::<Vec<_>>());
    let mut again = Sse::connect(&server.url("/feed"), Some(&last.to_string())).await;
    for i in last..200 {
        let event = again.next().await.unwrap();
        assert_eq!(event.id, Some((i + 1).to_string()));
        assert_eq!(event.json()["i"], i);
    }
    send(&server, 1).await;
    let event = again.next().await.unwrap();
    assert_eq!(
        (event.id.as_deref(), &event.json()["n"]),
        (Some("201"), &json!(1)),
        "then live, no duplicate"
    );
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
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while !String::from_utf8_lossy(&seen).contains("\"reached\"") {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .expect("no answer to the POST")
            .unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    tcp.write_all(
        b"GET /feed HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n",
    )
    .await
    .unwrap();
    seen.clear();
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
