//! Durable per-script storage, end to end: a real server with a data dir,
//! real HTTP. Restarts of the real binary are in `host/tests/storage_restart.rs`.

use crate::common;

use std::time::Duration;

use common::{eventually, fixture, JsonValue, TestServer};
use serde_json::{json, Value};

/// The data dir of the server over `scripts`: beside the watched folder, not
/// in it, so database writes are no file events for hot reload.
fn data_dir_for(scripts: &std::path::Path) -> std::path::PathBuf {
    scripts.with_extension("data")
}

/// A server running the storage fixtures, its storage beside its scripts folder.
async fn kv_server() -> TestServer {
    kv_server_with(|_| {}).await
}

async fn kv_server_with(tweak: impl FnOnce(&mut aiwebengine::Settings)) -> TestServer {
    let kv = fixture("storage_kv.js");
    let other = fixture("storage_other.js");
    TestServer::start_with(&[("kv.js", &kv), ("other.js", &other)], |s| {
        s.data_dir = Some(data_dir_for(&s.scripts_dir));
        tweak(s);
    })
    .await
}

async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json_value().await)
}

async fn get_key(server: &TestServer, key: &str) -> Value {
    let (status, body) = json_of(server.get(&format!("/kv/{key}")).await).await;
    assert_eq!(status, 200, "{body}");
    if body["found"] == true {
        body["value"].clone()
    } else {
        Value::Null
    }
}

