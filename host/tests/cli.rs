//! The real binary: its help, its startup and log lines, its cache and
//! environment, and a clean shutdown on SIGTERM and SIGINT with a request in
//! flight and subscribers on both connection paths.
//!
//! Every server here caches the compiled guest under the target folder (never
//! `~/.cache`), and is killed when its test ends, even a failing one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_aiwebengine");
const TIMEOUT: Duration = Duration::from_secs(20);

/// The guest cache the tests share: warm after the first start.
fn test_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-guest-cache")
}

#[test]
fn help_lists_every_serve_flag() {
    let help = common::serve_help();
    // The README's Command line table, in order.
    for flag in [
        "--scripts",
        "--listen",
        "--max-body-bytes",
        "--no-watch",
        "--workers",
        "--cpu-budget",
        "--fuel",
        "--timeout-ms",
        "--memory-mb",
        "--max-timers",
        "--queue-depth",
        "--stream-lag",
        "--replay-messages",
        "--replay-bytes",
        "--max-subscribers-per-stream",
        "--max-subscribers",
        "--keep-alive-secs",
        "--write-stall-secs",
        "--shutdown-timeout-secs",
        "--cache-dir",
        "--no-cache",
    ] {
        // The flag itself, not a longer one it is the start of.
        let listed = help.lines().any(|line| {
            line.trim_start()
                .strip_prefix(flag)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '=', '<', ',']))
        });
        assert!(listed, "{flag} missing from:\n{help}");
    }
}

