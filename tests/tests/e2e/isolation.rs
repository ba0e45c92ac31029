//! Hostile scripts: each trips a limit, gets the right 5xx, serves again right
//! after, and never slows or breaks a neighbour.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{fixture, TestServer};

const NEIGHBOUR: &str =
    r#"routeRegistry.registerRoute("GET", "/neighbour", () => ({ body: "fine" }));"#;

/// A hostile script beside a neighbour. The wall-clock deadline is off, so on a
/// loaded machine it cannot trip before the limit a test is about.
async fn hostile(name: &str) -> TestServer {
    let source = fixture(&format!("hostile/{name}"));
    TestServer::start_with(&[(name, &source), ("neighbour.js", NEIGHBOUR)], |s| {
        s.limits.timeout = Duration::ZERO
    })
    .await
}

async fn assert_limit(server: &TestServer, path: &str, status: u16, words: &[&str]) {
    let (got, body) = server.get_text(path).await;
    assert_eq!(got, status, "{path}: {body}");
    for word in words {
        assert!(body.contains(word), "{path}: {body:?} lacks {word:?}");
    }
}

#[tokio::test]
async fn an_infinite_loop_runs_out_of_its_cpu_budget_and_the_script_recovers() {
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

/// QuickJS counts the budget; the deadline is off so only the budget can stop these.
const BUDGETED: &str = r#"
routeRegistry.registerRoute("GET", "/swallow", () => {
  try { for (;;) {} } catch (e) { return { body: "caught " + e }; }
});
routeRegistry.registerRoute("GET", "/loop", (req) => {
  const n = Number(req.query.n);
  let x = 0;
  for (let i = 0; i < n; i++) { x += i & 7; }
  return { body: String(x) };
});
let counted = 0;
routeRegistry.registerRoute("GET", "/count", () => ({ body: String(++counted) }));
"#;

async fn budgeted() -> TestServer {
    TestServer::start_with(&[("budgeted.js", BUDGETED)], |s| {
        s.limits.timeout = Duration::ZERO;
        s.limits.fuel = 0;
        s.limits.cpu_budget = 1_000; // about 5 million loop iterations (a jump and a branch each)
    })
    .await
}

#[tokio::test]
async fn the_cpu_budget_cannot_be_caught_and_the_instance_restarts() {
    let server = budgeted().await;
    assert_eq!(server.get_text("/count").await.1, "1");
    assert_limit(
        &server,
        "/swallow",
        503,
        &["budgeted.js", "exceeded its CPU budget"],
    )
    .await;
    // Thrown away at the trip, globals and all.
    assert_eq!(server.get_text("/count").await, (200, "1".into()));
}

#[tokio::test]
async fn the_cpu_budget_is_per_call_and_counts_work_not_time() {
    let server = budgeted().await;
    // About half the budget, three times: each call starts with a full one.
    for _ in 0..3 {
        assert_eq!(server.get_text("/loop?n=2500000").await.0, 200);
    }
    // Twice the budget in one call trips it.
    assert_limit(
        &server,
        "/loop?n=20000000",
        503,
        &["exceeded its CPU budget"],
    )
    .await;
    assert_eq!(server.get_text("/loop?n=10").await, (200, "29".into()));
}

#[tokio::test]
async fn without_a_cpu_budget_the_wall_clock_deadline_stops_a_loop() {
    let source = fixture("hostile/infinite_loop.js");
    let server = TestServer::start_with(&[("infinite_loop.js", &source)], |s| {
        common::no_cpu_limit(s);
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
    assert_limit(
        &server,
        "/recurse",
        503,
        &["runaway_recursion.js", "exceeded its stack limit"],
    )
    .await;
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
    let server = Arc::new(
        TestServer::start_with(&[("busy_wait.js", &source)], |s| {
            s.queue_depth = 2;
            common::no_cpu_limit(s);
            s.limits.timeout = Duration::ZERO;
        })
        .await,
    );
    let mut busy = server.subscribe("/busy").await;
    let spawn = |path: &str| {
        let (server, path) = (server.clone(), path.to_string());
        tokio::spawn(async move {
            let res = server.get(&path).await;
            let at = std::time::Instant::now();
            let retry = res.headers().get("retry-after").cloned();
            (res.status().as_u16(), retry, res.text().await.unwrap(), at)
        })
    };
    // One call occupies the script for a while...
    let running = spawn("/slow?ms=3000&tag=running");
    assert_eq!(busy.next().await.unwrap().json()["started"], "running");
    // ...meanwhile two more fit its queue (depth 2) and five are refused at once.
    let others: Vec<_> = (0..7).map(|_| spawn("/slow?ms=1")).collect();
    let mut answers = Vec::new();
    for call in others {
        answers.push(call.await.unwrap());
    }
    let (status, _, body, finished) = running.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "done"));
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    let served = answers.iter().filter(|a| a.0 == 200).count();
    assert_eq!((refused.len(), served), (5, 2), "{answers:?}");
    for (_, retry, body, at) in refused {
        assert_eq!(retry.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
        assert!(body.contains("script busy_wait.js is overloaded"), "{body}");
        assert!(*at < finished, "refused at once, not after the queue moved");
    }
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
    // The first three failures are each answered by the limit itself, and each
    // next call gets a fresh instance at once.
    for _ in 0..3 {
        let res = server.get("/spin").await;
        assert_eq!(res.status(), 503);
        assert!(res.headers().get("retry-after").is_none());
        let body = res.text().await.unwrap();
        assert!(body.contains("exceeded its CPU budget"), "{body}");
    }
    // After the third, restarts are spaced out; a call in that window is refused
    // with Retry-After. (A restart may slip in between two calls, and trip again,
    // so allow a few tries: the window doubles each time.)
    let mut refused = None;
    for _ in 0..8 {
        let res = server.get("/spin").await;
        if res.headers().get("retry-after").is_some() {
            refused = Some((res.status().as_u16(), res.text().await.unwrap()));
            break;
        }
        assert_eq!(res.status(), 503);
    }
    let (status, body) = refused.expect("no call was refused while backing off");
    assert_eq!(status, 503);
    assert!(
        body.contains("script infinite_loop.js is restarting after repeated failures"),
        "{body}"
    );
    assert_eq!(server.get_text("/neighbour").await.1, "fine");
    common::eventually("the script serves again after the backoff", || async {
        server.get_text("/ok").await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn a_trap_fails_pending_promises_but_keeps_streams_and_restarts_timers() {
    let source = fixture("hostile/trap_survivors.js");
    let server = Arc::new(
        TestServer::start_with(
            &[("trap_survivors.js", &source), ("neighbour.js", NEIGHBOUR)],
            |s| s.limits.timeout = Duration::ZERO,
        )
        .await,
    );
    let mut sse = server.subscribe("/ticks").await;
    let waiting = {
        let server = server.clone();
        tokio::spawn(async move { server.get_text("/wait").await })
    };
    // The handler is waiting on its Promise once it has said so.
    loop {
        if sse.next().await.unwrap().json()["waiting"] == true {
            break;
        }
    }
    assert_limit(&server, "/spin", 503, &["exceeded its CPU budget"]).await;
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("trap_survivors.js"), "{body}");
    // The same subscriber hears the fresh instance's interval, counting from 1
    // again right after the last event of the old one.
    let mut events = 0;
    while sse.next().await.expect("the stream stayed open").json()["spinning"] != true {
        events += 1;
        assert!(events < 10_000, "no spinning event");
    }
    assert_eq!(
        sse.next().await.unwrap().json()["tick"],
        1,
        "the timer restarted"
    );
    assert_eq!(sse.next().await.unwrap().json()["tick"], 2);
    assert_eq!(server.get_text("/neighbour").await.1, "fine");
}
