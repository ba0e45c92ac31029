//! WebSocket on stream routes: a real tokio-tungstenite client against the
//! real server. Same ids and filters as SSE, resume with `?lastEventId=`,
//! client handlers, `client.send`, limits (1009, 1008), pings, shutdown (1001).

use crate::common;

use std::time::Duration;

use common::{fixture, JsonValue, TestServer, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn room() -> TestServer {
    room_with(|_| {}).await
}

async fn room_with(tweak: impl FnOnce(&mut aiwebengine::Settings)) -> TestServer {
    TestServer::start_with(&[("room.js", &fixture("ws_room.js"))], tweak).await
}

fn ws_url(server: &TestServer, path: &str) -> String {
    format!("{}{path}", server.base.replace("http://", "ws://"))
}

async fn connect(server: &TestServer, path: &str) -> Ws {
    let (ws, res) = tokio::time::timeout(
        TIMEOUT,
        tokio_tungstenite::connect_async(ws_url(server, path)),
    )
    .await
    .expect("WebSocket connect timed out")
    .expect("WebSocket handshake");
    assert_eq!(res.status().as_u16(), 101);
    ws
}

/// The next text frame as JSON (pings and pongs skipped); panics after `TIMEOUT`.
async fn next_json(ws: &mut Ws) -> Value {
    next_json_within(ws, TIMEOUT)
        .await
        .expect("no WebSocket message within the timeout")
}

async fn next_json_within(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(text.as_str()).expect("JSON text"))
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame; its code.
async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the server did not close the connection"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
        }
    }
}

async fn send(server: &TestServer, path: &str, data: Value) -> Value {
    server.post(path, data.to_string()).await.json_value().await
}

async fn log(server: &TestServer) -> Vec<String> {
    let v = server.get("/log").await.json_value().await;
    serde_json::from_value(v).unwrap()
}

fn stream_entry(routes: &Value, path: &str) -> Value {
    routes["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["streams"].as_array().unwrap().iter())
        .find(|st| st["path"] == path)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn websocket_and_sse_get_the_same_ids_in_the_same_order() {
    let server = room().await;
    let mut ws = connect(&server, "/plain").await;
    let mut sse = server.subscribe("/plain").await;
    for i in 1..=3 {
        assert_eq!(
            send(&server, "/send/plain", json!({"n": i})).await["reached"],
            2
        );
    }
    for i in 1..=3 {
        let frame = next_json(&mut ws).await;
        let event = sse.next().await.unwrap();
        assert_eq!(frame, json!({"id": i, "data": {"n": i}}));
        assert_eq!(event.id.as_deref(), Some(i.to_string().as_str()));
        assert_eq!(event.json(), frame["data"]);
    }
}

#[tokio::test]
async fn filters_apply_to_the_connections_query() {
    let server = room().await;
    let mut one = connect(&server, "/plain?room=1").await;
    let mut two = connect(&server, "/plain?room=2").await;
    let reached = send(&server, "/send/plain?room=1", json!("for one")).await;
    assert_eq!(reached["reached"], 1);
    send(&server, "/send/plain", json!("for all")).await;
    assert_eq!(next_json(&mut one).await["data"], "for one");
    assert_eq!(next_json(&mut one).await["data"], "for all");
    assert_eq!(
        next_json(&mut two).await,
        json!({"id": 2, "data": "for all"}),
        "room 2 must not see room 1's message"
    );
}

#[tokio::test]
async fn last_event_id_resumes_and_an_old_one_gets_the_missed_frame() {
    let server = room_with(|s| s.hub.replay_messages = 3).await;
    for i in 1..=10 {
        send(&server, "/send/plain", json!(i)).await;
    }
    let mut ws = connect(&server, "/plain?lastEventId=8").await;
    assert_eq!(next_json(&mut ws).await, json!({"id": 9, "data": 9}));
    assert_eq!(next_json(&mut ws).await, json!({"id": 10, "data": 10}));
    send(&server, "/send/plain", json!(11)).await;
    assert_eq!(next_json(&mut ws).await, json!({"id": 11, "data": 11}));

    let mut old = connect(&server, "/plain?lastEventId=2").await;
    assert_eq!(
        next_json(&mut old).await,
        json!({"event": "missed", "data": {"lastEventId": 2, "firstAvailableId": 9}})
    );
    assert_eq!(next_json(&mut old).await["id"], 9);
}

#[tokio::test]
async fn handlers_run_in_order_and_client_send_reaches_only_that_client() {
    let server = room().await;
    let mut a = connect(&server, "/room?name=ann").await;
    let welcome_a = next_json(&mut a).await;
    let id_a = welcome_a["data"]["welcome"].as_str().unwrap().to_string();
    assert_eq!(welcome_a.get("id"), None, "a direct message has no id");
    let mut b = connect(&server, "/room?name=bob").await;
    let id_b = next_json(&mut b).await["data"]["welcome"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(id_a, id_b);

    a.send(Message::text("echo")).await.unwrap();
    assert_eq!(next_json(&mut a).await, json!({"data": {"echo": id_a}}));
    a.send(Message::text("hello")).await.unwrap();
    let expected = json!({"from": "ann", "text": "hello"});
    assert_eq!(next_json(&mut a).await["data"], expected);
    // b never saw a's echo: the broadcast is the first thing after its welcome.
    assert_eq!(next_json(&mut b).await["data"], expected);

    a.close(None).await.unwrap();
    let want = vec![
        format!("open {id_a} ann"),
        format!("open {id_b} bob"),
        format!("message {id_a} echo"),
        format!("message {id_a} hello"),
        format!("close {id_a}"),
    ];
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut seen = log(&server).await;
    while seen != want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = log(&server).await;
    }
    assert_eq!(seen, want, "the script's turns, in order");
}

#[tokio::test]
async fn binary_frames_reach_the_script_as_bytes() {
    let server = room().await;
    let mut ws = connect(&server, "/room").await;
    next_json(&mut ws).await; // welcome
    ws.send(Message::binary(vec![1u8, 2, 3, 250]))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ws).await["data"],
        json!({"binary": 4, "sum": 256})
    );
}

