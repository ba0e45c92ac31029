//! Cluster mode (`serve --redis`), with real processes: redis-server, three
//! `aiwebengine serve` nodes and, for failover, nginx rendered from
//! `deploy/nginx.conf`. Needs `redis-server` and `nginx` (`tools/cluster-deps.sh`,
//! run by `make unit`).
//!
//! Tests that leave Redis alone share one redis-server, each in a database of its
//! own, with its own stream path, script name and node names; the fault tests
//! (Redis stopped, restarted empty, absent at start) each start their own.
//! Every process is killed when its test ends, even a failing one (the shared
//! Redis when the test binary exits), and every wait has a deadline.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::poll;

const BIN: &str = env!("CARGO_BIN_EXE_aiwebengine");
/// The longest any single condition may take to come true.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Read timeout of every socket.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- processes

/// `cmd` dies with the thread that spawns it (a backstop to the kill on drop,
/// for a test binary that is itself killed).
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `check` holds, polling; panics with `what` (and `detail()`) at
/// the deadline.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let done = poll(timeout, Duration::from_millis(25), || check().then_some(()));
    assert!(done.is_some(), "timed out waiting for {what}");
}

fn find_program(name: &str) -> String {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path.display().to_string();
        }
    }
    let on_path = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    assert!(
        !on_path.is_empty(),
        "{name} is not installed: run tools/cluster-deps.sh (or `make unit`, which does)"
    );
    on_path
}

/// A redis-server on a loopback port, killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let mut redis = Redis::not_started();
        for _ in 0..5 {
            if redis.spawn() {
                return redis;
            }
            redis.port = free_port(); // taken meanwhile: another one
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// A Redis on a port where none runs yet (`spawn` starts it).
    fn not_started() -> Redis {
        Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts redis-server on `self.port` with `self.dir` (loading a dump there,
    /// if any); true once it answers PING, false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(find_program("redis-server"));
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "notice", "--databases", "16"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = die_with_parent(&mut cmd).spawn().unwrap();
        let answered = poll(TIMEOUT, Duration::from_millis(20), || {
            match child.try_wait().unwrap() {
                Some(_) => Some(false),
                None => self.ping().then_some(true),
            }
        })
        .unwrap_or_else(|| panic!("redis-server on {} never answered", self.port));
        if answered {
            self.child = Some(child);
        }
        answered
    }

    fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        assert!(self.spawn(), "redis-server did not start again");
    }

    fn url(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// One inline command; Redis's first reply line.
    fn command(&self, line: &str) -> std::io::Result<String> {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
        tcp.write_all(format!("{line}\r\n").as_bytes())?;
        let mut reply = String::new();
        BufReader::new(tcp).read_line(&mut reply)?;
        Ok(reply)
    }

    fn ping(&self) -> bool {
        self.command("PING").is_ok_and(|r| r.starts_with("+PONG"))
    }

    /// Stops it: `SHUTDOWN SAVE` (its data comes back with `restart`) or SIGKILL
    /// (it comes back empty).
    fn stop(&mut self, keep_data: bool) {
        let mut child = self.child.take().expect("not running");
        if keep_data {
            let _ = self.command("SHUTDOWN SAVE");
        } else {
            let _ = child.kill();
        }
        let stopped = poll(TIMEOUT, Duration::from_millis(10), || {
            child.try_wait().unwrap()
        });
        assert!(stopped.is_some(), "redis-server did not stop");
        if !keep_data {
            let _ = std::fs::remove_file(self.dir.path().join("dump.rdb"));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Redis shared by the tests that do not stop it. It is spawned by a thread
/// that never ends and never dropped, so it dies with the test binary (its
/// parent-death signal goes with the thread that spawned it).
fn shared_redis() -> &'static Redis {
    static REDIS: OnceLock<&'static Redis> = OnceLock::new();
    REDIS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let redis: &'static Redis = Box::leak(Box::new(Redis::start()));
            tx.send(redis).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the shared Redis did not start")
    })
}

/// The guest cache the nodes share: warm after the first start.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster-guest-cache")
}

/// A running `aiwebengine serve`, killed on drop; its log lines are kept and
/// printed when its test fails.
struct Node {
    child: Child,
    name: String,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _data: tempfile::TempDir,
}