/// A running `aiwebengine serve`, killed on drop; its log lines are collected.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary with `args` (after `serve`) and `env`, and waits for
    /// its `listening on` line.
    fn start(args: &[&str], env: &[(&str, &Path)]) -> Server {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("AIWEBENGINE_SCRIPTS")
            .env_remove("AIWEBENGINE_LISTEN")
            // Never the real ~/.cache, whatever a test leaves out.
            .env("XDG_CACHE_HOME", test_cache().join("xdg"))
            // A storage folder of its own: two servers may not share one.
            .env("AIWEBENGINE_DATA", fresh_data_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let _ = addr_tx.send(rest.trim().to_string());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut server = Server {
            child,
            addr: String::new(),
            log,
        };
        server.addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listening line; log:\n{}", server.log_text()));
        server
    }

    /// Starts it over `scripts` on a free port, with the shared test cache.
    fn serve(scripts: &Path, extra: &[&str]) -> Server {
        let cache = test_cache();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--scripts",
            scripts.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::start(&args, &[])
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The log entry holding `needle`, from its line up to the next timestamped
    /// one; waits until it satisfies `check` (its later lines may still be coming).
    fn wait_for_entry(&self, needle: &str, check: impl Fn(&str) -> bool) -> String {
        let entry = || {
            let log = self.log.lock().unwrap();
            let start = log.iter().position(|l| l.contains(needle))?;
            let mut entry = log[start].clone();
            for line in log.iter().skip(start + 1) {
                if line.starts_with("20") {
                    break; // the next entry's timestamp
                }
                entry.push('\n');
                entry.push_str(line);
            }
            Some(entry)
        };
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(entry) = entry().filter(|e| check(e)) {
                return entry;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no complete log entry {needle:?}; found {:?} in:\n{}",
            entry(),
            self.log_text()
        );
    }

    /// Waits until a log line satisfies `check`; returns it.
    fn wait_for_line(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| check(l)) {
                return line.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line {what}; log:\n{}", self.log_text());
    }

    fn connect(&self) -> TcpStream {
        let tcp = TcpStream::connect(&self.addr).unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        tcp
    }

    /// One request on a fresh connection; the whole response.
    fn request(&self, method: &str, path: &str) -> String {
        let mut tcp = self.connect();
        write!(
            tcp,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).unwrap();
        out
    }
}

/// Reads from `tcp` until `needle` has arrived; everything read.
fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = tcp
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

const FEED: &str = r#"routeRegistry.registerStreamRoute('/feed');
routeRegistry.registerRoute('GET', '/page', () => ({ body: 'p' }));
routeRegistry.registerRoute('GET', '/slow', async () => {
  sendStreamMessage({ slow: 'started' });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return { body: 'finished' };
});
"#;

#[test]
fn it_logs_each_script_with_its_routes() {
    let dir = common::scripts(&[("feed.js", FEED)]);
    let server = Server::serve(dir.path(), &[]);
    let loaded = server.wait_for_line("loaded", |l| l.contains("loaded"));
    assert!(
        loaded.contains("feed.js")
            && loaded.contains("GET /page")
            && loaded.contains("GET /slow")
            && loaded.contains("stream /feed"),
        "{loaded}"
    );
}

fn shuts_down_cleanly_on(signal: &str) {
    let dir = common::scripts(&[("feed.js", FEED)]);
    // A long timeout: exiting well before it shows the streams really ended.
    let mut server = Server::serve(dir.path(), &["--shutdown-timeout-secs", "60"]);

    // A subscriber on a fresh connection (served on the socket)...
    let mut fresh = server.connect();
    write!(
        fresh,
        "GET /feed HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    assert!(read_until(&mut fresh, "retry: 2000").starts_with("HTTP/1.1 200"));
    // ...and one on a reused keep-alive connection (served through hyper).
    let mut reused = server.connect();
    write!(reused, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_until(&mut reused, "\r\n\r\np");
    write!(
        reused,
        "GET /feed HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    read_until(&mut reused, "retry: 2000");
    // A request in flight: its handler has started and waits on a timer.
    let mut slow = server.connect();
    write!(
        slow,
        "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_until(&mut fresh, "\"slow\":\"started\"");
    read_until(&mut reused, "\"slow\":\"started\"");

    let started = Instant::now();
    common::signal(&server.child, signal);
    server.wait_for_line("saying it stopped accepting", |l| {
        l.contains("no new connections")
    });
    // New connections are refused (or closed unanswered).
    match TcpStream::connect(&server.addr) {
        Err(_) => {}
        Ok(mut tcp) => {
            tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
            let _ = write!(tcp, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut answer = Vec::new();
            let _ = tcp.read_to_end(&mut answer);
            assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
        }
    }
    // Both streams end (EOF, not a read timeout)...
    for (name, tcp) in [("fresh", &mut fresh), ("reused", &mut reused)] {
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("the {name} stream did not end: {e}"));
    }
    // ...the request in flight finishes...
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("finished"),
        "{answer}"
    );
    // ...and the process exits 0 on its own, long before its 60 s timeout.
    let status = common::exit_within(&mut server.child, TIMEOUT)
        .unwrap_or_else(|| panic!("still running after {TIMEOUT:?}"));
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sigterm_finishes_requests_ends_streams_and_exits_0() {
    shuts_down_cleanly_on("-TERM");
}

#[test]
fn sigint_finishes_requests_ends_streams_and_exits_0() {
    shuts_down_cleanly_on("-INT");
}

#[test]
fn script_logs_stacks_timer_errors_and_conflicts_are_logged() {
    let dir = common::scripts(&[
        (
            "a_first.js",
            "routeRegistry.registerRoute('GET', '/shared', () => ({ body: 'a' }));\n",
        ),
        (
            "b_logs.js",
            r#"routeRegistry.registerRoute('GET', '/shared', () => ({ body: 'b' }));
console.log("top level says", { n: 1 });
function explode() {
  throw new Error("boom on purpose");
}
routeRegistry.registerRoute('GET', '/throw', () => explode());
setTimeout(() => { throw new TypeError("tick failed"); }, 1);
"#,
        ),
    ]);
    let server = Server::serve(dir.path(), &[]);
    let line = server.wait_for_line("of the script's console", |l| {
        l.contains("top level says {\"n\":1}")
    });
    assert!(
        line.contains("INFO") && line.contains("script") && line.contains("b_logs.js"),
        "{line}"
    );
    let line = server.wait_for_line("of the conflict", |l| {
        l.contains("GET /shared is already registered by a_first.js")
    });
    assert!(line.contains("b_logs.js"), "{line}");
    // Multi-line entries: the message, the JS stack, then the fields.
    server.wait_for_entry("timer callback threw: TypeError: tick failed", |entry| {
        entry.contains("ERROR")
            && entry.contains("b_logs.js:7")
            && entry.contains("script=\"b_logs.js\"")
    });

    let answer = server.request("GET", "/throw");
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(answer.contains("boom on purpose"), "{answer}");
    // The JS stack follows, through the script's own function.
    server.wait_for_entry("handler threw Error: boom on purpose", |entry| {
        entry.contains("at explode") && entry.contains("b_logs.js:4")
    });
}

fn cached_guests(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("guest-") && n.ends_with(".cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_guest_is_built_in_for_default_limits_else_cached_per_cache_dir_no_cache_xdg() {
    let scripts = common::scripts(&[("feed.js", FEED)]);
    // This folder on a free port.
    let serve = [
        "--listen",
        "127.0.0.1:0",
        "--scripts",
        scripts.path().to_str().unwrap(),
    ];
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = ["--cache-dir", cache.path().to_str().unwrap()];

    // The default limits (wasm fuel off): build.rs compiled the guest for
    // them, so the server neither compiles nor caches it.
    let server = Server::start(&[&serve[..], &cache_dir].concat(), &[]);
    assert!(server.request("GET", "/page").ends_with("\r\n\r\np"));
    assert!(
        !server.log_text().contains("compiled the guest"),
        "{}",
        server.log_text()
    );
    drop(server);
    assert!(cached_guests(cache.path()).is_empty());

    // Other limits need other native code: compiled at start, cached in --cache-dir.
    // The servers below run with wasm fuel on, so they compile.
    let serve = [&serve[..], &["--fuel", "1000000000"]].concat();
    let server = Server::start(&[&serve[..], &cache_dir].concat(), &[]);
    assert!(server.request("GET", "/page").ends_with("\r\n\r\np"));
    assert!(
        server.log_text().contains("compiled the guest"),
        "{}",
        server.log_text()
    );
    drop(server);
    assert_eq!(cached_guests(cache.path()).len(), 1);

    // --no-cache: nothing written, not even to the default folder.
    let xdg = tempfile::tempdir().unwrap();
    let server = Server::start(
        &[&serve[..], &["--no-cache"]].concat(),
        &[("XDG_CACHE_HOME", xdg.path())],
    );
    assert!(server.request("GET", "/page").ends_with("\r\n\r\np"));
    drop(server);
    assert_eq!(std::fs::read_dir(xdg.path()).unwrap().count(), 0);

    // No cache flag: $XDG_CACHE_HOME/aiwebengine; the folder and address from the environment.
    let server = Server::start(
        &["--fuel", "1000000000"],
        &[
            ("XDG_CACHE_HOME", xdg.path()),
            ("AIWEBENGINE_SCRIPTS", scripts.path()),
            ("AIWEBENGINE_LISTEN", Path::new("127.0.0.1:0")),
        ],
    );
    assert!(server.request("GET", "/page").ends_with("\r\n\r\np"));
    assert_eq!(cached_guests(&xdg.path().join("aiwebengine")).len(), 1);
}

/// A new, empty storage folder under `target/` for one server.
fn fresh_data_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = test_cache().join(format!("data-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
