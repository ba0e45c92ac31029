//! setTimeout, setInterval and Promises inside a script's actor.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, fixture, JsonValue, TestServer};
use serde_json::json;

async fn timers() -> TestServer {
    TestServer::start(&[("timers.js", &fixture("timers.js"))]).await
}

/// Asks the script for a marker event `ms` from now and returns the next event:
/// the marker itself when nothing else was sent meanwhile.
async fn next_after_marker(
    server: &TestServer,
    sse: &mut common::Sse,
    ms: u64,
) -> serde_json::Value {
    server.post(&format!("/marker?ms={ms}"), "").await;
    sse.next().await.unwrap().json()
}

#[tokio::test]
async fn an_interval_heartbeat_reaches_subscribers_then_stops() {
    let server = timers().await;
    let mut sse = server.subscribe("/timers").await;
    let v = server
        .post("/heartbeat?times=4", "")
        .await
        .json_value()
        .await;
    assert_eq!(v["type"], "number");
    for beat in 1..=4 {
        assert_eq!(sse.next().await.unwrap().json(), json!({ "beat": beat }));
    }
    // The interval ran every 15 ms: a fifth beat would come before this marker.
    assert_eq!(
        next_after_marker(&server, &mut sse, 100).await,
        json!({ "marker": "100" }),
        "clearInterval stopped it"
    );
}

#[tokio::test]
async fn set_timeout_fires_once_with_its_arguments() {
    let server = timers().await;
    let mut sse = server.subscribe("/timers").await;
    server.post("/once", "").await;
    assert_eq!(
        sse.next().await.unwrap().json(),
        json!({ "once": ["x", 42] })
    );
    assert_eq!(
        next_after_marker(&server, &mut sse, 50).await,
        json!({ "marker": "50" }),
        "it fired once"
    );
}

#[tokio::test]
async fn cleared_timers_never_fire_and_unknown_ids_are_ignored() {
    let server = timers().await;
    let mut sse = server.subscribe("/timers").await;
    assert_eq!(server.post_text("/cancelled", "").await, (200, "ok".into()));
    assert_eq!(sse.next().await.unwrap().json(), json!({ "marker": true }));
}

#[tokio::test]
async fn a_throwing_callback_is_logged_and_the_interval_goes_on() {
    let server = timers().await;
    let mut sse = server.subscribe("/timers").await;
    server.post("/throwing-interval", "").await;
    for tick in 1..=4 {
        assert_eq!(sse.next().await.unwrap().json(), json!({ "tick": tick }));
    }
}

#[tokio::test]
async fn an_async_handler_awaiting_a_timer_answers_after_it() {
    let server = timers().await;
    let started = std::time::Instant::now();
    let v = server.get("/sleep?ms=80").await.json_value().await;
    assert!(v["slept"].as_u64().unwrap() >= 80, "{v}");
    assert!(started.elapsed() >= Duration::from_millis(80));
    // Meanwhile the script keeps serving others: a sleeping request does not block it.
    let mut sse = server.subscribe("/timers").await;
    let sleeper = {
        let (client, url) = (
            server.client.clone(),
            server.url("/announced-sleep?ms=2000"),
        );
        tokio::spawn(async move {
            let status = client.get(url).send().await.unwrap().status();
            (status, std::time::Instant::now())
        })
    };
    assert_eq!(
        sse.next().await.unwrap().json(),
        json!({ "sleeping": true })
    );
    assert_eq!(server.get_text("/ok").await.0, 200);
    let answered = std::time::Instant::now();
    let (status, woke) = sleeper.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        answered < woke,
        "/ok was answered while the other request slept"
    );
    let (status, body) = server.get_text("/sleep-then-throw").await;
    assert_eq!(status, 500);
    assert!(body.contains("TypeError: woke up angry"), "{body}");
}

#[tokio::test]
async fn a_promise_that_never_settles_times_out() {
    let server = TestServer::start_with(&[("timers.js", &fixture("timers.js"))], |s| {
        s.limits.timeout = Duration::from_millis(300);
    })
    .await;
    let (status, body) = server.get_text("/never-settles").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("time limit"), "{body}");
}

#[tokio::test]
async fn an_infinite_loop_in_a_callback_is_stopped_and_the_script_recovers() {
    let server = TestServer::start(&[
        ("timers.js", &fixture("timers.js")),
        (
            "neighbour.js",
            r#"routeRegistry.registerRoute("GET", "/n", () => ({ body: "n" }));"#,
        ),
    ])
    .await;
    assert_eq!(server.get_text("/ok").await.1, "ok 1");
    server.post("/hang-in-callback", "").await;
    assert_eq!(server.get_text("/n").await.1, "n");
    // Once the callback is stopped the instance is re-created: globals start fresh.
    eventually("the script serves from a fresh instance", || async {
        server.get_text("/ok").await == (200, "ok 1".to_string())
    })
    .await;
}

#[tokio::test]
async fn the_timer_cap_is_a_clear_error() {
    let server = TestServer::start_with(&[("timers.js", &fixture("timers.js"))], |s| {
        s.limits.max_timers = 5;
    })
    .await;
    assert_eq!(server.post_text("/many?n=5", "").await.0, 200);
    let (status, body) = server.post_text("/many?n=1", "").await;
    assert_eq!(status, 500);
    assert!(body.contains("too many timers"), "{body}");
}

#[tokio::test]
async fn queue_microtask_and_performance_now() {
    let server = timers().await;
    let v = server.get("/extras").await.json_value().await;
    assert_eq!(
        v,
        json!({ "order": ["sync", "microtask"], "now": "number", "positive": true })
    );
}

#[tokio::test]
async fn the_seed_batching_pattern_delivers_every_update_exactly_once() {
    let server = TestServer::start(&[("batching.js", &fixture("batching.js"))]).await;
    let mut sse = server.subscribe("/batches").await;
    for i in 0..40 {
        server.post("/update", i.to_string()).await;
        if i % 7 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut seen = Vec::new();
    while seen.len() < 40 {
        let batch = sse.next().await.unwrap().json();
        assert_eq!(batch["type"], "batch");
        seen.extend(
            batch["updates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap()),
        );
    }
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), 40, "no duplicates: {seen:?}");
    assert_eq!(unique, (0..40).collect(), "nothing lost");
    // Empty queues send nothing: the next batch holds only the next update.
    server.post("/update", "99").await;
    let batch = sse.next().await.unwrap().json();
    assert_eq!(batch["updates"], json!([99]), "empty queues send nothing");
}

#[tokio::test]
async fn reloading_cancels_the_old_versions_timers() {
    let ticker = |v: u32| {
        format!(
            "routeRegistry.registerStreamRoute(\"/ticks\");\nsetInterval(() => sendStreamMessage({{ v: {v} }}), 10);\n"
        )
    };
    let server = TestServer::start(&[("ticker.js", &ticker(1))]).await;
    let mut sse = server.subscribe("/ticks").await;
    assert_eq!(sse.next().await.unwrap().json()["v"], 1);
    server.write("ticker.js", &ticker(2));
    // Wait for the first tick of version 2, then no tick of version 1 may follow.
    loop {
        if sse.next().await.unwrap().json()["v"] == 2 {
            break;
        }
    }
    for _ in 0..15 {
        assert_eq!(
            sse.next().await.unwrap().json()["v"],
            2,
            "a ghost tick from version 1"
        );
    }
    // Deleting the script stops its timers and ends the stream.
    std::fs::remove_file(server.dir.path().join("ticker.js")).unwrap();
    let mut left = 0;
    while sse.next().await.is_some() {
        left += 1;
        assert!(left < 100, "timers kept running after delete");
    }
}