impl Node {
    /// Serves `scripts`, in a cluster on `redis` (a URL) when given.
    fn start(scripts: &Path, redis: Option<&str>, name: &str) -> Node {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-watch"])
            .arg("--scripts")
            .arg(scripts)
            .arg("--data-dir")
            .arg(data.path())
            .arg("--cache-dir")
            .arg(cache_dir())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("AIWEBENGINE_REDIS")
            .env_remove("AIWEBENGINE_NODE_NAME")
            .env_remove("AIWEBENGINE_ADMIN_TOKEN")
            .env_remove("AIWEBENGINE_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = redis {
            cmd.args(["--redis", url, "--node-name", name]);
        }
        let mut child = die_with_parent(&mut cmd).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (pipe, addr_tx) in [
            (Box::new(stdout) as Box<dyn Read + Send>, Some(addr_tx)),
            (Box::new(stderr) as Box<dyn Read + Send>, None),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let (Some(tx), Some(rest)) =
                        (&addr_tx, line.split("listening on http://").nth(1))
                    {
                        let _ = tx.send(rest.trim().to_string());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut node = Node {
            child,
            name: name.to_string(),
            addr: String::new(),
            log,
            _data: data,
        };
        node.addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{name}: no `listening on` line"));
        node
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, "")
    }

    /// `POST /pub` of `{data, filter}`: the subscribers of this node reached.
    fn publish(&self, data: Value, filter: Option<Value>) -> usize {
        let (status, body) = self.try_publish(&data, filter.as_ref());
        assert_eq!(status, 200, "{}: publishing {data}: {body}", self.name);
        json_of(&body)["reached"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {body}")) as usize
    }

    fn try_publish(&self, data: &Value, filter: Option<&Value>) -> (u16, String) {
        let body = json!({ "data": data, "filter": filter }).to_string();
        http(&self.addr, "POST", "/pub", &body)
    }

    /// `GET /_engine/routes`, parsed.
    fn routes(&self) -> Value {
        let (status, body) = self.get("/_engine/routes");
        assert_eq!(status, 200, "{body}");
        json_of(&body)
    }

    fn cluster(&self) -> Value {
        self.routes()["cluster"].clone()
    }

    /// This node's subscriber count for `stream`, per `/_engine/routes`.
    fn subscribers(&self, stream: &str) -> u64 {
        let routes = self.routes();
        routes["scripts"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["streams"].as_array().cloned().unwrap_or_default())
            .find(|s| s["path"] == stream)
            .and_then(|s| s["subscribers"].as_u64())
            .unwrap_or_else(|| panic!("no stream {stream} in {routes}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap();
            let skip = log.len().saturating_sub(60);
            eprintln!("---- log of node {} ({}) ----", self.name, self.addr);
            for line in log.iter().skip(skip) {
                eprintln!("{line}");
            }
        }
    }
}

/// The test script: a stream, `POST /pub` sending `{data, filter}` to it and
/// answering `{reached}`, and storage routes.
fn script(stream: &str) -> String {
    format!(
        r#"routeRegistry.registerStreamRoute("{stream}");
routeRegistry.registerRoute("POST", "/pub", (req) => {{
  const {{ data, filter }} = JSON.parse(req.body);
  return {{ body: {{ reached: routeRegistry.sendStreamMessage("{stream}", data, filter ?? undefined) }} }};
}});
routeRegistry.registerRoute("GET", "/ping", () => ({{ body: "pong" }}));
routeRegistry.registerRoute("GET", "/kv/:key", (req) => ({{ body: {{ value: storage.get(req.params.key) ?? null }} }}));
routeRegistry.registerRoute("PUT", "/kv/:key", (req) => {{
  storage.set(req.params.key, JSON.parse(req.body));
  return {{ body: "ok" }};
}});
routeRegistry.registerRoute("POST", "/incr/:key", (req) => ({{ body: {{ n: storage.increment(req.params.key) }} }}));
"#
    )
}

/// Nodes serving one scripts folder, in one cluster.
struct Cluster {
    nodes: Vec<Node>,
    stream: String,
    scripts: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes named `{tag}-A`, `{tag}-B`... on `redis_url`, serving the test
    /// script as `{tag}.js` with the stream `/{tag}/s`.
    fn start(tag: &str, redis_url: &str, n: usize) -> Cluster {
        let scripts = tempfile::tempdir().unwrap();
        let stream = format!("/{tag}/s");
        std::fs::write(scripts.path().join(format!("{tag}.js")), script(&stream)).unwrap();
        let nodes = (0..n)
            .map(|i| {
                let name = format!("{tag}-{}", (b'A' + i as u8) as char);
                Node::start(scripts.path(), Some(redis_url), &name)
            })
            .collect();
        Cluster {
            nodes,
            stream,
            scripts,
        }
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Publishes `{"n": 0}` to `{"n": 4}` on node `from` while a subscriber
    /// on A listens; the five messages as it saw them (it is gone after).
    fn five_messages_seen_on_a(&self, from: usize) -> Vec<(u64, Value)> {
        let on_a = self.subscribe(0, "", None);
        for n in 0..5 {
            self.node(from).publish(json!({ "n": n }), None);
        }
        messages(&on_a.wait_messages(5))
    }

    fn subscribe(&self, i: usize, query: &str, last_event_id: Option<&str>) -> Sse {
        Sse::open(
            &self.nodes[i].addr,
            &format!("{}{query}", self.stream),
            last_event_id,
        )
    }
}

// ---------------------------------------------------------------- HTTP and SSE

/// One request on a fresh connection; (status, body), a chunked body decoded.
fn try_http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = answer
        .split_once("\r\n\r\n")
        .unwrap_or((answer.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {answer:?}")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut decoder = Chunked::default();
        String::from_utf8_lossy(&decoder.feed(rest.as_bytes())).into_owned()
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    try_http(addr, method, path, body).unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A `Transfer-Encoding: chunked` decoder fed bytes as they come.
#[derive(Default)]
struct Chunked {
    pending: Vec<u8>,
    /// Bytes left of the current chunk's data (then its CRLF).
    left: usize,
    in_data: bool,
    done: bool,
}

impl Chunked {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.done {
                return out;
            }
            if self.in_data {
                if self.pending.len() < self.left + 2 {
                    // Hand on what has arrived of the chunk so far.
                    let take = self.pending.len().min(self.left);
                    out.extend(self.pending.drain(..take));
                    self.left -= take;
                    return out;
                }
                out.extend(self.pending.drain(..self.left));
                self.pending.drain(..2);
                self.left = 0;
                self.in_data = false;
            } else {
                let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                    return out;
                };
                let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                self.pending.drain(..end + 2);
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                if size == 0 {
                    self.done = true;
                } else {
                    self.left = size;
                    self.in_data = true;
                }
            }
        }
    }
}

/// One SSE event as a client sees it.
#[derive(Clone, Debug, PartialEq)]
struct Event {
    id: Option<String>,
    /// `event:`; `None` for a plain message.
    name: Option<String>,
    data: String,
}

impl Event {
    fn id(&self) -> u64 {
        let id = self
            .id
            .as_deref()
            .unwrap_or_else(|| panic!("no id: {self:?}"));
        id.parse()
            .unwrap_or_else(|_| panic!("an id that is not a plain integer: {self:?}"))
    }
    fn json(&self) -> Value {
        json_of(&self.data)
    }
}

#[derive(Default)]
struct SseState {
    /// The response head, once read.
    head: Option<String>,
    events: Vec<Event>,
    /// Why the connection ended (EOF, an error), once it has.
    ended: Option<String>,
}

/// An SSE subscription over a raw socket, read by a thread of its own into
/// `events`; closed on drop.
struct Sse {
    tcp: TcpStream,
    what: String,
    state: Arc<(Mutex<SseState>, Condvar)>,
    closing: Arc<AtomicBool>,
}

impl Sse {
    /// `GET path` with `Accept: text/event-stream` (and `Last-Event-ID`); returns
    /// once the response head is in, asserting a 200.
    fn open(addr: &str, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{resume}\r\n"
        )
        .unwrap();
        let state = Arc::new((Mutex::new(SseState::default()), Condvar::new()));
        let closing = Arc::new(AtomicBool::new(false));
        let reader = tcp.try_clone().unwrap();
        {
            let state = state.clone();
            let closing = closing.clone();
            std::thread::spawn(move || read_sse(reader, &state, &closing));
        }
        let sse = Sse {
            tcp,
            what: format!("{path} on {addr}"),
            state,
            closing,
        };
        let head = sse.wait("the response head", |s| {
            s.head.is_some() || s.ended.is_some()
        });
        let head = head
            .head
            .unwrap_or_else(|| panic!("{}: no response head", sse.what));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "{}: subscribing: {head}",
            sse.what
        );
        sse
    }

    /// Waits (until `TIMEOUT`) for `check` on the state; a snapshot of it.
    fn wait(&self, what: &str, check: impl Fn(&SseState) -> bool) -> SseState {
        self.wait_for(what, TIMEOUT, check)
    }

    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&SseState) -> bool,
    ) -> SseState {
        let (lock, cond) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().unwrap();
        while !check(&state) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "{}: timed out waiting for {what}; ended: {:?}; events: {:#?}",
                self.what,
                state.ended,
                state.events
            );
            state = cond.wait_timeout(state, deadline - now).unwrap().0;
        }
        SseState {
            head: state.head.clone(),
            events: state.events.clone(),
            ended: state.ended.clone(),
        }
    }

    /// Waits for `n` plain messages; all the events so far.
    fn wait_messages(&self, n: usize) -> Vec<Event> {
        self.wait(&format!("{n} messages"), |s| {
            s.events.iter().filter(|e| e.name.is_none()).count() >= n
        })
        .events
    }

    /// Waits until a message's data has `key` equal to `value`.
    fn wait_data(&self, key: &str, value: &Value) -> Vec<Event> {
        self.wait(&format!("a message with {key} = {value}"), |s| {
            s.events
                .iter()
                .any(|e| e.name.is_none() && e.json().get(key) == Some(value))
        })
        .events
    }

    fn events(&self) -> Vec<Event> {
        self.state.0.lock().unwrap().events.clone()
    }

    fn ended(&self) -> Option<String> {
        self.state.0.lock().unwrap().ended.clone()
    }
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

