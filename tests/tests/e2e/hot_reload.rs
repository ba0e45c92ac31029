//! Hot reload over a real watched temp folder.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, TestServer};

fn route(path: &str, body: &str) -> String {
    format!("routeRegistry.registerRoute(\"GET\", \"{path}\", () => ({{ body: \"{body}\" }}));\n")
}

fn chat(version: &str) -> String {
    format!(
        "routeRegistry.registerStreamRoute(\"/room\");\n\
         routeRegistry.registerRoute(\"POST\", \"/room/send\", () => ({{ body: {{ reached: sendStreamMessage({{ v: \"{version}\" }}) }} }}));\n"
    )
}

async fn serves(server: &TestServer, path: &str, body: &str) {
    eventually(&format!("{path} serves {body:?}"), || async {
        server.get_text(path).await == (200, body.to_string())
    })
    .await;
}

#[tokio::test]
async fn adding_a_file_makes_its_routes_live() {
    let server = TestServer::start(&[]).await;
    assert_eq!(server.get_text("/new").await.0, 404);
    server.write("new.js", &route("/new", "hello"));
    serves(&server, "/new", "hello").await;
}

#[tokio::test]
async fn changing_a_file_swaps_in_the_new_version() {
    let server = TestServer::start(&[("app.js", &route("/v", "one"))]).await;
    serves(&server, "/v", "one").await;
    assert_eq!(server.script("app.js").await["version"], 1);
    server.write("app.js", &(route("/v", "two") + &route("/extra", "x")));
    serves(&server, "/v", "two").await;
    assert_eq!(server.get_text("/extra").await.1, "x");
    let status = server.script("app.js").await;
    assert_eq!(status["version"], 2);
    assert_eq!(status["status"], "ok");
}

