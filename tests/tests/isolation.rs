//! Hostile scripts: each trips a limit, gets the right 5xx, serves again right
//! after, and never slows or breaks a neighbour.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{fixture, TestServer};

const NEIGHBOUR: &str =
    r#"routeRegistry.registerRoute("GET", "/neighbour", () => ({ body: "fine" }));"#;

async fn hostile(name: &str) -> TestServer {
    let source = fixture(&format!("hostile/{name}"));
    TestServer::start(&[(name, &source), ("neighbour.js", NEIGHBOUR)]).await
}

async fn assert_limit(server: &TestServer, path: &str, status: u16, words: &[&str]) {
    let (got, body) = server.get_text(path).await;
    assert_eq!(got, status, "{path}: {body}");
    for word in words {
        assert!(body.contains(word), "{path}: {body:?} lacks {word:?}");
    }
}

#[tokio::test]
async fn an_infinite_loop_runs_out_of_fuel_and_the_script_recovers() {
    let server = hostile("infinite_loop.js").await;
    assert_eq!(server.get_text("/ok").await.1, "ok 1");
    assert_limit(
        &server,
        "/spin",
        503,
        &["infinite_loop.js", "exceeded its CPU budget"],
    )
    .await;
    // Re-instantiated: it serves again, with fresh globals.
    assert_eq!(server.get_text("/ok").await, (200, "ok 1".into()));
    assert_eq!(server.get_text("/neighbour").await.1, "fine");
}

#[tokio::test]
async fn without_fuel_the_wall_clock_deadline_stops_a_loop() {
    let source = fixture("hostile/infinite_loop.js");
    let server = TestServer::start_with(&[("infinite_loop.js", &source)], |s| {
        s.limits.fuel = 0;
        s.limits.timeout = Duration::from_millis(300);
    })
    .await;
    let started = std::time::Instant::now();
    assert_limit(&server, "/spin", 504, &["exceeded its time limit"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped near its deadline"
    );
    assert_eq!(server.get_text("/ok").await.0, 200);
}

#[tokio::test]
async fn an_allocation_bomb_hits_the_memory_cap() {
    let server = hostile("alloc_bomb.js").await;
    assert_limit(
        &server,
        "/bomb",
        503,
        &["alloc_bomb.js", "exceeded its memory limit"],
    )
    .await;
    assert_eq!(server.get_text("/ok").await, (200, "ok".into()));
    assert_eq!(server.get_text("/neighbour").await.1, "fine");
}

#[tokio::test]
async fn runaway_recursion_is_an_error_not_a_crash() {
    let server = hostile("runaway_recursion.js").await;
    let (status, body) = server.get_text("/recurse").await;
    assert!(status == 500 || status == 503, "{status}: {body}");
    assert!(body.contains("runaway_recursion.js"), "{body}");
    assert!(body.to_lowercase().contains("stack"), "{body}");
    assert_eq!(server.get_text("/ok").await, (200, "ok".into()));
}

#[tokio::test]
async fn a_huge_string_is_stopped() {
    let server = hostile("huge_string.js").await;
    let (status, body) = server.get_text("/huge").await;
    assert!(status == 500 || status == 503, "{status}: {body}");
    assert!(body.contains("huge_string.js"), "{body}");
    assert_eq!(server.get_text("/ok").await, (200, "ok".into()));
}

#[tokio::test]
async fn an_infinite_loop_in_a_promise_chain_is_stopped() {
    let server = hostile("promise_loop.js").await;
    assert_limit(&server, "/promise", 503, &["exceeded its CPU budget"]).await;
    assert_eq!(server.get_text("/ok").await, (200, "ok".into()));
}

#[tokio::test]
async fn a_top_level_infinite_loop_is_a_load_error() {
    let server = hostile("load_loop.js").await;
    let routes = server.routes().await;
    let script = routes["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "load_loop.js")
        .unwrap()
        .clone();
    assert_eq!(script["status"], "error");
    let message = script["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("exceeded its CPU budget while running its top level"),
        "{message}"
    );
    assert_eq!(server.get_text("/never").await.0, 404);
    assert_eq!(server.get_text("/neighbour").await.1, "fine");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_at_once() {
    let source = fixture("hostile/busy_wait.js");
    let server =
        Arc::new(TestServer::start_with(&[("busy_wait.js", &source)], |s| s.queue_depth = 2).await);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { server.get("/slow?ms=150").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        let res = call.await.unwrap();
        if res.status() == 503 {
            assert_eq!(res.headers()["retry-after"], "1");
        }
        statuses.push(res.status().as_u16());
    }
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert!(busy >= 4, "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

#[tokio::test]
async fn a_spinning_script_does_not_stop_its_neighbours() {
    let server = Arc::new(hostile("infinite_loop.js").await);
    let stop = Arc::new(AtomicBool::new(false));
    let spins = Arc::new(AtomicUsize::new(0));
    let spinner = {
        let (server, stop, spins) = (server.clone(), stop.clone(), spins.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = server.get_text("/spin").await;
                assert!(status == 503, "{status}");
                spins.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for _ in 0..200 {
        assert_eq!(server.get_text("/neighbour").await, (200, "fine".into()));
    }
    stop.store(true, Ordering::Relaxed);
    spinner.await.unwrap();
    assert!(spins.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn repeated_traps_back_off_instead_of_restarting_in_a_loop() {
    let server = hostile("infinite_loop.js").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let res = server.get("/spin").await;
        statuses.push((
            res.status().as_u16(),
            res.headers().get("retry-after").is_some(),
        ));
    }
    // After three failures in a row, calls are refused with Retry-After while backing off.
    assert!(
        statuses.iter().any(|(s, retry)| *s == 503 && *retry),
        "{statuses:?}"
    );
    assert_eq!(server.get_text("/neighbour").await.1, "fine");
    common::eventually("the script serves again after the backoff", || async {
        server.get_text("/ok").await.0 == 200
    })
    .await;
}