fn read_sse(mut tcp: TcpStream, state: &(Mutex<SseState>, Condvar), closing: &AtomicBool) {
    let (lock, cond) = state;
    let end = |why: String| {
        lock.lock().unwrap().ended = Some(why);
        cond.notify_all();
    };
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    // The head.
    let (chunked, mut body) = loop {
        match tcp.read(&mut buf) {
            Ok(0) => return end("EOF before the response head".into()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return end(format!("reading the head: {e}")),
        }
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..at]).into_owned();
            let chunked = head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            lock.lock().unwrap().head = Some(head);
            cond.notify_all();
            break (chunked, raw.split_off(at + 4));
        }
    };
    let mut decoder = Chunked::default();
    let mut text = Vec::new();
    let (mut id, mut name, mut data): (Option<String>, Option<String>, Option<String>) =
        (None, None, None);
    loop {
        let bytes = if chunked {
            decoder.feed(&body)
        } else {
            std::mem::take(&mut body)
        };
        body.clear();
        text.extend_from_slice(&bytes);
        // Whole lines only; an event ends at a blank line.
        while let Some(at) = text.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = text.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if data.is_some() || name.is_some() {
                    lock.lock().unwrap().events.push(Event {
                        id: id.take(),
                        name: name.take(),
                        data: data.take().unwrap_or_default(),
                    });
                    cond.notify_all();
                }
                id = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "id" => id = Some(value),
                "event" => name = Some(value),
                "data" => {
                    data = Some(match data.take() {
                        Some(d) => format!("{d}\n{value}"),
                        None => value,
                    })
                }
                _ => {}
            }
        }
        if decoder.done {
            return end("the chunked body ended".into());
        }
        match tcp.read(&mut buf) {
            Ok(0) => return end("EOF".into()),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) if closing.load(Ordering::SeqCst) => return end(format!("closed: {e}")),
            Err(e) => return end(format!("read error: {e}")),
        }
    }
}

/// Opens a WebSocket on `path` and reads its first `n` text frames, as JSON.
fn websocket_frames(addr: &str, path: &str, n: usize) -> Vec<Value> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let deadline = Instant::now() + TIMEOUT;
    let mut frames = Vec::new();
    while frames.len() < n {
        assert!(Instant::now() < deadline, "{n} frames: got {frames:?}");
        let mut header = [0u8; 2];
        tcp.read_exact(&mut header).unwrap();
        let len = match header[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                tcp.read_exact(&mut ext).unwrap();
                u16::from_be_bytes(ext) as usize
            }
            127 => {
                let mut ext = [0u8; 8];
                tcp.read_exact(&mut ext).unwrap();
                u64::from_be_bytes(ext) as usize
            }
            short => short as usize,
        };
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).unwrap();
        match header[0] & 0x0f {
            1 => frames.push(json_of(&String::from_utf8_lossy(&payload))),
            8 => panic!("closed after {frames:?}"),
            _ => {} // ping, pong
        }
    }
    frames
}