async fn put_key(server: &TestServer, key: &str, value: Value) {
    let res = server
        .client
        .put(server.url(&format!("/kv/{key}")))
        .body(value.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn get_set_delete_round_trip_json_values() {
    let server = kv_server().await;
    assert_eq!(get_key(&server, "a").await, Value::Null);
    let value = json!({"n": 1.5, "list": [1, "two", null], "nested": {"t": true}});
    put_key(&server, "a", value.clone()).await;
    assert_eq!(get_key(&server, "a").await, value);
    let del = |server: &TestServer| {
        let req = server.client.delete(server.url("/kv/a"));
        async move { json_of(req.send().await.unwrap()).await.1 }
    };
    assert_eq!(del(&server).await, json!({"existed": true}));
    assert_eq!(del(&server).await, json!({"existed": false}));
    assert_eq!(get_key(&server, "a").await, Value::Null);
}

#[tokio::test]
async fn a_throwing_handler_commits_nothing() {
    let server = kv_server().await;
    let (status, body) = server.post_text("/throw", "").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(get_key(&server, "thrown-a").await, Value::Null);
    assert_eq!(get_key(&server, "thrown-b").await, Value::Null);
}

#[tokio::test]
async fn a_limit_trip_commits_nothing() {
    let server = kv_server_with(|s| s.limits.timeout = Duration::from_millis(300)).await;
    let (status, body) = server.post_text("/loop", "").await;
    assert!(status == 503 || status == 504, "{status} {body}");
    assert_eq!(get_key(&server, "looped").await, Value::Null);
}

#[tokio::test]
async fn a_rejected_continuation_discards_only_its_own_turn() {
    let server = kv_server().await;
    let (status, body) = server.post_text("/async-reject", "").await;
    assert_eq!(status, 500, "{body}");
    // The part before the await was a turn that ended normally.
    assert_eq!(get_key(&server, "before-await").await, json!(1));
    assert_eq!(get_key(&server, "after-await").await, Value::Null);
}

#[tokio::test]
async fn a_timer_callback_that_throws_commits_nothing() {
    let server = kv_server().await;
    // Timers live in the instance: if the watcher reloads the script early
    // (an event for the files written just before it started), schedule again.
    let mut version = server.script("kv.js").await["version"].clone();
    assert_eq!(server.post_text("/timers", "").await.0, 200);
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while get_key(&server, "timer-good").await != json!(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the good timer's write never came"
        );
        let now = server.script("kv.js").await["version"].clone();
        if now != version {
            version = now;
            assert_eq!(server.post_text("/timers", "").await.0, 200);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get_key(&server, "timer-bad").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_from_parallel_clients_count_exactly() {
    let server = kv_server().await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let client = reqwest::Client::builder()
            .timeout(common::TIMEOUT)
            .build()
            .unwrap();
        let url = server.url("/incr/hits");
        tasks.push(tokio::spawn(async move {
            let res = client.post(url).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 200);
            res.json_value().await["value"].as_f64().unwrap() as u64
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=200).collect::<Vec<u64>>());
    assert_eq!(get_key(&server, "hits").await, json!(200));
}

#[tokio::test]
async fn list_pages_through_ten_thousand_keys_exactly_once() {
    let server = kv_server().await;
    for start in (0..10_000).step_by(2_000) {
        let (status, body) = server
            .post_text(&format!("/fill?prefix=p:&n=2000&start={start}"), "")
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Keys outside the prefix on both sides must not leak in.
    put_key(&server, "o", json!(0)).await;
    put_key(&server, "q", json!(0)).await;
    let mut after: Option<String> = None;
    let mut keys = Vec::new();
    for _ in 0..100 {
        let path = match &after {
            Some(a) => format!("/list?prefix=p:&limit=1000&after={a}"),
            None => "/list?prefix=p:&limit=1000".to_string(),
        };
        let (status, page) = json_of(server.get(&path).await).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        for entry in &page {
            let key = entry["key"].as_str().unwrap().to_string();
            let index: u64 = key.strip_prefix("p:").unwrap().parse().unwrap();
            assert_eq!(entry["value"], json!(index));
            keys.push(key);
        }
        after = keys.last().cloned();
    }
    let expected: Vec<String> = (0..10_000).map(|i| format!("p:{i:06}")).collect();
    assert_eq!(keys.len(), 10_000);
    assert_eq!(keys, expected);
    // The default limit is 100.
    let (_, page) = json_of(server.get("/list?prefix=p:").await).await;
    assert_eq!(page.as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn list_sees_the_turns_own_writes_and_deletes_in_order() {
    let server = kv_server().await;
    for k in ["b", "d"] {
        put_key(&server, &format!("l:{k}"), json!(k)).await;
    }
    let res = server
        .client
        .delete(server.url("/kv/l:b"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    put_key(&server, "l:a", json!("a")).await;
    put_key(&server, "l:c", json!("c")).await;
    let (_, page) = json_of(server.get("/list?prefix=l:&limit=2").await).await;
    assert_eq!(
        page,
        json!([{"key": "l:a", "value": "a"}, {"key": "l:c", "value": "c"}])
    );
    let (_, page) = json_of(server.get("/list?prefix=l:&after=l:c").await).await;
    assert_eq!(page, json!([{"key": "l:d", "value": "d"}]));
}

#[tokio::test]
async fn every_bad_input_throws_the_right_error() {
    let server = kv_server().await;
    let (status, body) = json_of(server.get("/bad").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "emptyKey": "TypeError",
            "numberKey": "TypeError",
            "longKey": "RangeError",
            "longestKey": "none",
            "longUtf8Key": "RangeError",
            "undefinedValue": "TypeError",
            "functionValue": "TypeError",
            "symbolValue": "TypeError",
            "bigintValue": "TypeError",
            "cycleValue": "TypeError",
            "limitTooBig": "RangeError",
            "limitMax": "none",
            "limitNegative": "RangeError",
            "incrementText": "TypeError",
            "incrementByText": "TypeError",
            "deleteEmpty": "TypeError",
            "nullValue": "none",
        })
    );
}

#[tokio::test]
async fn values_over_the_size_limit_throw_range_error() {
    let server = kv_server_with(|s| s.storage.max_value_bytes = 1000).await;
    // "x" * 998 serialises to 1000 bytes with its quotes.
    let (_, ok) = json_of(server.post("/big?key=fits&bytes=998", "").await).await;
    assert_eq!(ok, json!({"ok": true}));
    let (_, too_big) = json_of(server.post("/big?key=big&bytes=999", "").await).await;
    assert_eq!(too_big["error"], "RangeError", "{too_big}");
}

#[tokio::test]
async fn writes_past_the_quota_throw_an_error_naming_it_and_the_script() {
    let server = kv_server_with(|s| s.storage.quota_bytes = 10_000).await;
    let mut refused = None;
    for i in 0..20 {
        let (_, res) = json_of(server.post(&format!("/big?key=q{i}&bytes=1000"), "").await).await;
        if res["ok"] == false {
            refused = Some((i, res));
            break;
        }
    }
    let (i, res) = refused.expect("the quota was never enforced");
    assert!(i >= 8, "refused too early, at write {i}");
    assert_eq!(res["error"], "Error", "{res}");
    let message = res["message"].as_str().unwrap();
    assert!(
        message.contains("quota") && message.contains("kv"),
        "{message}"
    );
    // Overwriting with something smaller and deleting still work.
    let res = server
        .client
        .delete(server.url("/kv/q0"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (_, ok) = json_of(server.post("/big?key=q1&bytes=10", "").await).await;
    assert_eq!(ok, json!({"ok": true}));
}

#[tokio::test]
async fn shared_storage_speaks_web_storage_over_the_same_keys() {
    let server = kv_server().await;
    let (status, seen) = json_of(server.post("/shared", "").await).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        seen,
        json!({
            "missing": null,
            "num": "42",
            "str": "hello",
            "obj": "[object Object]",
            "json": "{\"b\":2}",
            "numThroughStorage": "42",
            "afterRemove": null,
        })
    );
    // clear() empties this script's namespace only.
    assert_eq!(server.post_text("/other/set", "").await.0, 200);
    let (_, cleared) = json_of(server.post("/clear", "").await).await;
    assert_eq!(cleared, json!({"left": 0}));
    assert_eq!(get_key(&server, "s-num").await, Value::Null);
    let (_, other) = json_of(server.get("/other/get").await).await;
    assert_eq!(other, json!({"mine": "other's"}));
}

#[tokio::test]
async fn reload_and_re_adding_the_file_keep_data() {
    let server = kv_server().await;
    put_key(&server, "kept", json!("yes")).await;
    let source = fixture("storage_kv.js");
    server.write("kv.js", &format!("{source}\n// edited\n"));
    eventually("version 2 of kv.js", || async {
        server.script("kv.js").await["version"] == 2
    })
    .await;
    assert_eq!(get_key(&server, "kept").await, json!("yes"));

    std::fs::remove_file(server.dir.path().join("kv.js")).unwrap();
    eventually("kv.js unloaded", || async {
        server.script("kv.js").await.is_null()
    })
    .await;
    server.write("kv.js", &source);
    eventually("kv.js back", || async {
        server.script("kv.js").await["status"] == "ok"
    })
    .await;
    assert_eq!(get_key(&server, "kept").await, json!("yes"));
}

#[tokio::test]
async fn the_route_browser_shows_key_counts_and_bytes() {
    let server = kv_server().await;
    put_key(&server, "ab", json!("xyz")).await; // 2 + 5 bytes
    put_key(&server, "c", json!(1)).await; // 1 + 1 bytes
    let kv = server.script("kv.js").await;
    assert_eq!(kv["storage"], json!({"keys": 2, "bytes": 9}), "{kv}");
    let other = server.script("other.js").await;
    assert_eq!(other["storage"], json!({"keys": 0, "bytes": 0}), "{other}");
    let (status, page) = server.get_text("/_engine").await;
    assert_eq!(status, 200);
    assert!(page.contains("storage: 2 keys, 9 bytes"), "{page}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let server = kv_server().await;
    let mut settings = common::settings(server.dir.path());
    settings.data_dir = Some(data_dir_for(server.dir.path()));
    let err = match aiwebengine::App::new(settings) {
        Ok(_) => panic!("a second server opened a locked data dir"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("in use") && err.contains("storage.redb"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_restore_through_a_running_server() {
    let server = kv_server().await;
    put_key(&server, "a", json!({"x": [1, 2]})).await;
    put_key(&server, "b", json!("two")).await;
    let data = data_dir_for(server.dir.path());
    let limits = aiwebengine::storage::StorageLimits::default();

    let dir = data.clone();
    let dumped = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        aiwebengine::storage::backup::dump(&dir, "kv", limits, &mut out).map(|()| out)
    })
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8(dumped).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"key": "a", "value": {"x": [1, 2]}}),
            json!({"key": "b", "value": "two"}),
        ]
    );

    // Restore replaces everything, atomically: "b" goes, "c" comes.
    let backup = format!(
        "{}\n{{\"key\":\"c\",\"value\":3}}\n",
        text.lines().next().unwrap()
    );
    let dir = data.clone();
    let restored = tokio::task::spawn_blocking(move || {
        aiwebengine::storage::backup::restore(&dir, "kv.js", &backup, limits)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(restored, 2);
    assert_eq!(get_key(&server, "a").await, json!({"x": [1, 2]}));
    assert_eq!(get_key(&server, "b").await, Value::Null);
    assert_eq!(get_key(&server, "c").await, json!(3));
    assert_eq!(server.script("kv.js").await["storage"]["keys"], 2);

    // A bad backup changes nothing.
    let dir = data.clone();
    let bad = tokio::task::spawn_blocking(move || {
        aiwebengine::storage::backup::restore(
            &dir,
            "kv",
            "{\"key\":\"z\",\"value\":1}\nnot json\n",
            limits,
        )
    })
    .await
    .unwrap();
    assert!(bad.is_err());
    assert_eq!(get_key(&server, "z").await, Value::Null);
    assert_eq!(get_key(&server, "c").await, json!(3));

    // Without the token, the endpoint refuses.
    let res = server.get("/_engine/storage/kv").await;
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn the_guestbook_keeps_pages_and_streams_its_messages() {
    let guestbook = common::seed_script("guestbook.js");
    let server = TestServer::start_with(&[("guestbook.js", &guestbook)], |s| {
        s.data_dir = Some(data_dir_for(&s.scripts_dir));
    })
    .await;
    let (status, page) = server.get_text("/guestbook").await;
    assert_eq!(status, 200);
    assert!(page.contains("Guestbook"));
    let mut sse = server.subscribe("/guestbook/stream").await;
    for i in 0..3 {
        let body = json!({"name": "ann", "text": format!("hello {i}")}).to_string();
        let (status, posted) = json_of(server.post("/guestbook/api/messages", body).await).await;
        assert_eq!(status, 201, "{posted}");
        let event = sse.next().await.expect("an SSE event").json();
        assert_eq!(event["text"], format!("hello {i}"));
    }
    let (status, bad) = server.post_text("/guestbook/api/messages", "{}").await;
    assert_eq!(status, 400, "{bad}");
    let (_, first) = json_of(server.get("/guestbook/api/messages?limit=2").await).await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap().to_string();
    let (_, second) = json_of(
        server
            .get(&format!("/guestbook/api/messages?limit=2&after={next}"))
            .await,
    )
    .await;
    assert_eq!(second["messages"][0]["text"], "hello 2");
    assert_eq!(second["next"], Value::Null);
}
