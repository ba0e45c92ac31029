//! The real binary, as an operator runs it: JSON log lines (parsed one by one),
//! request ids in them, the warning for an exposed `/_engine`, and health
//! while the scripts load and while it shuts down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_aiwebengine");
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn help_lists_the_operating_flags() {
    let help = common::serve_help();
    let flags = ["--log-format", "--admin-token", "--shutdown-drain-secs"];
    let variables = ["AIWEBENGINE_LOG_FORMAT", "AIWEBENGINE_ADMIN_TOKEN"];
    for flag in flags.iter().chain(&variables) {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// The server process and its stdout, line by line, from a reader thread.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(scripts: &std::path::Path, args: &[&str], rust_log: &str) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .arg("--scripts")
            .arg(scripts)
            // Storage of its own: two servers may not share a data dir.
            .arg("--data-dir")
            .arg(scripts.join(".data"))
            .arg("--cache-dir")
            .arg(concat!(env!("CARGO_TARGET_TMPDIR"), "/guest-cache"))
            .env("RUST_LOG", rust_log)
            .env_remove("AIWEBENGINE_ADMIN_TOKEN")
            .env_remove("AIWEBENGINE_LOG_FORMAT")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `want`; panics at the deadline or EOF.
    fn line_where(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no line {what} ({e}); saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn terminate(&self) {
        common::signal(&self.child, "-TERM");
    }

    /// Waits for the process to exit (successfully), then returns every line it wrote.
    fn finish(mut self) -> Vec<String> {
        let status = common::exit_within(&mut self.child, TIMEOUT);
        let status = status.unwrap_or_else(|| panic!("the server did not exit"));
        assert!(status.success(), "{status}");
        // The reader thread ends at EOF; take what it still holds.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, head, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    tcp.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

#[test]
fn json_logs_are_one_object_per_line_and_carry_request_ids() {
    let dir = common::scripts(&[(
        "app.js",
        r#"
routeRegistry.registerRoute("GET", "/whoami/:who", (req) => {
  console.log("whoami called by", req.params.who);
  return { body: { id: req.id } };
});
routeRegistry.registerRoute("GET", "/spin", () => { for (;;) {} });
"#,
    )]);
    // Every interface: /_engine is closed without a token, and the start says so.
    let mut server = Server::start(
        dir.path(),
        &[
            "--listen",
            "0.0.0.0:0",
            "--log-format",
            "json",
            "--cpu-budget",
            "2000",
        ],
        "info,http=debug",
    );
    let listening = server.line_where("saying where it listens", |l| {
        l.contains("listening on http://")
    });
    let port = json(&listening)["message"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .to_string();
    let addr = format!("127.0.0.1:{port}");

    let (status, head, body) = http(
        &addr,
        "GET",
        "/whoami/ada",
        &[("X-Request-Id", "trace-me-1")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("\r\nx-request-id: trace-me-1"), "{head}");
    assert_eq!(json(&body)["id"], "trace-me-1");
    assert_eq!(
        http(&addr, "GET", "/spin", &[("X-Request-Id", "spinner")]).0,
        503
    );
    assert_eq!(http(&addr, "GET", "/_engine/routes", &[]).0, 403);
    server.terminate();
    let lines = server.finish();

    let logs: Vec<serde_json::Value> = lines.iter().map(|l| json(l)).collect();
    for log in &logs {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(log[key].is_string(), "{key} missing in {log}");
        }
    }
    let find = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        logs.iter()
            .find(|l| pred(l))
            .cloned()
            .unwrap_or_else(|| panic!("no {what} line in:\n{}", lines.join("\n")))
    };
    let loaded = find("loaded", &|l| l["message"] == "loaded");
    assert_eq!(loaded["script"], "app.js");
    let warning = find("exposure warning", &|l| {
        l["level"] == "WARN" && l["message"].as_str().unwrap().contains("--admin-token")
    });
    assert_eq!(warning["listen"], format!("0.0.0.0:{port}"));
    let console = find("console", &|l| l["target"] == "script");
    assert_eq!(console["message"], "whoami called by ada");
    assert_eq!(console["script"], "app.js");
    assert_eq!(console["request_id"], "trace-me-1");
    assert_eq!(console["level"], "INFO");
    let access = find("access", &|l| {
        l["target"] == "http" && l["request_id"] == "trace-me-1"
    });
    assert_eq!(access["status"], 200);
    assert_eq!(access["script"], "app.js");
    assert_eq!(access["route"], "/whoami/:who");
    assert_eq!(access["path"], "/whoami/ada");
    assert!(access["duration_ms"].as_f64().unwrap() > 0.0, "{access}");
    let limit = find("limit", &|l| l["limit"].is_string());
    assert_eq!(limit["limit"], "cpu");
    assert_eq!(limit["script"], "app.js");
    assert_eq!(limit["request_id"], "spinner");
    let denied = find("403 access", &|l| {
        l["target"] == "http" && l["status"] == 403
    });
    assert_eq!(denied["path"], "/_engine/routes");
}

#[test]
fn health_says_loading_then_ready_then_shutting_down() {
    // A top level that takes a while, so the loading state can be seen.
    let dir = common::scripts(&[(
        "slow.js",
        "const end = Date.now() + 1500; while (Date.now() < end) {}\nrouteRegistry.registerRoute('GET', '/hi', () => ({ body: 'hi' }));\n",
    )]);
    let mut server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--cpu-budget",
            "0",
            "--timeout-ms",
            "10000",
            "--shutdown-drain-secs",
            "2",
        ],
        "info",
    );
    let accepting = server.line_where("accepting connections", |l| {
        l.contains("accepting connections on http://")
    });
    let addr = accepting
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();

    let (status, head, body) = http(&addr, "GET", "/_engine/health/ready", &[]);
    assert_eq!(status, 503, "still loading: {body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(
        json(&body),
        serde_json::json!({ "ready": false, "reason": "loading scripts" })
    );
    assert_eq!(http(&addr, "GET", "/_engine/health/live", &[]).0, 200);

    server.line_where("listening (loaded)", |l| l.contains("listening on http://"));
    let (status, _, body) = http(&addr, "GET", "/_engine/health/ready", &[]);
    assert_eq!(
        (status, json(&body)),
        (200, serde_json::json!({ "ready": true }))
    );
    assert_eq!(http(&addr, "GET", "/hi", &[]).0, 200);

    server.terminate();
    // During the drain: not ready (with the reason), but alive and serving.
    let body = common::poll(TIMEOUT, Duration::from_millis(20), || {
        let (status, _, body) = http(&addr, "GET", "/_engine/health/ready", &[]);
        (status == 503).then_some(body)
    })
    .unwrap_or_else(|| panic!("ready never turned 503"));
    assert_eq!(
        json(&body),
        serde_json::json!({ "ready": false, "reason": "shutting down" })
    );
    assert_eq!(http(&addr, "GET", "/_engine/health/live", &[]).0, 200);
    assert_eq!(http(&addr, "GET", "/hi", &[]).0, 200);
    let lines = server.finish();
    assert!(
        lines.iter().any(|l| l.contains("drain")),
        "{}",
        lines.join("\n")
    );
    assert!(
        TcpStream::connect(&addr).is_err(),
        "no longer accepting after the drain"
    );
}