/// The messages among `events` (not `missed`), as (id, data).
fn messages(events: &[Event]) -> Vec<(u64, Value)> {
    events
        .iter()
        .filter(|e| e.name.is_none())
        .map(|e| (e.id(), e.json()))
        .collect()
}

/// Sets its flag when dropped, by a panic too: stops a helper thread of a scope.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn assert_increasing(what: &str, ids: impl IntoIterator<Item = u64>) {
    let ids: Vec<u64> = ids.into_iter().collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "{what}: ids not increasing: {ids:?}"
    );
}

// ---------------------------------------------------------------- nginx

/// nginx rendered from `deploy/nginx.conf` for `upstreams`, killed on drop.
struct Nginx {
    child: Child,
    addr: String,
    prefix: tempfile::TempDir,
}

/// `deploy/nginx.conf` with its tokens replaced (comment lines left alone), as
/// deploy/run.sh renders it.
fn render_nginx_conf(prefix: &Path, listen: &str, upstreams: &[&str]) -> String {
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf"))
            .unwrap();
    let servers: String = upstreams
        .iter()
        .map(|a| format!("server {a} max_fails=1 fail_timeout=5s; "))
        .collect();
    template
        .lines()
        .map(|line| {
            if line.trim_start().starts_with('#') {
                line.to_string()
            } else {
                line.replace("@PREFIX@", &prefix.display().to_string())
                    .replace("@LISTEN@", listen)
                    .replace("@UPSTREAMS@", &servers)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Nginx {
    fn start(upstreams: &[&str]) -> Nginx {
        let prefix = tempfile::tempdir().unwrap();
        let nginx = find_program("nginx");
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let conf = prefix.path().join("nginx.conf");
            std::fs::write(&conf, render_nginx_conf(prefix.path(), &addr, upstreams)).unwrap();
            let mut cmd = Command::new(&nginx);
            cmd.arg("-p")
                .arg(prefix.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(prefix.path().join("error.log"))
                // A group of its own, so its workers are killed with it.
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = die_with_parent(&mut cmd).spawn().unwrap();
            // Listening, or the exit status.
            let outcome = poll(TIMEOUT, Duration::from_millis(20), || {
                match child.try_wait().unwrap() {
                    Some(status) => Some(Err(status)),
                    None => TcpStream::connect(&addr).is_ok().then_some(Ok(())),
                }
            })
            .unwrap_or_else(|| panic!("nginx never listened on {addr}"));
            if let Err(status) = outcome {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                assert!(err.contains("in use"), "nginx exited ({status}): {err}");
                continue; // the port was taken meanwhile: another one
            }
            return Nginx {
                child,
                addr,
                prefix,
            };
        }
        panic!("nginx did not start on any of 5 free ports");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master and its workers (a worker outlives a master killed alone).
        // SAFETY: a plain syscall on the process group nginx leads.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default();
            eprintln!("---- nginx error.log ----\n{log}");
        }
    }
}

// ---------------------------------------------------------------- a cuttable link

/// A TCP proxy to Redis for one node: `cut` closes its connections and refuses
/// new ones (Redis unreachable from that node alone), `restore` lets them
/// through again.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<TcpStream>>>,
    closing: Arc<AtomicBool>,
}

impl Proxy {
    fn start(redis_port: u16, up: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            up: Arc::new(AtomicBool::new(up)),
            links: Arc::new(Mutex::new(Vec::new())),
            closing: Arc::new(AtomicBool::new(false)),
        };
        let (up, links, closing) = (proxy.up.clone(), proxy.links.clone(), proxy.closing.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if closing.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", redis_port)) else {
                    continue;
                };
                let mut all = links.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                all.push(client);
                all.push(server);
            }
        });
        proxy
    }

    fn url(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            let _ = link.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
    }
}

// ---------------------------------------------------------------- the tests

