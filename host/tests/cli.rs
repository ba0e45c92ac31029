//! The real binary: its help, its startup line, and a clean shutdown on SIGTERM
//! with a stream open.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aiwebengine");

#[test]
fn help_lists_the_serve_flags() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--scripts",
        "--listen",
        "--no-watch",
        "--fuel",
        "--timeout-ms",
        "--memory-mb",
        "--max-timers",
        "--replay-messages",
        "--keep-alive-secs",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

struct Server {
    child: Child,
    addr: String,
    log: Vec<String>,
}

fn start(scripts: &std::path::Path) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shutdown-timeout-secs",
            "3",
        ])
        .arg("--scripts")
        .arg(scripts)
        .arg("--data-dir")
        .arg(scripts.join(".data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        log.push(line.clone());
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr, log }
}

#[test]
fn it_logs_each_script_and_exits_cleanly_on_sigterm_with_a_stream_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feed.js"),
        "routeRegistry.registerStreamRoute('/feed');\nrouteRegistry.registerRoute('GET', '/page', () => ({ body: 'p' }));\n",
    )
    .unwrap();
    let mut server = start(dir.path());
    let loaded = server
        .log
        .iter()
        .find(|l| l.contains("loaded"))
        .expect("a loaded line");
    assert!(
        loaded.contains("feed.js")
            && loaded.contains("GET /page")
            && loaded.contains("stream /feed"),
        "{loaded}"
    );

    let mut sse = TcpStream::connect(&server.addr).unwrap();
    write!(
        sse,
        "GET /feed HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 512];
    let n = sse.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));

    let started = Instant::now();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // The stream ends (EOF) and the process exits on its own, well within its timeout.
    let mut rest = Vec::new();
    sse.read_to_end(&mut rest).expect("the stream ends cleanly");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