#[tokio::test]
async fn a_throwing_handler_is_logged_and_the_connection_stays() {
    let server = room().await;
    let mut ws = connect(&server, "/room?name=x").await;
    next_json(&mut ws).await;
    ws.send(Message::text("throw")).await.unwrap();
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["data"],
        json!({"from": "x", "text": "after"})
    );
}

#[tokio::test]
async fn a_connection_outlives_its_scripts_restart() {
    let server = room().await;
    let mut ws = connect(&server, "/room?name=kim").await;
    let id = next_json(&mut ws).await["data"]["welcome"]
        .as_str()
        .unwrap()
        .to_string();
    // The handler trips the CPU limit: the instance, with every client object
    // it made, is thrown away and re-created for the next event.
    ws.send(Message::text("spin")).await.unwrap();
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["data"],
        json!({"from": "kim", "text": "after"}),
        "the fresh instance knows the connection's query"
    );
    // Its log started empty: the connection is known by the same id.
    assert_eq!(log(&server).await, vec![format!("message {id} after")]);
}

#[tokio::test]
async fn after_a_reload_an_open_connection_reaches_the_new_version() {
    let server = room().await;
    let mut ws = connect(&server, "/room?name=lee").await;
    next_json(&mut ws).await; // welcome
    let source = fixture("ws_room.js");
    let v2 = source.replace("text: message }", "text: message, version: 2 }");
    assert_ne!(v2, source, "the fixture's broadcast changed");
    server.write("room.js", &v2);
    common::eventually("version 2 is live", || async {
        server.script("room.js").await["version"] == 2
    })
    .await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["data"],
        json!({"from": "lee", "text": "hi", "version": 2})
    );
}

#[tokio::test]
async fn frames_on_a_stream_without_handlers_are_ignored() {
    let server = room().await;
    let mut ws = connect(&server, "/plain").await;
    ws.send(Message::text("nobody listens")).await.unwrap();
    send(&server, "/send/plain", json!("still here")).await;
    assert_eq!(next_json(&mut ws).await["data"], "still here");
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let server = room_with(|s| s.ws_max_message_bytes = 1024).await;
    let mut ws = connect(&server, "/room").await;
    next_json(&mut ws).await;
    ws.send(Message::text("x".repeat(1000))).await.unwrap();
    assert!(next_json(&mut ws).await["data"]["text"].is_string());
    ws.send(Message::text("x".repeat(2000))).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
}

#[tokio::test]
async fn a_message_many_times_the_read_buffer_arrives_whole() {
    // The server reads client frames 4 KiB at a time; the default cap is 64 KiB.
    let server = room().await;
    let mut ws = connect(&server, "/room").await;
    next_json(&mut ws).await;
    let big: String = (0..40_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    ws.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["data"]["text"], big.as_str());
    ws.send(Message::text("z".repeat(70 << 10))).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
}