/// (a) Messages published on every node at once reach every subscriber on
/// every node once, in one order, with the same ids; each send counts the
/// subscribers of its own node.
#[test]
fn a_publish_on_one_node_reaches_every_node_in_one_order() {
    let redis = shared_redis();
    let cluster = Cluster::start("fanout", &redis.url(1), 3);
    let subs = [
        cluster.subscribe(0, "", None),
        cluster.subscribe(1, "", None),
        cluster.subscribe(1, "", None),
        cluster.subscribe(2, "", None),
    ];
    const EACH: usize = 20;
    std::thread::scope(|scope| {
        for (i, local) in [(0, 1), (1, 2), (2, 1)] {
            let node = cluster.node(i);
            scope.spawn(move || {
                for n in 0..EACH {
                    let reached = node.publish(json!({ "from": node.name, "n": n }), None);
                    assert_eq!(reached, local, "{}: this node's subscribers", node.name);
                }
            });
        }
    });
    let seen: Vec<Vec<(u64, Value)>> = subs
        .iter()
        .map(|s| messages(&s.wait_messages(3 * EACH)))
        .collect();
    let first = &seen[0];
    assert_eq!(first.len(), 3 * EACH, "{first:?}");
    assert_increasing("A's subscriber", first.iter().map(|(id, _)| *id));
    for (i, other) in seen.iter().enumerate().skip(1) {
        assert_eq!(other, first, "subscriber {i} saw another sequence than A's");
    }
    // Each node's messages in the order it sent them, none lost or doubled.
    for node in &cluster.nodes {
        let ns: Vec<u64> = first
            .iter()
            .filter(|(_, d)| d["from"] == node.name.as_str())
            .map(|(_, d)| d["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (0..EACH as u64).collect::<Vec<_>>(), "{}", node.name);
    }
    // Nothing more arrives afterwards (no late duplicates).
    cluster.node(0).publish(json!({ "end": true }), None);
    for s in &subs {
        let events = s.wait_data("end", &json!(true));
        assert_eq!(messages(&events).len(), 3 * EACH + 1, "{events:#?}");
    }
}

/// (b) An EventSource that saw messages on A and reconnects to C with its
/// Last-Event-ID is replayed exactly what came after, then gets live ones.
#[test]
fn b_reconnecting_to_another_node_replays_exactly_what_was_missed() {
    let redis = shared_redis();
    let cluster = Cluster::start("replay", &redis.url(2), 3);
    let first = cluster.five_messages_seen_on_a(1);
    let last_id = first[4].0;
    for n in 5..10 {
        cluster.node(1).publish(json!({ "n": n }), None);
    }
    let on_c = cluster.subscribe(2, "", Some(&last_id.to_string()));
    let replayed = on_c.wait_messages(5);
    assert!(
        replayed.iter().all(|e| e.name.is_none()),
        "an event other than messages: {replayed:#?}"
    );
    for n in 10..13 {
        cluster.node(0).publish(json!({ "n": n }), None);
    }
    let events = on_c.wait_data("n", &json!(12));
    let got = messages(&events);
    assert_eq!(
        got.iter()
            .map(|(_, d)| d["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (5..13).collect::<Vec<_>>(),
        "{events:#?}"
    );
    assert_increasing(
        "after the reconnect",
        std::iter::once(last_id).chain(got.iter().map(|(id, _)| *id)),
    );
    // The ids are the cluster's: the messages 0..5 had the same ids on A and on C.
    let again = cluster.subscribe(2, "", Some(&first[0].0.to_string()));
    let replay = messages(&again.wait_messages(4));
    assert_eq!(replay[..4], first[1..], "ids differ between nodes");
    // A WebSocket resuming on B with ?lastEventId= gets the same.
    let frames = websocket_frames(
        &cluster.node(1).addr,
        &format!("{}?lastEventId={last_id}", cluster.stream),
        got.len(),
    );
    let over_ws: Vec<(u64, Value)> = frames
        .iter()
        .map(|f| (f["id"].as_u64().unwrap(), f["data"].clone()))
        .collect();
    assert_eq!(over_ws, got, "WebSocket on B against SSE on C");
}

/// (c) A filtered message reaches only the matching subscribers, on every
/// node, live and in a replay on another node.
#[test]
fn c_filters_apply_on_every_node() {
    let redis = shared_redis();
    let cluster = Cluster::start("rooms", &redis.url(3), 3);
    // On B and on C.
    let room1 = [1, 2].map(|i| cluster.subscribe(i, "?room=1", None));
    let room2 = [1, 2].map(|i| cluster.subscribe(i, "?room=2", None));
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    assert_eq!(a.publish(json!({ "m": "start" }), None), 0);
    assert_eq!(
        a.publish(json!({ "m": "r1" }), Some(json!({ "room": "1" }))),
        0
    );
    assert_eq!(a.publish(json!({ "m": "all" }), None), 0);
    assert_eq!(
        b.publish(json!({ "m": "r2" }), Some(json!({ "room": 2 }))),
        1
    );
    assert_eq!(c.publish(json!({ "m": "end" }), None), 2);
    let texts = |s: &Sse| -> Vec<String> {
        messages(&s.wait_data("m", &json!("end")))
            .iter()
            .map(|(_, d)| d["m"].as_str().unwrap().to_string())
            .collect()
    };
    for s in &room1 {
        assert_eq!(texts(s), ["start", "r1", "all", "end"]);
    }
    for s in &room2 {
        assert_eq!(texts(s), ["start", "all", "r2", "end"]);
    }
    // A room-2 subscriber moving to A is replayed with its filter.
    let start_id = messages(&room2[0].events())[0].0;
    let moved = cluster.subscribe(0, "?room=2", Some(&start_id.to_string()));
    assert_eq!(texts(&moved), ["all", "r2", "end"]);
}

/// (d) Storage is shared: written on A, read on B and C; 300 increments at once
/// over the three nodes give 300, each value handed out once.
#[test]
fn d_storage_is_shared_and_increments_are_atomic_across_nodes() {
    let redis = shared_redis();
    let cluster = Cluster::start("kv", &redis.url(4), 3);
    let (status, body) = http(
        &cluster.node(0).addr,
        "PUT",
        "/kv/greeting",
        "{\"hi\":[1,2]}",
    );
    assert_eq!(status, 200, "{body}");
    for node in &cluster.nodes[1..] {
        let (status, body) = node.get("/kv/greeting");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            json_of(&body)["value"],
            json!({ "hi": [1, 2] }),
            "{}",
            node.name
        );
    }

    const THREADS: usize = 12;
    const EACH: usize = 25;
    let handed_out = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (cluster, handed_out) = (&cluster, &handed_out);
            scope.spawn(move || {
                for i in 0..EACH {
                    let node = cluster.node((t + i) % 3);
                    let (status, body) = http(&node.addr, "POST", "/incr/hits", "");
                    assert_eq!(status, 200, "{}: {body}", node.name);
                    let n = json_of(&body)["n"].as_u64().unwrap();
                    handed_out.lock().unwrap().push(n);
                }
            });
        }
    });
    let mut values = handed_out.into_inner().unwrap();
    values.sort_unstable();
    assert_eq!(values, (1..=300).collect::<Vec<u64>>());
    for node in &cluster.nodes {
        let (_, body) = node.get("/kv/hits");
        assert_eq!(json_of(&body)["value"], json!(300), "{}", node.name);
    }
}