#[tokio::test]
async fn a_syntax_error_keeps_the_last_good_version_and_a_fix_recovers() {
    let server = TestServer::start(&[("app.js", &route("/v", "good"))]).await;
    server.write(
        "app.js",
        "routeRegistry.registerRoute(\"GET\", \"/v\", () => ({ body: \"bad\" });\n",
    );
    eventually("the error is shown", || async {
        server.script("app.js").await["status"] == "error"
    })
    .await;
    let status = server.script("app.js").await;
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("SyntaxError") && message.contains("app.js:1"),
        "{message}"
    );
    assert_eq!(status["serving"], true);
    assert_eq!(status["version"], 1);
    assert_eq!(server.get_text("/v").await, (200, "good".into()));
    server.write("app.js", &route("/v", "fixed"));
    serves(&server, "/v", "fixed").await;
    let status = server.script("app.js").await;
    assert_eq!(status["status"], "ok");
    assert_eq!(status["error"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_top_level_throw_keeps_the_last_good_version() {
    let server = TestServer::start(&[("app.js", &route("/v", "good"))]).await;
    server.write(
        "app.js",
        &(route("/v", "never") + "throw new Error('load failed on purpose');\n"),
    );
    eventually("the error is shown", || async {
        server.script("app.js").await["status"] == "error"
    })
    .await;
    let status = server.script("app.js").await;
    assert!(status["error"]["message"]
        .as_str()
        .unwrap()
        .contains("load failed on purpose"));
    assert_eq!(server.get_text("/v").await, (200, "good".into()));
}

#[tokio::test]
async fn a_change_that_loses_a_route_to_another_script_is_refused() {
    let server =
        TestServer::start(&[("a.js", &route("/a", "a")), ("b.js", &route("/b", "b"))]).await;
    server.write("b.js", &(route("/b", "b2") + &route("/a", "stolen")));
    eventually("b.js reports the conflict", || async {
        server.script("b.js").await["status"] == "error"
    })
    .await;
    let message = server.script("b.js").await["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("GET /a is already registered by a.js"),
        "{message}"
    );
    assert_eq!(
        server.get_text("/b").await.1,
        "b",
        "the previous b.js keeps serving"
    );
    assert_eq!(server.get_text("/a").await.1, "a");
}

#[tokio::test]
async fn deleting_a_file_removes_its_routes_and_ends_its_streams() {
    let server =
        TestServer::start(&[("chat.js", &chat("1")), ("other.js", &route("/o", "o"))]).await;
    let mut sse = server.subscribe("/room").await;
    std::fs::remove_file(server.dir.path().join("chat.js")).unwrap();
    eventually("the route is gone", || async {
        server.post_text("/room/send", "").await.0 == 404
    })
    .await;
    // Messages sent while polling may arrive first; then the stream must end.
    let mut events = 0;
    while sse.next().await.is_some() {
        events += 1;
        assert!(events < 1000, "the stream never ended");
    }
    assert_eq!(server.get_text("/room").await.0, 404);
    assert_eq!(server.get_text("/o").await.1, "o");
    assert_eq!(server.script("chat.js").await, serde_json::Value::Null);
}

#[tokio::test]
async fn renaming_keeps_serving_and_keeps_stream_subscribers() {
    let server = TestServer::start(&[("chat.js", &chat("old"))]).await;
    let mut sse = server.subscribe("/room").await;
    std::fs::rename(
        server.dir.path().join("chat.js"),
        server.dir.path().join("room.js"),
    )
    .unwrap();
    eventually("room.js is loaded", || async {
        server.script("room.js").await["status"] == "ok" && server.script("chat.js").await.is_null()
    })
    .await;
    let (status, body) = server.post_text("/room/send", "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"reached":1}"#));
    assert_eq!(sse.next().await.unwrap().json()["v"], "old");
}

#[tokio::test]
async fn a_subscriber_survives_an_edit_and_hears_the_new_version() {
    let server = TestServer::start(&[("chat.js", &chat("1"))]).await;
    let mut sse = server.subscribe("/room").await;
    server.post_text("/room/send", "").await;
    assert_eq!(sse.next().await.unwrap().json()["v"], "1");
    server.write("chat.js", &chat("2"));
    eventually("version 2 is live", || async {
        server.script("chat.js").await["version"] == 2
    })
    .await;
    let (_, body) = server.post_text("/room/send", "").await;
    assert_eq!(body, r#"{"reached":1}"#);
    let event = sse.next().await.unwrap();
    assert_eq!(event.json()["v"], "2");
    assert_eq!(
        event.id.as_deref(),
        Some("2"),
        "ids continue across versions"
    );
}

#[tokio::test]
async fn hidden_and_temp_files_are_ignored() {
    let server = TestServer::start(&[("app.js", &route("/v", "v"))]).await;
    // Each name ends in `.js`, so only its own rule (a leading `.` or `#`, a `~`
    // anywhere) keeps it out.
    server.write(".hidden.js", &route("/dot", "x"));
    server.write("#autosave.js", &route("/hash", "x"));
    server.write("app~backup.js", &route("/tilde", "x"));
    server.write("notes.txt", &route("/txt", "x"));
    // Changes are applied in order: once a later file serves, the ones above were seen.
    server.write("zz.js", &route("/marker", "m"));
    serves(&server, "/marker", "m").await;
    for path in ["/dot", "/hash", "/tilde", "/txt"] {
        assert_eq!(server.get_text(path).await.0, 404, "{path}");
    }
    let names: Vec<String> = server.routes().await["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app.js", "zz.js"]);
}

#[tokio::test]
async fn a_save_storm_ends_with_exactly_the_final_state() {
    let server = TestServer::start(&[("storm.js", &route("/s", "0"))]).await;
    for i in 1..=100 {
        server.write("storm.js", &route("/s", &i.to_string()));
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    serves(&server, "/s", "100").await;
    // No stale save may land after the final one: once a later file has been
    // applied, the storm is over.
    server.write("zz_marker.js", &route("/marker", "m"));
    serves(&server, "/marker", "m").await;
    assert_eq!(server.get_text("/s").await.1, "100");
    let version = server.script("storm.js").await["version"].as_u64().unwrap();
    assert!(
        version < 100,
        "each save need not be a load: {version} loads for 100 saves"
    );
}

#[tokio::test]
async fn a_hundred_files_at_once_all_load() {
    let server = TestServer::start(&[]).await;
    for i in 0..100 {
        server.write(
            &format!("f{i:03}.js"),
            &route(&format!("/f/{i}"), &i.to_string()),
        );
    }
    eventually("all 100 scripts serve", || async {
        server.routes().await["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "ok")
            .count()
            == 100
    })
    .await;
    for i in [0, 42, 99] {
        assert_eq!(server.get_text(&format!("/f/{i}")).await.1, i.to_string());
    }
}

#[tokio::test]
async fn steady_load_on_a_neighbour_sees_no_failures_across_reloads() {
    let server = Arc::new(
        TestServer::start(&[
            ("steady.js", &route("/steady", "ok")),
            ("edited.js", &route("/e", "0")),
        ])
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (server, stop, ok, failed) = (server.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match server.client.get(server.url("/steady")).send().await {
                    Ok(res) if res.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    for i in 1..=20 {
        server.write("edited.js", &route("/e", &i.to_string()));
        serves(&server, "/e", &i.to_string()).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 20, "the load ran throughout");
}

#[tokio::test]
async fn no_watch_turns_hot_reload_off() {
    let server =
        TestServer::start_with(&[("app.js", &route("/v", "one"))], |s| s.watch = false).await;
    // A watching server on the same folder shows when the changes were there to see.
    let watching = TestServer::start_with(&[], |s| {
        s.scripts_dir = server.dir.path().to_path_buf();
    })
    .await;
    serves(&watching, "/v", "one").await;
    server.write("app.js", &route("/v", "two"));
    server.write("new.js", &route("/new", "n"));
    serves(&watching, "/v", "two").await;
    serves(&watching, "/new", "n").await;
    assert_eq!(server.get_text("/v").await.1, "one");
    assert_eq!(server.get_text("/new").await.0, 404);
}

fn stream_script(path: &str) -> String {
    format!("routeRegistry.registerStreamRoute(\"{path}\");\n")
}

#[tokio::test]
async fn an_edit_that_drops_a_stream_closes_it_and_keeps_the_others() {
    let both = stream_script("/kept") + &stream_script("/dropped");
    let server = TestServer::start(&[("s.js", &both)]).await;
    let mut kept = server.subscribe("/kept").await;
    let mut dropped = server.subscribe("/dropped").await;
    server.write(
        "s.js",
        &(stream_script("/kept")
            + "routeRegistry.registerRoute(\"POST\", \"/send\", () => ({ body: { reached: sendStreamMessage({ v: 2 }) } }));\n"),
    );
    assert_eq!(dropped.next().await, None, "the dropped stream ends");
    serves_post(&server, "/send", r#"{"reached":1}"#).await;
    assert_eq!(kept.next().await.unwrap().json()["v"], 2);
    assert_eq!(server.get_text("/dropped").await.0, 404);
}

async fn serves_post(server: &TestServer, path: &str, body: &str) {
    eventually(&format!("POST {path} answers {body:?}"), || async {
        server.post_text(path, "").await == (200, body.to_string())
    })
    .await;
}

#[tokio::test]
async fn a_reload_that_trips_a_limit_at_load_keeps_the_last_good_version() {
    let server = TestServer::start(&[("app.js", &route("/v", "good"))]).await;
    server.write("app.js", &(route("/v", "never") + "while (true) {}\n"));
    eventually("the error is shown", || async {
        server.script("app.js").await["status"] == "error"
    })
    .await;
    let status = server.script("app.js").await;
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("exceeded its CPU budget while running its top level"),
        "{message}"
    );
    assert_eq!(status["version"], 1);
    assert_eq!(server.get_text("/v").await, (200, "good".into()));
}

#[tokio::test]
async fn a_reload_that_would_lose_a_stream_to_another_script_is_refused() {
    let server = TestServer::start(&[
        ("a.js", &stream_script("/a-feed")),
        ("b.js", &(stream_script("/b-feed") + &route("/b", "b"))),
    ])
    .await;
    let sub = server.subscribe("/b-feed").await;
    server.write(
        "b.js",
        &(stream_script("/b-feed") + &stream_script("/a-feed") + &route("/b", "b2")),
    );
    eventually("b.js reports the conflict", || async {
        server.script("b.js").await["status"] == "error"
    })
    .await;
    let b = server.script("b.js").await;
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("/a-feed") && message.contains("a.js"),
        "{message}"
    );
    assert_eq!(b["version"], 1);
    assert_eq!(
        server.get_text("/b").await.1,
        "b",
        "the previous b.js serves"
    );
    // Its subscriber is still there.
    assert_eq!(server.script("b.js").await["streams"][0]["subscribers"], 1);
    drop(sub);
}