#[tokio::test]
async fn a_flooding_client_is_closed_with_1008() {
    let server = room_with(|s| s.ws_messages_per_sec = 5).await;
    let mut ws = connect(&server, "/plain").await;
    for _ in 0..20 {
        if ws.send(Message::text("flood")).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Policy));
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let server = room_with(|s| s.keep_alive = Duration::from_secs(1)).await;
    // A live client: reading answers pings (tungstenite pongs by itself).
    let mut live = connect(&server, "/plain").await;
    // A dead one: never read, so never pong.
    let _dead = connect(&server, "/plain").await;
    let websockets = || async {
        let routes = server.routes().await;
        stream_entry(&routes, "/plain")["websocket"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(websockets().await, 2);
    let reader = async {
        // Keep reading (and ponging) until the dead peer is gone.
        loop {
            let _ = next_json_within(&mut live, Duration::from_millis(100)).await;
            if websockets().await == 1 {
                break;
            }
        }
    };
    tokio::time::timeout(TIMEOUT, reader)
        .await
        .expect("the silent peer was not closed");
    send(&server, "/send/plain", json!("alive")).await;
    assert_eq!(next_json(&mut live).await["data"], "alive");
}

#[tokio::test]
async fn the_route_browser_counts_websocket_and_sse_apart() {
    let server = room().await;
    let _ws = connect(&server, "/plain").await;
    let _ws2 = connect(&server, "/plain").await;
    let _sse = server.subscribe("/plain").await;
    let entry = stream_entry(&server.routes().await, "/plain");
    assert_eq!(
        (&entry["subscribers"], &entry["websocket"], &entry["sse"]),
        (&json!(3), &json!(2), &json!(1))
    );
    let (_, page) = server.get_text("/_engine").await;
    assert!(page.contains("2 WebSocket"), "{page}");
}

#[tokio::test]
async fn websocket_connections_count_against_the_subscriber_caps() {
    let server = room_with(|s| s.hub.per_stream = 1).await;
    let _ws = connect(&server, "/plain").await;
    let refused = tokio_tungstenite::connect_async(ws_url(&server, "/plain")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 503)
        }
        other => panic!("expected a 503, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("room.js"), fixture("ws_room.js")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(aiwebengine::run(
        listener,
        common::settings(dir.path()),
        async move {
            let _ = stopped.await;
        },
    ));
    let url = format!("ws://{addr}/plain");
    // `run` accepts connections while the scripts load: wait until it is ready.
    let ready = format!("http://{addr}/_engine/health/ready");
    common::eventually("the server to be ready", || async {
        reqwest::get(&ready)
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
    let (mut ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(&url))
        .await
        .expect("WebSocket connect timed out")
        .unwrap();
    stop.send(()).unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
    tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_gets_whole_frames_then_1013() {
    let server = room_with(|s| s.hub.lag = 8).await;
    let mut slow = connect(&server, "/plain").await; // reads nothing for now
    let big = "y".repeat(64 << 10);
    // Far more than the kernel buffers of a loopback connection hold; the
    // rest waits on the server, up to 8 frames, then the client is cut.
    let mut sent = 0;
    while sent < 600 {
        send(&server, "/send/plain", json!(big)).await;
        sent += 1;
        if sent % 50 == 0 && stream_entry(&server.routes().await, "/plain")["websocket"] == 0 {
            break;
        }
    }
    assert!(sent < 600, "a client that reads nothing was never cut");
    // What it finally reads: messages 1, 2, 3... each whole, then the close.
    let mut next_id = 1;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let code = loop {
        match tokio::time::timeout_at(deadline, slow.next()).await {
            Err(_) => panic!("the server did not close the connection"),
            Ok(Some(Ok(Message::Text(text)))) => {
                let v: Value = serde_json::from_str(text.as_str()).expect("a whole JSON frame");
                assert_eq!(
                    (&v["id"], v["data"].as_str().map(str::len)),
                    (&json!(next_id), Some(big.len()))
                );
                next_id += 1;
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| f.code),
            Ok(other) => panic!("expected text frames then a close, got {other:?}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Again));
    assert!(
        next_id > 1 && next_id <= sent,
        "read {} of {sent}",
        next_id - 1
    );
    // The stream goes on for the others.
    let mut fresh = connect(&server, "/plain").await;
    send(&server, "/send/plain", json!("after")).await;
    assert_eq!(next_json(&mut fresh).await["data"], "after");
}

#[tokio::test]
async fn a_client_that_takes_no_data_for_the_stall_limit_is_closed() {
    let server = room_with(|s| s.write_stall = Duration::from_secs(1)).await;
    let _idle = connect(&server, "/plain").await; // reads nothing, ever
    let routes = || async { stream_entry(&server.routes().await, "/plain")["websocket"].clone() };
    // Idle for longer than the stall limit: that alone is no stall.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(routes().await, 1);
    // Then more than the loopback buffers hold (but far less than the lag
    // caps): what waits on the server goes nowhere for a second.
    let big = "y".repeat(64 << 10);
    for _ in 0..300 {
        send(&server, "/send/plain", json!(big)).await;
    }
    assert_eq!(routes().await, 1, "cut at once, not after the stall limit");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while routes().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client was never cut"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = server.get_text("/_engine/metrics").await.1;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("aiwebengine_connection_write_stalls_total") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}