/// (e) Through nginx: the node serving a subscriber is killed (-9) while another
/// node publishes; the subscriber reconnects through nginx with its
/// Last-Event-ID, lands on a live node, and loses nothing.
#[test]
fn e_a_subscriber_behind_nginx_survives_its_node_being_killed() {
    let redis = shared_redis();
    let mut cluster = Cluster::start("failover", &redis.url(5), 3);
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let nginx = Nginx::start(&addrs.iter().map(String::as_str).collect::<Vec<_>>());
    let stream = cluster.stream.clone();

    let first = Sse::open(&nginx.addr, &stream, None);
    // Which node nginx chose.
    let mut victim = None;
    wait_until("the subscriber on one node", TIMEOUT, || {
        victim = (0..3).find(|&i| cluster.node(i).subscribers(&stream) == 1);
        victim.is_some()
    });
    let victim = victim.unwrap();
    let publisher = (victim + 1) % 3;

    let accepted = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let first_last = std::thread::scope(|scope| {
        let publisher_node = cluster.node(publisher);
        let (accepted, stop) = (&accepted, &stop);
        scope.spawn(move || {
            let mut seq = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                publisher_node.publish(json!({ "seq": seq }), None);
                accepted.lock().unwrap().push(seq);
                seq += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let _stop = SetOnDrop(stop);
        first.wait_messages(5);
        // Not `cluster.nodes[victim].kill()`: the scope borrows the cluster.
        common::signal(&cluster.node(victim).child, "-KILL");
        first.wait("the stream to end with its node", |s| s.ended.is_some());
        let seen = messages(&first.events());
        let last_id = seen.last().unwrap().0;
        let second = Sse::open(&nginx.addr, &stream, Some(&last_id.to_string()));
        let resumed_at = accepted.lock().unwrap().len() as u64;
        second.wait_data("seq", &json!(resumed_at + 10));
        (seen, second, last_id)
    });
    let (seen, second, last_id) = first_last;
    let last = *accepted.lock().unwrap().last().unwrap();
    let events = second.wait_data("seq", &json!(last));
    assert!(
        events.iter().all(|e| e.name.is_none()),
        "a `missed` event: {events:#?}"
    );
    let after = messages(&events);
    assert_increasing(
        "after the failover",
        std::iter::once(last_id).chain(after.iter().map(|(id, _)| *id)),
    );
    let seqs: Vec<u64> = seen
        .iter()
        .chain(after.iter())
        .map(|(_, d)| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        accepted.into_inner().unwrap(),
        "lost or doubled messages"
    );
    cluster.nodes[victim].kill();
}

/// (f) Redis stops for about 3 s while a node publishes: sends fail with a 500
/// (so do storage calls), no failed send is ever delivered, subscribers stay
/// connected, and they get every accepted message, before and after.
#[test]
fn f_a_redis_outage_fails_sends_and_subscribers_catch_up() {
    let mut redis = Redis::start();
    let cluster = Cluster::start("outage", &redis.url(0), 3);
    let subs: Vec<Sse> = (0..3).map(|i| cluster.subscribe(i, "", None)).collect();
    let publisher = cluster.node(0);

    let outcomes = Mutex::new(Vec::<(u64, u16, String)>::new());
    let stop = AtomicBool::new(false);
    let storage_call = std::thread::scope(|scope| {
        let (outcomes, stop) = (&outcomes, &stop);
        scope.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let (status, body) = publisher.try_publish(&json!({ "seq": seq }), None);
                outcomes.lock().unwrap().push((seq, status, body));
                seq += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        let _stop = SetOnDrop(stop);
        let accepted = || {
            outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|o| o.1 == 200)
                .count()
        };
        wait_until("sends before the outage", TIMEOUT, || accepted() >= 10);
        redis.stop(true);
        let down = Instant::now();
        // Storage throws too (checked at the end, after the streams).
        let storage_call = http(&publisher.addr, "POST", "/incr/n", "");
        wait_until("a failed send", TIMEOUT, || {
            outcomes.lock().unwrap().iter().any(|o| o.1 != 200)
        });
        let outage = Duration::from_secs(3);
        std::thread::sleep(outage.saturating_sub(down.elapsed()));
        redis.restart();
        let back = outcomes.lock().unwrap().len();
        wait_until("10 sends accepted after the outage", TIMEOUT, || {
            outcomes
                .lock()
                .unwrap()
                .iter()
                .skip(back)
                .filter(|o| o.1 == 200)
                .count()
                >= 10
        });
        storage_call
    });
    let outcomes = outcomes.into_inner().unwrap();
    let accepted: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.1 == 200)
        .map(|o| o.0)
        .collect();
    let last = *accepted.last().unwrap();
    let mut sequences = Vec::new();
    for (i, s) in subs.iter().enumerate() {
        let events = s.wait_data("seq", &json!(last));
        assert!(s.ended().is_none(), "subscriber {i} was disconnected");
        let got = messages(&events);
        assert_increasing(&format!("subscriber {i}"), got.iter().map(|(id, _)| *id));
        let seqs: Vec<u64> = got
            .iter()
            .map(|(_, d)| d["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs, accepted,
            "subscriber {i}: not exactly the accepted sends"
        );
        sequences.push(got);
    }
    assert!(
        sequences.windows(2).all(|w| w[0] == w[1]),
        "subscribers saw different ids"
    );
    // A send made while the node knew Redis was down threw in the script: a
    // 500. One already queued when Redis went away failed after the handler
    // returned: its client got a 503 (checked after the delivery).
    let odd: Vec<_> = outcomes
        .iter()
        .filter(|o| o.1 != 200 && o.1 != 500 && o.1 != 503)
        .collect();
    assert!(
        odd.is_empty(),
        "sends answered neither 200, 500 nor 503: {odd:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.1 == 500),
        "no send threw during the outage"
    );
    let (status, body) = storage_call;
    assert_eq!(status, 500, "a storage call with Redis down: {body}");
}

/// (g) Redis restarted empty: a subscriber resuming with an id from before gets
/// `event: missed` first, then the messages sent since.
#[test]
fn g_redis_restarted_empty_resumes_with_missed() {
    let mut redis = Redis::start();
    let cluster = Cluster::start("amnesia", &redis.url(0), 2);
    let old = cluster.five_messages_seen_on_a(0);
    let old_id = old[2].0.to_string();

    redis.stop(false);
    redis.restart();
    for node in &cluster.nodes {
        wait_until(&format!("{} connected again", node.name), TIMEOUT, || {
            node.cluster()["connected"] == json!(true)
        });
    }
    for n in 100..102 {
        let accepted = poll(TIMEOUT, Duration::from_millis(50), || {
            (cluster.node(0).try_publish(&json!({ "n": n }), None).0 == 200).then_some(())
        });
        assert!(accepted.is_some(), "no send accepted after the restart");
    }
    let on_b = cluster.subscribe(1, "", Some(&old_id));
    let events = on_b.wait_data("n", &json!(101));
    let missed = events.first().unwrap();
    assert_eq!(missed.name.as_deref(), Some("missed"), "{events:#?}");
    assert_eq!(missed.json()["lastEventId"], json!(old[2].0), "{missed:?}");
    let ns: Vec<Value> = messages(&events)
        .iter()
        .map(|(_, d)| d["n"].clone())
        .collect();
    assert_eq!(ns, [json!(100), json!(101)], "{events:#?}");
}

/// (h) `/_engine/routes` tells the mode, the link and the live nodes, and
/// counts each node's own subscribers.
#[test]
fn h_engine_routes_shows_the_cluster() {
    let redis = shared_redis();
    let mut cluster = Cluster::start("status", &redis.url(6), 3);
    let names: BTreeSet<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    for node in &cluster.nodes {
        let mut status = Value::Null;
        let all_seen = poll(TIMEOUT, Duration::from_millis(50), || {
            status = node.cluster();
            let nodes: BTreeSet<String> = status["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            (nodes == names).then_some(())
        });
        assert!(all_seen.is_some(), "{}: nodes in {status}", node.name);
        let last = status;
        assert_eq!(last["mode"], "redis", "{last}");
        assert_eq!(last["connected"], true, "{last}");
        assert_eq!(last["node"], node.name.as_str(), "{last}");
        let url = last["redis"].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("redis://127.0.0.1:{}", redis.port)),
            "{last}"
        );
    }
    // The metrics say the same: Redis reached, three nodes alive.
    let (code, metrics) = cluster.node(0).get("/_engine/metrics");
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "aiwebengine_cluster_redis_up 1"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l == "aiwebengine_cluster_nodes 3"),
        "{metrics}"
    );
    // Subscriber counts are each node's own.
    let _sub = cluster.subscribe(0, "", None);
    let stream = cluster.stream.clone();
    wait_until("A counting its subscriber", TIMEOUT, || {
        cluster.node(0).subscribers(&stream) == 1
    });
    assert_eq!(cluster.node(1).subscribers(&stream), 0);
    // A node that dies leaves the list once its heartbeat expires.
    let gone = cluster.nodes[2].name.clone();
    cluster.nodes[2].kill();
    wait_until("C leaving the list", Duration::from_secs(60), || {
        let nodes = cluster.node(0).cluster()["nodes"].clone();
        nodes.as_array().is_some_and(|n| !n.contains(&json!(gone)))
    });
    // Without --redis: one node on its own, and no cluster metrics.
    let single = Node::start(cluster.scripts.path(), None, "alone");
    assert_eq!(single.cluster(), json!({ "mode": "single" }));
    let (_, metrics) = single.get("/_engine/metrics");
    assert!(
        !metrics.contains("aiwebengine_cluster_redis_up "),
        "{metrics}"
    );
}

