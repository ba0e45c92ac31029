//! Storage over a real `redis-server` (cluster mode): several `Storage`
//! values over one Redis stand for several nodes. Each test starts its own
//! Redis on a free port, without persistence, in a temp dir, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

mod common;

use aiwebengine::cluster::Link;
use aiwebengine::storage::backup::{from_lines, to_lines};
use aiwebengine::storage::{Namespace, Storage, StorageError, StorageLimits, Usage};

/// `redis-server` on PATH, installing it (CI starts fresh) when missing.
fn ensure_redis_server() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            let status = Command::new("apt-get")
                .args(["install", "-y", "redis-server"])
                .status()
                .expect("running apt-get");
            assert!(status.success(), "apt-get install -y redis-server failed");
        }
    });
}

struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        Redis::on(port)
    }

    fn on(port: u16) -> Redis {
        ensure_redis_server();
        let dir = tempfile::tempdir().unwrap();
        let child = spawn(port, dir.path());
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        redis.wait_until_up();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut buf = [0u8; 16];
                s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::yield_now();
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(port: u16, dir: &Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting redis-server")
}

/// The runtime the links live on: multi-threaded, as `serve`'s is.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A "node": storage over its own link to the Redis.
fn node(rt: &tokio::runtime::Runtime, redis: &Redis, limits: StorageLimits) -> Storage {
    let _entered = rt.enter();
    let link = Link::new(&redis.url()).unwrap();
    Storage::redis(link, limits)
}

/// Runs `f` as one turn of script `script` and commits it; `f`'s result and
/// the commit's outcome.
fn turn<R>(
    storage: &Storage,
    script: &str,
    f: impl FnOnce(&Namespace) -> R,
) -> (R, Result<(), String>) {
    let ns = storage.namespace(script).unwrap();
    let t = ns.begin_blocking();
    let r = f(&ns);
    let (tx, rx) = mpsc::channel();
    t.commit(Box::new(move |o| drop(tx.send(o))));
    let outcome = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the commit was settled");
    (r, outcome)
}

fn get(storage: &Storage, script: &str, key: &str) -> Option<String> {
    let (value, outcome) = turn(storage, script, |ns| ns.get(key).unwrap());
    outcome.unwrap();
    value
}

fn set(storage: &Storage, script: &str, key: &str, json: &str) {
    let ((), outcome) = turn(storage, script, |ns| ns.set(key, json.into()).unwrap());
    outcome.unwrap();
}

/// `storage.increment` as the guest does it: get and set in one turn.
fn increment(ns: &Namespace, key: &str) -> Result<i64, StorageError> {
    let n: i64 = ns.get(key)?.map_or(0, |v| v.parse().unwrap());
    ns.set(key, (n + 1).to_string())?;
    Ok(n + 1)
}

#[test]
fn a_turn_commits_atomically_and_another_node_sees_it() {
    let redis = Redis::start();
    let rt = runtime();
    let a = node(&rt, &redis, StorageLimits::default());
    let b = Arc::new(node(&rt, &redis, StorageLimits::default()));

    let ns = a.namespace("app.js").unwrap();
    let t = ns.begin_blocking();
    ns.set("x", "1".into()).unwrap();
    // Node B's turn starts while A's holds the namespace: it waits, then sees
    // both of A's writes or neither — never one.
    let reader = {
        let b = b.clone();
        std::thread::spawn(move || {
            turn(&b, "app", |ns| (ns.get("x").unwrap(), ns.get("y").unwrap()))
        })
    };
    ns.set("y", "\"two\"".into()).unwrap();
    let (tx, rx) = mpsc::channel();
    t.commit(Box::new(move |o| drop(tx.send(o))));
    rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let ((x, y), outcome) = reader.join().unwrap();
    outcome.unwrap();
    assert_eq!((x.as_deref(), y.as_deref()), (Some("1"), Some("\"two\"")));

    // A discarded turn leaves nothing, and gives the namespace back at once.
    let t = ns.begin_blocking();
    ns.set("z", "3".into()).unwrap();
    assert!(t.discard());
    assert_eq!(get(&b, "app", "z"), None);
    assert_eq!(b.usage("app").unwrap(), Usage { keys: 2, bytes: 8 });
}

#[test]
fn concurrent_increments_on_two_nodes_total_exactly() {
    let redis = Redis::start();
    let rt = runtime();
    let nodes = [
        Arc::new(node(&rt, &redis, StorageLimits::default())),
        Arc::new(node(&rt, &redis, StorageLimits::default())),
    ];
    let mut threads = Vec::new();
    for storage in &nodes {
        for _ in 0..2 {
            let storage = storage.clone();
            threads.push(std::thread::spawn(move || {
                for _ in 0..75 {
                    let (n, outcome) = turn(&storage, "counter", |ns| increment(ns, "n"));
                    n.unwrap();
                    outcome.unwrap();
                }
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    let third = node(&rt, &redis, StorageLimits::default());
    assert_eq!(get(&third, "counter", "n").as_deref(), Some("300"));
}

#[test]
fn the_quota_holds_across_nodes() {
    let redis = Redis::start();
    let rt = runtime();
    let limits = StorageLimits {
        max_value_bytes: 1000,
        quota_bytes: 100,
    };
    let a = node(&rt, &redis, limits);
    let b = node(&rt, &redis, limits);
    // Each node loads the script (and so its namespace) before any write.
    let _ = (a.namespace("q").unwrap(), b.namespace("q").unwrap());
    set(&a, "q", "a", &"x".repeat(59)); // 60 bytes
    let (refused, outcome) = turn(&b, "q", |ns| ns.set("b", "y".repeat(59)));
    outcome.unwrap();
    let Err(StorageError::Failed(message)) = refused else {
        panic!("expected a quota error, got {refused:?}");
    };
    assert!(
        message.contains("quota of 100 bytes exceeded by script q"),
        "{message}"
    );
    // Shrinking and deleting always work.
    set(&b, "q", "a", "1");
    set(&b, "q", "b", &"y".repeat(59));
    assert_eq!(a.usage("q").unwrap(), Usage { keys: 2, bytes: 62 });
}

#[test]
fn scan_walks_keys_in_byte_order_with_pages_and_prefixes() {
    let redis = Redis::start();
    let rt = runtime();
    let storage = node(&rt, &redis, StorageLimits::default());
    let mut keys = vec!["b", "a", "ab", "é", "z", "a\u{10000}", "Z", "a b", "aa"];
    let ((), outcome) = turn(&storage, "s", |ns| {
        for k in &keys {
            ns.set(k, format!("\"{k}\"")).unwrap();
        }
    });
    outcome.unwrap();
    keys.sort(); // `str` orders by UTF-8 bytes
    let list = |prefix: &str, after: Option<&str>, limit| -> Vec<String> {
        let (page, outcome) = turn(&storage, "s", |ns| ns.scan(prefix, after, limit).unwrap());
        outcome.unwrap();
        page.into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(list("", None, 100), keys);
    // Paging with `after` = the last key seen gives every key once, in order.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list("", after.as_deref(), 2);
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        paged.extend(page);
    }
    assert_eq!(paged, keys);
    assert_eq!(list("a", None, 100), ["a", "a b", "aa", "ab", "a\u{10000}"]);
    assert_eq!(list("a", Some("aa"), 2), ["ab", "a\u{10000}"]);
    assert_eq!(list("a", Some("0"), 1), ["a"]);
    assert_eq!(list("é", None, 100), ["é"]);
    assert!(list("a", Some("b"), 10).is_empty());
    // The turn's own writes merge in.
    let (page, outcome) = turn(&storage, "s", |ns| {
        ns.set("ac", "1".into()).unwrap();
        ns.remove("aa").unwrap();
        ns.scan("a", None, 3).unwrap()
    });
    outcome.unwrap();
    let page: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(page, ["a", "a b", "ab"]);
    let (value, _) = turn(&storage, "s", |ns| ns.scan("é", None, 1).unwrap());
    assert_eq!(value, [("é".to_string(), "\"é\"".to_string())]);
}

#[test]
fn data_and_usage_outlive_the_storage_value() {
    let redis = Redis::start();
    let rt = runtime();
    {
        let storage = node(&rt, &redis, StorageLimits::default());
        set(&storage, "keep.js", "k", "{\"a\":[1,2]}");
        set(&storage, "keep.js", "gone", "1");
        let ((), outcome) = turn(&storage, "keep", |ns| {
            assert!(ns.remove("gone").unwrap());
        });
        outcome.unwrap();
    }
    let storage = node(&rt, &redis, StorageLimits::default());
    assert_eq!(get(&storage, "keep", "k").as_deref(), Some("{\"a\":[1,2]}"));
    assert_eq!(storage.usage("keep").unwrap(), Usage { keys: 1, bytes: 12 });
    // Asked from a runtime worker (as `/_engine`'s handler does), it blocks in place.
    let storage = Arc::new(storage);
    let usage = rt
        .block_on(async move { tokio::spawn(async move { storage.usage("keep") }).await })
        .unwrap()
        .unwrap();
    assert_eq!(usage, Usage { keys: 1, bytes: 12 });
}

#[test]
fn a_redis_that_is_down_fails_calls_clearly_and_its_return_heals_them() {
    let mut redis = Redis::start();
    let rt = runtime();
    let storage = node(&rt, &redis, StorageLimits::default());
    set(&storage, "f", "k", "1");
    redis.stop();

    for _ in 0..2 {
        let started = Instant::now();
        let (result, outcome) = turn(&storage, "f", |ns| ns.get("k"));
        outcome.unwrap(); // nothing was written: nothing to fail
        let Err(StorageError::Failed(message)) = result else {
            panic!("expected an error, got {result:?}");
        };
        let expected = format!("storage: Redis at {} is unreachable: ", redis.url());
        assert!(message.starts_with(&expected), "{message}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let (result, _) = turn(&storage, "f", |ns| ns.set("k", "2".into()));
        assert!(matches!(result, Err(StorageError::Failed(m)) if m.starts_with(&expected)));
        assert!(storage.usage("f").is_err());
    }

    // The same port again: storage works without a restart.
    let port = redis.port;
    drop(redis);
    let _redis = Redis::on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (result, outcome) = turn(&storage, "f", |ns| ns.set("k", "3".into()));
        if result.is_ok() && outcome.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "storage did not recover: {result:?} {outcome:?}"
        );
    }
    assert_eq!(get(&storage, "f", "k").as_deref(), Some("3"));
}

#[test]
fn dump_and_restore_round_trip() {
    let redis = Redis::start();
    let rt = runtime();
    let a = node(&rt, &redis, StorageLimits::default());
    let b = node(&rt, &redis, StorageLimits::default());
    let ((), outcome) = turn(&a, "src", |ns| {
        for i in 0..1500 {
            ns.set(&format!("k{i:05}"), format!("{{\"i\":{i}}}"))
                .unwrap();
        }
        ns.set("ü", "\"unicode\"".into()).unwrap();
    });
    outcome.unwrap();
    let dumped = a.dump("src").unwrap();
    assert_eq!(dumped.len(), 1501);
    let lines = to_lines(&dumped);
    let pairs = from_lines(
        std::str::from_utf8(&lines).unwrap(),
        StorageLimits::default(),
    )
    .unwrap();
    set(&b, "dst", "old", "1");
    b.restore("dst", pairs).unwrap();
    assert_eq!(a.dump("dst").unwrap(), dumped);
    assert_eq!(get(&a, "dst", "old"), None);
    assert_eq!(a.usage("dst").unwrap(), a.usage("src").unwrap());
    assert_eq!(get(&a, "dst", "k01499").as_deref(), Some("{\"i\":1499}"));
}

#[test]
fn the_storage_command_restores_and_dumps_through_redis() {
    const BIN: &str = env!("CARGO_BIN_EXE_aiwebengine");
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    std::fs::write(
        &file,
        "{\"key\":\"b\",\"value\":2}\n{\"key\":\"a\",\"value\":{\"x\":1}}\n",
    )
    .unwrap();
    let restored = Command::new(BIN)
        .args(["storage", "restore", "kv.js"])
        .arg(&file)
        .args(["--redis", &redis.url()])
        .output()
        .unwrap();
    common::succeeded(restored);
    let dumped = Command::new(BIN)
        .args(["storage", "dump", "kv", "--redis", &redis.url()])
        .output()
        .unwrap();
    assert_eq!(
        common::succeeded(dumped),
        "{\"key\":\"a\",\"value\":{\"x\":1}}\n{\"key\":\"b\",\"value\":2}\n"
    );
    // A node sees what the command restored.
    let rt = runtime();
    let storage = node(&rt, &redis, StorageLimits::default());
    assert_eq!(get(&storage, "kv", "b").as_deref(), Some("2"));
    assert_eq!(storage.usage("kv").unwrap(), Usage { keys: 2, bytes: 10 });
}
