//! Issue 11: a running server attacked by hostile clients and hostile scripts.
//! One test per defect (`d01_`...`d14_`), the class fixes (connection cap,
//! head timeout, panics), and a seeded fuzz test of request heads and scripts.
//! Malformed input goes over raw `TcpStream`s; every read has a deadline.

mod common;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{eventually, TestServer, TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------- helpers

/// d06 measures the process's memory, so it runs alone: every other test of
/// this file holds this lock shared, d06 exclusively.
static MEMORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Sends `bytes` (from a task of its own, so a server that stops reading
/// cannot block us), half-closes when `close` says so, and returns what came
/// back until a status line is complete, the server closed, or `wait` passed.
/// `None`: nothing at all came back and the connection was still open at the
/// deadline.
async fn exchange(addr: &str, bytes: Vec<u8>, close: bool, wait: Duration) -> Option<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        if close {
            let _ = wr.shutdown().await;
        }
        wr // keep the write half (and so the connection) open until we are done
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + wait;
    let closed = loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.starts_with(b"HTTP/1.") && got.windows(2).any(|w| w == b"\r\n") {
                    break false;
                }
            }
            Err(_) => break false,
        }
    };
    writer.abort();
    (closed || !got.is_empty()).then_some(got)
}

/// The status code of the first response in `reply`.
fn status(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    let line = text.lines().next()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn request(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes()
}

const FEED: &str = r#"
routeRegistry.registerStreamRoute("/feed");
routeRegistry.registerRoute("GET", "/hello", () => ({ body: "hi" }));
const pads = {};
routeRegistry.registerRoute("POST", "/send", (req) => {
  const n = Number(req.query.n || 1), size = Number(req.query.size || 10);
  const pad = pads[size] || (pads[size] = "x".repeat(size));
  let reached = 0;
  for (let i = 0; i < n; i++) reached = routeRegistry.sendStreamMessage("/feed", { i, pad });
  return { body: String(reached) };
});
"#;

async fn feed(tweak: impl FnOnce(&mut aiwebengine::Settings)) -> TestServer {
    TestServer::start_with(&[("feed.js", FEED)], tweak).await
}

/// A raw subscriber; `before` goes first on the same connection.
async fn raw_subscribe(addr: &str, before: &[u8], query: &str, after: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut bytes = before.to_vec();
    bytes.extend(request(
        &format!("/feed{query}"),
        "Accept: text/event-stream\r\n",
    ));
    bytes.extend_from_slice(after);
    tcp.write_all(&bytes).await.unwrap();
    tcp
}

/// Reads from `tcp` until `needle` was seen; false at the deadline or the end.
async fn read_until(tcp: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if seen.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Log lines of this test binary, captured (installed once, shared by all tests).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        std::io::Write::write(&mut *self.0.lock().unwrap(), b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------- remote clients

/// #1: a subscription on a reused connection, a stray "\r\n", then the client
/// leaves: the subscriber must go (frames are flushed, the close is noticed).
/// And a plain GET followed by "\r\n" is answered at once; malformed heads get
/// their status, not an empty reply.
#[tokio::test]
async fn d01_stray_bytes_do_not_keep_a_closed_subscriber_or_delay_answers() {
    let _shared = MEMORY.read().await;
    let server = feed(|_| {}).await;
    let addr = addr(&server);
    let hub = server.engine.app.hub.clone();
    let tcp = raw_subscribe(&addr, &request("/hello", ""), "", b"\r\n").await;
    eventually("the subscriber is counted", || {
        let hub = hub.clone();
        async move { hub.total_subscribers() == 1 }
    })
    .await;
    drop(tcp);
    eventually("the closed subscriber is dropped", || async {
        server.post("/send?n=5&size=1000", "").await;
        hub.total_subscribers() == 0
    })
    .await;

    let mut stray = request("/hello", "");
    stray.extend_from_slice(b"\r\n");
    let reply = exchange(&addr, stray, false, Duration::from_secs(5)).await;
    assert_eq!(reply.as_deref().and_then(status), Some(200), "GET + \\r\\n");

    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: [(Vec<u8>, u16); 4] = [
        (request("/hello", &many_headers), 431),
        (request(&format!("/{}", "a".repeat(100_000)), ""), 414),
        (request("/hello", "Bad Name: x\r\n"), 400),
        (
            b"POST /send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: bogus\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (head, want) in cases {
        let reply = exchange(&addr, head, false, Duration::from_secs(5)).await;
        assert_eq!(reply.as_deref().and_then(status), Some(want));
    }
}

/// #2: a single huge header gets 431.
#[tokio::test]
async fn d02_a_huge_header_gets_431() {
    let _shared = MEMORY.read().await;
    let server = feed(|_| {}).await;
    let huge = format!("X-Big: {}\r\n", "b".repeat(200_000));
    let reply = exchange(&addr(&server), request("/hello", &huge), false, TIMEOUT).await;
    assert_eq!(reply.as_deref().and_then(status), Some(431));
}

/// #3: an idle connection does not hold shutdown for `--shutdown-timeout-secs`.
#[tokio::test]
async fn d03_an_idle_connection_does_not_hold_shutdown() {
    let _shared = MEMORY.read().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.js"), FEED).unwrap();
    let mut settings = common::settings(dir.path());
    settings.shutdown_timeout = Duration::from_secs(60);
    settings.header_read_timeout = Duration::from_secs(60);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(aiwebengine::run(listener, settings, async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}/hello");
    eventually("the server answers", || async {
        reqwest::get(&url).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let _idle = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /hello HTTP/1.1\r\n").await.unwrap();
    let _ = stop.send(());
    let done = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(done.is_ok(), "shutdown waited for idle connections");
}

/// #4: an LF-only request head is answered at once.
#[tokio::test]
async fn d04_lf_only_heads_are_answered() {
    let _shared = MEMORY.read().await;
    let server = feed(|_| {}).await;
    let head = b"GET /hello HTTP/1.1\nHost: x\n\n".to_vec();
    let reply = exchange(&addr(&server), head, false, Duration::from_secs(5)).await;
    assert_eq!(reply.as_deref().and_then(status), Some(200));
}

/// #5: a subscriber's query is bounded, on both subscription paths.
#[tokio::test]
async fn d05_a_subscriber_query_is_bounded() {
    let _shared = MEMORY.read().await;
    let server = feed(|_| {}).await;
    let addr = addr(&server);
    let long = format!("?{}", "&a=1".repeat(2000));
    for before in [Vec::new(), request("/hello", "")] {
        let mut tcp = raw_subscribe(&addr, &before, &long, b"").await;
        let mut seen = Vec::new();
        assert!(read_until(&mut tcp, &mut seen, b"414 URI Too Long").await);
        let mut tcp = raw_subscribe(&addr, &before, "?room=1&user=a", b"").await;
        let mut seen = Vec::new();
        assert!(read_until(&mut tcp, &mut seen, b"retry: 2000").await);
    }
}

/// #6: a stalled subscriber pins at most `--stream-lag-bytes` of frames.
#[tokio::test]
async fn d06_a_stalled_subscriber_pins_a_bounded_number_of_bytes() {
    let _alone = MEMORY.write().await;
    let server = feed(|s| {
        s.hub.lag_bytes = 2 << 20;
        s.hub.replay_bytes = 1 << 20;
        s.write_stall = Duration::from_secs(120);
        common::no_cpu_limit(s);
    })
    .await;
    let hub = server.engine.app.hub.clone();
    let _stalled = raw_subscribe(&addr(&server), b"", "", b"").await; // never reads
    eventually("the subscriber is counted", || {
        let hub = hub.clone();
        async move { hub.total_subscribers() == 1 }
    })
    .await;
    let before = rss_bytes();
    // 300 frames of 512 KiB: 150 MiB that the ring would keep for the stalled reader.
    for _ in 0..100 {
        let (status, body) = server.post_text("/send?n=3&size=524288", "").await;
        assert_eq!(status, 200, "{body}");
    }
    eventually(
        "memory held for the stalled subscriber is bounded",
        || async { rss_bytes().saturating_sub(before) < 60 << 20 },
    )
    .await;
    eprintln!(
        "d06: RSS grew by {} MiB for 150 MiB sent past a stalled subscriber",
        rss_bytes().saturating_sub(before) >> 20
    );
}

// ---------------------------------------------------------------- hostile scripts

/// #7: whatever a script passes off as JSON, it cannot add SSE fields.
#[tokio::test]
async fn d07_a_script_cannot_inject_stream_fields() {
    let _shared = MEMORY.read().await;
    let script = r#"
routeRegistry.registerStreamRoute("/feed");
routeRegistry.registerRoute("POST", "/send", () => {
  JSON.stringify = () => "1\rid: 999\revent: evil\rretry: 1\r\n\rdata: x";
  return { body: String(routeRegistry.sendStreamMessage("/feed", {})) };
});
"#;
    let server = TestServer::start(&[("evil.js", script)]).await;
    let mut tcp = raw_subscribe(&addr(&server), b"", "", b"").await;
    let mut seen = Vec::new();
    assert!(read_until(&mut tcp, &mut seen, b"retry: 2000\n\n").await);
    assert_eq!(server.post("/send", "").await.status(), 200);
    assert!(read_until(&mut tcp, &mut seen, b"data: x").await);
    assert!(read_until(&mut tcp, &mut seen, b"\n\n").await);
    let text = String::from_utf8_lossy(&seen);
    let body = text.split_once("\r\n\r\n").unwrap().1;
    // Lines as an EventSource splits them: at CRLF, CR or LF.
    let fields: Vec<&str> = body
        .split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .filter_map(|l| l.split_once(':').map(|(f, _)| f))
        .collect();
    assert!(!fields.contains(&"event"), "{body:?}");
    assert_eq!(fields.iter().filter(|f| **f == "id").count(), 1, "{body:?}");
    assert_eq!(
        fields.iter().filter(|f| **f == "retry").count(),
        1,
        "{body:?}"
    );
    assert!(body.contains("id: 1\n"), "{body:?}");
}

const MANY_PARAMS: &str = r#"
routeRegistry.registerRoute("GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/:p/:q/:r/:s/:t/:u/:v/:w/:x/:y/:z", () => ({ body: "x" }));
"#;

/// #8: a route with 26 parameters is refused at registration; neither start
/// nor a hot reload takes the server or the route browser down.
#[tokio::test]
async fn d08_a_route_with_too_many_parameters_is_refused() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start(&[("feed.js", FEED), ("many.js", MANY_PARAMS)]).await;
    assert_eq!(server.script("many.js").await["status"], "error");
    server.write("many2.js", MANY_PARAMS);
    eventually("the reloaded script is refused", || async {
        server.script("many2.js").await["status"] == "error"
    })
    .await;
    server.write(
        "later.js",
        r#"routeRegistry.registerRoute("GET", "/later", () => ({ body: "later" }));"#,
    );
    eventually("a later script still loads", || async {
        server.get_text("/later").await == (200, "later".into())
    })
    .await;
    let message = server.script("many.js").await["error"]["message"].to_string();
    assert!(message.contains("at most 16 parameters"), "{message}");
    assert_eq!(server.get("/_engine").await.status(), 200);
}

/// #9: a non-ASCII header value from a script, and a script file name with `)`.
#[tokio::test]
async fn d09_non_ascii_headers_and_odd_file_names_do_not_panic() {
    let _shared = MEMORY.read().await;
    let echo = r#"
routeRegistry.registerRoute("GET", "/h", (req) => ({
  headers: { "content-type": req.query.t }, body: "ok",
}));
"#;
    let thrower = r#"
routeRegistry.registerRoute("GET", "/throw", () => { throw new Error("boom"); });
"#;
    let server = TestServer::start(&[("echo.js", echo), ("a).js", thrower)]).await;
    // Byte 5 falls inside the third "ë": slicing there once panicked.
    let res = server.get("/h?t=%C3%AB%C3%AB%C3%AB/html").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].as_bytes(),
        "ëëë/html".as_bytes()
    );
    let (status, body) = server.get_text("/throw").await;
    assert_eq!(status, 500);
    assert!(body.contains("boom"), "{body}");
    assert_eq!(server.get_text("/h?t=text/html").await.0, 200);
}

/// #10: streams per script, message size, and replay kept by bytes.
#[tokio::test]
async fn d10_stream_memory_is_bounded_per_script_and_per_stream() {
    let _shared = MEMORY.read().await;
    let streams = r#"
for (let i = 0; i < 5; i++) routeRegistry.registerStreamRoute("/s" + i);
"#;
    let big = r#"
routeRegistry.registerStreamRoute("/feed");
routeRegistry.registerRoute("POST", "/send", (req) => {
  try {
    return { body: String(routeRegistry.sendStreamMessage("/feed", "y".repeat(Number(req.query.size)))) };
  } catch (e) {
    return { status: 413, body: String(e) };
  }
});
"#;
    let server = TestServer::start_with(&[("streams.js", streams), ("big.js", big)], |s| {
        s.hub.streams_per_script = 4;
        s.hub.message_bytes = 4000;
        s.hub.replay_bytes = 1000;
    })
    .await;
    let streams = server.script("streams.js").await;
    assert_eq!(streams["status"], "error");
    assert!(streams["error"]["message"]
        .to_string()
        .contains("at most 4 streams"));
    let (status, body) = server.post_text("/send?size=5000", "").await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("at most 4000 bytes"), "{body}");
    assert_eq!(
        server.post_text("/send?size=1500", "").await,
        (200, "0".into())
    );
    // Too big for the replay buffer: not kept, so a replay reports it missed.
    let mut sse = common::Sse::connect(&server.url("/feed"), Some("0")).await;
    let first = sse.next().await.unwrap();
    assert_eq!(first.event.as_deref(), Some("missed"), "{first:?}");
}

/// #11: console lines are escaped, capped and rate-limited.
#[tokio::test]
async fn d11_console_output_is_escaped_capped_and_rate_limited() {
    let _shared = MEMORY.read().await;
    logs();
    let script = r#"
routeRegistry.registerRoute("GET", "/log", () => {
  console.log("c11-forge\n2026-01-01T00:00:00Z ERROR script=\"chat.js\": c11-forged");
  console.log("c11-ansi \u001b[31mred");
  console.log("c11-long " + "L".repeat(100000));
  const line = "c11-flood " + "F".repeat(10000);
  for (let i = 0; i < 1000; i++) console.log(line);
  return { body: "ok" };
});
routeRegistry.registerRoute("GET", "/after", () => { console.log("c11-after"); return { body: "ok" }; });
"#;
    let server = TestServer::start_with(&[("c11.js", script)], |s| {
        common::no_cpu_limit(s);
    })
    .await;
    assert_eq!(server.get_text("/log").await.0, 200);
    eventually("the dropped lines are reported", || async {
        server.get_text("/after").await;
        captured().contains("console lines dropped")
    })
    .await;
    let logs = captured();
    let ours: Vec<&str> = logs.lines().filter(|l| l.contains("c11")).collect();
    assert!(
        !ours.iter().any(|l| l.starts_with("2026-01-01")),
        "a forged line"
    );
    assert!(logs.contains("c11-forge\\n2026"), "newline escaped");
    assert!(!logs.contains('\u{1b}') && logs.contains("c11-ansi \\u{1b}[31mred"));
    let long = ours.iter().find(|l| l.contains("c11-long")).unwrap();
    assert!(long.len() < 17 * 1024 && long.contains("[truncated: "));
    let flood: usize = ours.iter().filter(|l| l.contains("c11-flood")).count();
    assert!(flood < 300, "{flood} flood lines of 1000 were logged");
}

/// #12: a script cannot reach the guest's configuration to raise its caps.
#[tokio::test]
async fn d12_configure_is_not_reachable_by_scripts() {
    let _shared = MEMORY.read().await;
    let script = r#"
let attempt = "none";
try { __aiwe.configure({ maxTimers: 100 }); attempt = "called"; } catch (e) { attempt = String(e); }
routeRegistry.registerRoute("GET", "/timers", () => {
  const ids = [];
  try { for (let i = 0; i < 50; i++) ids.push(setTimeout(() => {}, 100000)); } catch (_) {}
  ids.forEach(clearTimeout);
  return { body: `${ids.length} ${attempt} ${typeof __aiwe} ${typeof __aiwe_host}` };
});
"#;
    let server = TestServer::start_with(&[("t.js", script)], |s| s.limits.max_timers = 3).await;
    let (status, body) = server.get_text("/timers").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("3 "), "{body}");
    assert!(!body.contains("called"), "{body}");
    // Nothing of the guest's internals is left where a script can reach it.
    assert!(body.ends_with(" undefined undefined"), "{body}");
}

// ---------------------------------------------------------------- the host's own files

/// #13: a start loads each script once; reading files does not trigger
/// reloads; an oversized script is refused without being read.
#[tokio::test]
async fn d13_the_watcher_ignores_reads_and_unchanged_files() {
    let _shared = MEMORY.read().await;
    let scripts: Vec<(String, String)> = (0..3)
        .map(|i| {
            (
                format!("s{i}.js"),
                format!(
                    r#"routeRegistry.registerRoute("GET", "/s{i}", () => ({{ body: "{i}" }}));"#
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = scripts
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    let server = TestServer::start_with(&refs, |s| s.max_script_bytes = 4096).await;
    let app = server.engine.app.clone();
    barrier(&server, "b1").await;
    let reads = app.files_read();
    for _ in 0..20 {
        for (name, _) in &scripts {
            std::fs::read(server.dir.path().join(name)).unwrap();
        }
    }
    barrier(&server, "b2").await;
    let extra = app.files_read() - reads;
    eprintln!("d13: {extra} script files read for 60 outside reads and one new file");
    assert!(extra <= 4, "{extra} script files read for one new file");
    for (name, _) in &scripts {
        assert_eq!(server.script(name).await["version"], 1, "{name}");
    }
    let reads = app.files_read();
    server.write("huge.js", &format!("// {}", "x".repeat(8000)));
    eventually("the oversized script is refused", || async {
        server.script("huge.js").await["status"] == "error"
    })
    .await;
    let message = server.script("huge.js").await["error"]["message"].to_string();
    assert!(message.contains("--max-script-bytes"), "{message}");
    assert_eq!(app.files_read(), reads, "the oversized file was read");
}

/// Writes a new script and waits until it serves: every file event before it
/// has been handled by then.
async fn barrier(server: &TestServer, name: &str) {
    server.write(
        &format!("{name}.js"),
        &format!(r#"routeRegistry.registerRoute("GET", "/{name}", () => ({{ body: "b" }}));"#),
    );
    eventually("the barrier script loads", || async {
        server.get(&format!("/{name}")).await.status() == 200
    })
    .await
}

/// #14: a symlink out of the scripts folder is not followed, nor echoed.
#[tokio::test]
async fn d14_symlinks_out_of_the_folder_are_not_followed() {
    let _shared = MEMORY.read().await;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.js");
    std::fs::write(
        &secret,
        r#"routeRegistry.registerRoute("GET", "/leak", () => ({ body: "c14-secret" }));"#,
    )
    .unwrap();
    let server = TestServer::start(&[("feed.js", FEED)]).await;
    std::os::unix::fs::symlink(&secret, server.dir.path().join("link.js")).unwrap();
    std::os::unix::fs::symlink(
        server.dir.path().join("feed.js"),
        server.dir.path().join("inside.js"),
    )
    .unwrap();
    eventually("the link is reported", || async {
        server.script("link.js").await["status"] == "error"
    })
    .await;
    assert_eq!(server.get("/leak").await.status(), 404);
    let routes = server.get_text("/_engine/routes").await.1;
    assert!(!routes.contains("c14-secret"), "{routes}");
    assert!(routes.contains("symbolic link"), "{routes}");
    assert!(!server.get_text("/_engine").await.1.contains("c14-secret"));
}

// ---------------------------------------------------------------- classes

/// `--max-connections`: the one over the cap gets a 503 and is closed.
#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let _shared = MEMORY.read().await;
    let server = feed(|s| s.max_connections = 2).await;
    let addr = addr(&server);
    let a = TcpStream::connect(&addr).await.unwrap();
    let b = TcpStream::connect(&addr).await.unwrap();
    let reply = exchange(&addr, request("/hello", ""), false, TIMEOUT).await;
    assert_eq!(reply.as_deref().and_then(status), Some(503));
    drop((a, b));
    eventually("a connection is accepted again", || async {
        let reply = exchange(&addr, request("/hello", ""), false, TIMEOUT).await;
        reply.as_deref().and_then(status) == Some(200)
    })
    .await;
}

/// `--header-read-timeout-secs`: a connection that sends no head is closed.
#[tokio::test]
async fn an_idle_connection_is_closed_after_the_head_timeout() {
    let _shared = MEMORY.read().await;
    let server = feed(|s| s.header_read_timeout = Duration::from_secs(1)).await;
    let reply = exchange(&addr(&server), Vec::new(), false, TIMEOUT).await;
    assert_eq!(reply, Some(Vec::new()), "closed without a word");
    let partial = b"GET /hello HTTP/1.1\r\nHost".to_vec();
    let reply = exchange(&addr(&server), partial, false, TIMEOUT).await;
    assert!(reply.is_some(), "a trickling head is closed too");
}

/// A small seeded generator (xorshift64*): the same cases at every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &[
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "G\0T",
    "/",
    "/hello",
    "/feed",
    "/_engine",
    "/_engine/routes",
    "/%",
    "/%ff",
    "?a=1",
    "?&&&",
    " ",
    "  ",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2.0",
    "HTTP/1.1\r",
    "\r\n",
    "\n",
    "\r",
    "\0",
    ":",
    "Host: x",
    "Accept: text/event-stream",
    "Accept: */*",
    "Content-Length: 5",
    "Content-Length: -1",
    "Content-Length: 99999999999999999999",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip",
    "Last-Event-ID: 1",
    "Last-Event-ID: 99999999999999999999",
    "Connection: close",
    "Expect: 100-continue",
    "é",
    "\u{1b}[31m",
    "0\r\n\r\n",
    "5\r\nhello\r\n0\r\n\r\n",
    "\t",
    "X: \u{7f}",
];

fn random_head(rng: &mut Rng) -> Vec<u8> {
    let mut head: Vec<u8> = match rng.below(3) {
        // A valid request, then mutated.
        0 | 1 => {
            let mut h = format!(
                "{} {} HTTP/1.1\r\nHost: x\r\n",
                rng.pick(&["GET", "POST", "HEAD", "DELETE"]),
                // The fixed routes, and some the random scripts may have registered.
                rng.pick(&[
                    "/hello",
                    "/feed",
                    "/send?n=1",
                    "/nope",
                    "/_engine/routes",
                    "/a",
                    "/a/a",
                    "/a/x/y",
                    "/%C3%A9",
                    "/%7Bx%7D",
                    "/a/%20",
                    "/"
                ])
            );
            for _ in 0..rng.below(4) {
                h.push_str(rng.pick(PIECES));
                h.push_str("\r\n");
            }
            h.push_str("\r\n");
            let mut bytes = h.into_bytes();
            for _ in 0..rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(at, rng.pick(b"\r\n\0: %?/")),
                    _ => bytes.truncate(at),
                }
            }
            bytes
        }
        // Random pieces glued together.
        _ => (0..rng.below(12))
            .flat_map(|_| rng.pick(PIECES).as_bytes().to_vec())
            .collect(),
    };
    if rng.below(20) == 0 {
        head.extend(std::iter::repeat_n(b'a', 40_000)); // over the head cap
    }
    head.extend_from_slice(b"\r\n\r\n");
    head
}

fn random_script(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..1 + rng.below(4) {
        let method = rng.pick(&["GET", "post", "PATCH", "X-Y", "", "G T", "ÉÉ"]);
        let mut path = String::new();
        for _ in 0..rng.below(6) {
            path.push('/');
            path.push_str(rng.pick(&["a", ":p", ":q", "*rest", "{x}", "é", "%20", "", ":", "b c"]));
        }
        let header = rng.pick(&["text/html", "tëxt/plain", "a\nb", "é", ""]);
        let _ = writeln!(
            out,
            "try {{ routeRegistry.registerRoute({method:?}, {path:?}, () => ({{ headers: {{ \"content-type\": {header:?}, \"x-é\": \"1\" }}, body: \"f\" }})); }} catch (e) {{}}"
        );
        if rng.below(3) == 0 {
            let _ = writeln!(
                out,
                "try {{ routeRegistry.registerStreamRoute({path:?}); }} catch (e) {{}}"
            );
        }
    }
    if rng.below(5) == 0 {
        out.push_str("this is not javascript (\n");
    }
    out
}

/// Thousands of random and mutated heads, and random scripts, against a live
/// server: every request gets a status line or a close, and it keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_request_heads_and_scripts() {
    let _shared = MEMORY.read().await;
    let server = feed(|s| s.header_read_timeout = Duration::from_secs(3)).await;
    let addr = addr(&server);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..6 {
        for i in 0..4 {
            server.write(&format!("fuzz{round}_{i}.js"), &random_script(&mut rng));
        }
        let heads: Vec<Vec<u8>> = (0..500).map(|_| random_head(&mut rng)).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in heads.chunks(50) {
            let (addr, chunk) = (addr.clone(), chunk.to_vec());
            tasks.spawn(async move {
                for head in chunk {
                    let reply = exchange(&addr, head.clone(), true, TIMEOUT).await;
                    let ok = match &reply {
                        None => false,
                        Some(r) => r.is_empty() || r.starts_with(b"HTTP/1."),
                    };
                    assert!(
                        ok,
                        "{:?} -> {:?}",
                        String::from_utf8_lossy(&head),
                        reply.map(|r| String::from_utf8_lossy(&r).into_owned())
                    );
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_eq!(server.get_text("/hello").await, (200, "hi".into()));
        assert_eq!(server.get("/_engine/routes").await.status(), 200);
        assert_eq!(server.get("/_engine").await.status(), 200);
    }
}