/// A node whose Redis is not up yet serves what needs no Redis, fails what
/// does, and joins once Redis starts.
#[test]
fn i_a_node_started_before_redis_serves_and_connects_later() {
    let mut redis = Redis::not_started();
    let cluster = Cluster::start("early", &redis.url(0), 1);
    let node = cluster.node(0);
    assert_eq!(node.get("/ping"), (200, "pong".to_string()));
    let status = node.cluster();
    assert_eq!(status["mode"], "redis", "{status}");
    assert_eq!(status["connected"], false, "{status}");
    // The log says so, not only /_engine.
    wait_until("the log saying Redis is unreachable", TIMEOUT, || {
        node.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Redis is unreachable"))
    });
    let (code, body) = node.try_publish(&json!({ "n": 0 }), None);
    assert_eq!(code, 500, "a send with Redis down: {body}");
    // Checked at the end, after the streams.
    let storage_call = node.get("/kv/x");

    assert!(redis.spawn(), "redis-server did not start");
    wait_until("the node connecting", Duration::from_secs(30), || {
        node.cluster()["connected"] == json!(true)
    });
    let sub = cluster.subscribe(0, "", None);
    assert_eq!(node.publish(json!({ "n": 1 }), None), 1);
    let got = messages(&sub.wait_messages(1));
    assert_eq!(got[0].1, json!({ "n": 1 }));
    let (code, body) = storage_call;
    assert_eq!(code, 500, "a storage call with Redis down: {body}");
    let (code, body) = http(&node.addr, "PUT", "/kv/x", "1");
    assert_eq!(code, 200, "a storage call with Redis up: {body}");
}

/// The harness itself: what f and g rely on. `SHUTDOWN SAVE` then a restart
/// keeps Redis's data; SIGKILL then a restart loses it.
#[test]
fn z_harness_redis_restarts_keep_or_lose_data() {
    let mut redis = Redis::start();
    redis.command("SET k v").unwrap();
    redis.stop(true);
    redis.restart();
    let kept = redis.command("GET k").unwrap();
    assert!(kept.starts_with("$1"), "{kept:?}");
    redis.stop(false);
    redis.restart();
    let lost = redis.command("GET k").unwrap();
    assert!(lost.starts_with("$-1"), "{lost:?}");
}

