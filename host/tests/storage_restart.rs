//! Storage across real process lifetimes: kill -9 and SIGTERM right after
//! acknowledged writes, a second server on the same data dir, a corrupt
//! database file, and `aiwebengine storage dump|restore` on a stopped and on a
//! running server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_aiwebengine");

const SCRIPT: &str = r#"
routeRegistry.registerRoute("PUT", "/kv/:key", (req) => {
  storage.set(req.params.key, JSON.parse(req.body));
  return { body: "ok" };
});
routeRegistry.registerRoute("GET", "/count", () => {
  let n = 0, after;
  for (;;) {
    const page = storage.list({ after, limit: 1000 });
    if (page.length === 0) break;
    n += page.length;
    after = page[page.length - 1].key;
  }
  return { body: { n } };
});
routeRegistry.registerRoute("GET", "/kv/:key", (req) => ({ body: { value: storage.get(req.params.key) ?? null } }));
"#;

struct Dirs {
    _root: tempfile::TempDir,
    scripts: PathBuf,
    data: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let scripts = root.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::write(scripts.join("kv.js"), SCRIPT).unwrap();
    let data = root.path().join("data");
    Dirs {
        scripts,
        data,
        _root: root,
    }
}

/// A running server, killed (SIGKILL) on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dirs: &Dirs) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-watch"])
        .arg("--scripts")
        .arg(&dirs.scripts)
        .arg("--data-dir")
        .arg(&dirs.data)
        .env("RUST_LOG", "info");
    cmd
}

fn start(dirs: &Dirs) -> Server {
    let mut child = command(dirs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

/// One request on a fresh connection; (status, body).
fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn count(addr: &str) -> u64 {
    let (status, body) = request(addr, "GET", "/count", "");
    assert_eq!(status, 200, "{body}");
    let v: serde_like::Count = serde_like::parse(&body);
    v.n
}

/// Just enough JSON for `{"n": 123}` without a dev-dependency.
mod serde_like {
    pub struct Count {
        pub n: u64,
    }
    pub fn parse(body: &str) -> Count {
        let n = body
            .split("\"n\":")
            .nth(1)
            .and_then(|rest| {
                rest.trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .map(str::to_string)
            })
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no count in {body:?}"));
        Count { n }
    }
}

fn write_200(addr: &str) {
    for i in 0..200 {
        let (status, body) = request(addr, "PUT", &format!("/kv/k{i:03}"), &i.to_string());
        assert_eq!(status, 200, "write {i}: {body}");
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dirs = dirs();
    let mut server = start(&dirs);
    write_200(&server.addr);
    server.child.kill().unwrap(); // SIGKILL, right after the last 200
    server.child.wait().unwrap();
    let again = start(&dirs);
    assert_eq!(count(&again.addr), 200);
    let (_, body) = request(&again.addr, "GET", "/kv/k199", "");
    assert!(body.contains("199"), "{body}");
}

#[test]
fn acknowledged_writes_survive_sigterm() {
    let dirs = dirs();
    let mut server = start(&dirs);
    write_200(&server.addr);
    common::signal(&server.child, "-TERM");
    assert!(server.child.wait().unwrap().success());
    let again = start(&dirs);
    assert_eq!(count(&again.addr), 200);
}

/// Runs the binary with `args` on `data`, `stdin` fed to it; asserts it
/// succeeded and returns its stdout.
fn run(args: &[&str], data: &Path, stdin: Option<&str>) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    common::succeeded(child.wait_with_output().unwrap())
}

#[test]
fn a_second_server_on_the_same_data_dir_exits_with_one_line() {
    let dirs = dirs();
    let _server = start(&dirs);
    let out = command(&dirs).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("in use") && last.contains("storage.redb"),
        "{stderr}"
    );
    assert!(last.starts_with("aiwebengine: "), "{stderr}");
}

#[test]
fn a_corrupt_database_is_refused_by_name_and_left_as_it_is() {
    let dirs = dirs();
    std::fs::create_dir_all(&dirs.data).unwrap();
    let file = dirs.data.join("storage.redb");
    let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&file, &garbage).unwrap();
    let out = command(&dirs).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        garbage,
        "the file was changed"
    );
}

#[test]
fn dump_and_restore_on_a_stopped_and_on_a_running_server() {
    let dirs = dirs();
    let mut server = start(&dirs);
    request(&server.addr, "PUT", "/kv/a", "{\"x\":1}");
    request(&server.addr, "PUT", "/kv/b", "\"two\"");

    // Running: through the server, which holds the database.
    let dumped = run(&["storage", "dump", "kv"], &dirs.data, None);
    assert_eq!(
        dumped,
        "{\"key\":\"a\",\"value\":{\"x\":1}}\n{\"key\":\"b\",\"value\":\"two\"}\n"
    );
    run(
        &["storage", "restore", "kv", "-"],
        &dirs.data,
        Some("{\"key\":\"c\",\"value\":3}\n"),
    );
    assert_eq!(count(&server.addr), 1);
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // Stopped: the command opens the database itself.
    assert_eq!(
        run(&["storage", "dump", "kv.js"], &dirs.data, None),
        "{\"key\":\"c\",\"value\":3}\n"
    );
    let backup = dirs.data.join("../backup.jsonl");
    std::fs::write(&backup, &dumped).unwrap();
    run(
        &["storage", "restore", "kv", backup.to_str().unwrap()],
        &dirs.data,
        None,
    );
    let again = start(&dirs);
    assert_eq!(count(&again.addr), 2);
    let (_, body) = request(&again.addr, "GET", "/kv/b", "");
    assert!(body.contains("two"), "{body}");
}