/// Two nodes in one cluster, B reaching Redis through a `Proxy`; both serve
/// the test script. (B, A, the proxy, the scripts folder.)
fn cut_off_pair(tag: &str, db: u32, b_up: bool) -> (Node, Node, Proxy, tempfile::TempDir, String) {
    let redis = shared_redis();
    let scripts = tempfile::tempdir().unwrap();
    let stream = format!("/{tag}/s");
    std::fs::write(scripts.path().join(format!("{tag}.js")), script(&stream)).unwrap();
    let proxy = Proxy::start(redis.port, b_up);
    let a = Node::start(scripts.path(), Some(&redis.url(db)), &format!("{tag}-A"));
    let b = Node::start(scripts.path(), Some(&proxy.url(db)), &format!("{tag}-B"));
    (b, a, proxy, scripts, stream)
}

/// Lets B reach Redis again through `proxy`; waits until B says it is connected.
fn reconnect(b: &Node, proxy: &Proxy, what: &str) {
    proxy.restore();
    wait_until(what, TIMEOUT, || b.cluster()["connected"] == json!(true));
}

/// (j) A node that cannot reach Redis when it starts, while another node can:
/// its subscribers, connected meanwhile, get every message the other node sent
/// once it reaches Redis, then live ones.
#[test]
fn j_a_node_cut_off_from_redis_at_start_catches_its_subscribers_up() {
    let (b, a, proxy, _scripts, stream) = cut_off_pair("cutstart", 7, false);
    assert_eq!(b.cluster()["connected"], false);
    let sub = Sse::open(&b.addr, &stream, None);
    a.publish(json!({ "n": 1 }), None);
    a.publish(json!({ "n": 2 }), None);
    reconnect(&b, &proxy, "B connecting");
    a.publish(json!({ "n": 3 }), None);
    let events = sub.wait_data("n", &json!(3));
    let ns: Vec<Value> = messages(&events)
        .iter()
        .map(|(_, d)| d["n"].clone())
        .collect();
    assert_eq!(ns, [json!(1), json!(2), json!(3)], "{events:#?}");
}

/// (k) A running node cut off from Redis (the others still reach it): its sends
/// throw, its subscribers stay connected and, once it is back, get every
/// message the others sent meanwhile, once, in order.
#[test]
fn k_a_node_partitioned_from_redis_catches_its_subscribers_up() {
    let (b, a, proxy, _scripts, stream) = cut_off_pair("partition", 8, true);
    wait_until("B connected", TIMEOUT, || {
        b.cluster()["connected"] == json!(true)
    });
    let sub = Sse::open(&b.addr, &stream, None);
    a.publish(json!({ "n": 1 }), None);
    sub.wait_data("n", &json!(1));
    proxy.cut();
    wait_until("B seeing Redis gone", TIMEOUT, || {
        b.cluster()["connected"] == json!(false)
    });
    let (status, body) = b.try_publish(&json!({ "n": "from B" }), None);
    assert_eq!(status, 500, "a send on the cut-off node: {body}");
    a.publish(json!({ "n": 2 }), None);
    a.publish(json!({ "n": 3 }), None);
    reconnect(&b, &proxy, "B connecting again");
    a.publish(json!({ "n": 4 }), None);
    let events = sub.wait_data("n", &json!(4));
    assert!(sub.ended().is_none(), "the subscriber was disconnected");
    let got = messages(&events);
    assert_increasing("B's subscriber", got.iter().map(|(id, _)| *id));
    let ns: Vec<Value> = got.iter().map(|(_, d)| d["n"].clone()).collect();
    assert_eq!(ns, [json!(1), json!(2), json!(3), json!(4)], "{events:#?}");
}

/// (l) A password in the URL: the node authenticates, and neither its log nor
/// `/_engine` shows the password; a wrong one leaves the node serving,
/// disconnected, its sends failing.
#[test]
fn l_a_password_in_the_url_authenticates_and_stays_secret() {
    let redis = shared_redis();
    let reply = redis
        .command("ACL SETUSER clustertest on >s3cret-pw ~* &* +@all")
        .unwrap();
    assert!(reply.starts_with("+OK"), "ACL SETUSER: {reply}");
    let url = format!("redis://clustertest:s3cret-pw@127.0.0.1:{}/7", redis.port);
    let cluster = Cluster::start("secret", &url, 1);
    let node = cluster.node(0);
    wait_until("the node authenticating", TIMEOUT, || {
        node.cluster()["connected"] == true
    });
    let status = node.cluster();
    let shown = status["redis"].as_str().unwrap_or_default();
    assert!(
        !shown.contains("s3cret-pw") && shown.contains("***"),
        "{status}"
    );
    let _sub = cluster.subscribe(0, "", None);
    wait_until("the subscriber counted", TIMEOUT, || {
        node.subscribers(&cluster.stream) == 1
    });
    assert_eq!(node.publish(json!({ "n": 1 }), None), 1);
    let logged = node.log.lock().unwrap().join("\n");
    assert!(
        logged.contains("***") && !logged.contains("s3cret-pw"),
        "{logged}"
    );

    let wrong = format!("redis://clustertest:wrong@127.0.0.1:{}/7", redis.port);
    let bad = Cluster::start("badpw", &wrong, 1);
    let node = bad.node(0);
    assert_eq!(node.get("/ping").0, 200, "serves without Redis");
    let (code, body) = node.try_publish(&json!({ "n": 1 }), None);
    assert_eq!(code, 500, "a send without an authenticated Redis: {body}");
    assert_eq!(node.cluster()["connected"], false);
    assert!(!node.cluster().to_string().contains("wrong@"));
}
