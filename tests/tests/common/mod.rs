//! A real aiwebengine on 127.0.0.1:0 with a temp scripts folder, and small
//! HTTP and SSE clients to talk to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use aiwebengine::Settings;
use bytes::BytesMut;
use futures_util::StreamExt;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub engine: aiwebengine::Running,
    pub client: reqwest::Client,
}

/// The seed's examples, as shipped in `scripts/`.
pub fn seed_script(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Limits small enough for tests to trip quickly, big enough for the seeds.
pub fn test_limits() -> aiwebengine::limits::Limits {
    aiwebengine::limits::Limits {
        cpu_budget: 10_000,
        fuel: 0,
        timeout: Duration::from_secs(3),
        memory_bytes: 48 << 20,
        max_timers: 1000,
    }
}

/// A fixture script from `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Turns both CPU limits off (QuickJS's budget and wasm fuel), for scripts
/// doing honest heavy work or that something else must stop.
pub fn no_cpu_limit(s: &mut Settings) {
    s.limits.cpu_budget = 0;
    s.limits.fuel = 0;
}

pub fn settings(dir: &Path) -> Settings {
    let mut settings = Settings::new(dir);
    settings.cache_dir = Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guest-cache"));
    settings.limits = test_limits();
    settings
}

impl TestServer {
    /// Starts a server over a folder holding `scripts` (file name, source).
    pub async fn start(scripts: &[(&str, &str)]) -> TestServer {
        Self::start_with(scripts, |_| {}).await
    }

    pub async fn start_with(
        scripts: &[(&str, &str)],
        tweak: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        for (name, source) in scripts {
            std::fs::write(dir.path().join(name), source).unwrap();
        }
        let mut settings = settings(dir.path());
        tweak(&mut settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let engine = aiwebengine::start(listener, settings).await.unwrap();
        TestServer {
            base,
            dir,
            engine,
            client: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap(),
        }
    }

    /// Writes a file into the watched scripts folder.
    pub fn write(&self, name: &str, source: &str) {
        std::fs::write(self.dir.path().join(name), source).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let res = self.get(path).await;
        (res.status().as_u16(), res.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_text(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let res = self.post(path, body).await;
        (res.status().as_u16(), res.text().await.unwrap())
    }

    pub async fn routes(&self) -> serde_json::Value {
        self.get("/_engine/routes").await.json_value().await
    }

    /// One script's entry in `/_engine/routes`, or `Null` when it is not listed.
    pub async fn script(&self, name: &str) -> serde_json::Value {
        let routes = self.routes().await;
        routes["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Subscribes to a stream. The server counts the subscriber before it sends
    /// the response head, so a broadcast after this returns reaches it.
    pub async fn subscribe(&self, path: &str) -> Sse {
        Sse::connect(&self.url(path), None).await
    }
}

pub trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// One SSE event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.data))
    }
}

/// A Server-Sent-Events client that parses frames as they arrive.
pub struct Sse {
    pub status: u16,
    pub content_type: String,
    /// The whole response head's headers (`Retry-After`, `Cache-Control`...).
    pub headers: reqwest::header::HeaderMap,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: BytesMut,
}

impl Sse {
    /// Connects without a client timeout: a stream lives as long as it likes.
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> Sse {
        let client = reqwest::Client::new();
        let mut req = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = tokio::time::timeout(TIMEOUT, req.send())
            .await
            .expect("SSE connect timed out")
            .unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Sse {
            status,
            content_type,
            headers: res.headers().clone(),
            body: res.bytes_stream().boxed(),
            buf: BytesMut::new(),
        }
    }

    /// The next event with data (comments and `retry:`-only blocks are skipped),
    /// or `None` when the stream ended. Panics after `TIMEOUT`.
    pub async fn next(&mut self) -> Option<Event> {
        self.next_within(TIMEOUT)
            .await
            .expect("no SSE event within the timeout")
    }

    /// Like `next`, but `Err(())` when nothing arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Event>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(block) = self.take_block() {
                if let Some(event) = parse_block(&block) {
                    return Ok(Some(event));
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(()),
                Ok(None) | Ok(Some(Err(_))) => return Ok(None),
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
            }
        }
    }

    /// The next raw block (comments and `retry:` included), or `None` at the end.
    pub async fn next_block_within(&mut self, wait: Duration) -> Result<Option<String>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(block) = self.take_block() {
                return Ok(Some(block));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(()),
                Ok(None) | Ok(Some(Err(_))) => return Ok(None),
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
            }
        }
    }

    fn take_block(&mut self) -> Option<String> {
        let text = std::str::from_utf8(&self.buf).ok()?;
        let end = text.find("\n\n")?;
        let block = text[..end].to_string();
        let _ = self.buf.split_to(end + 2);
        Some(block)
    }
}

fn parse_block(block: &str) -> Option<Event> {
    let mut event = Event {
        id: None,
        event: None,
        data: String::new(),
    };
    let mut has_data = false;
    for line in block.lines() {
        let (field, value) = line
            .split_once(':')
            .map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    has_data.then_some(event)
}

/// Waits until `check` holds, polling; panics with `what` after `TIMEOUT`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A bare-TCP SSE subscriber: cheap enough to open a thousand, and able to
/// stop reading entirely (a stalled client).
pub struct RawSubscriber {
    stream: tokio::net::TcpStream,
    seen: Vec<u8>,
}

impl RawSubscriber {
    pub async fn connect(base: &str, path: &str) -> RawSubscriber {
        use tokio::io::AsyncWriteExt;
        let addr = base.trim_start_matches("http://");
        let mut stream = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        RawSubscriber {
            stream,
            seen: Vec::new(),
        }
    }

    /// Like `connect`, but first makes a plain request on the same connection,
    /// so the subscription rides a reused keep-alive connection.
    pub async fn connect_after_a_request(base: &str, path: &str, first: &str) -> RawSubscriber {
        use tokio::io::AsyncWriteExt;
        let addr = base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {first} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut sub = RawSubscriber {
            stream,
            seen: Vec::new(),
        };
        assert!(
            sub.read_until("\r\n\r\n", TIMEOUT).await,
            "no answer to {first}"
        );
        sub.seen.clear();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        sub.stream.write_all(request.as_bytes()).await.unwrap();
        sub
    }

    /// Reads until `needle` has been seen; false on timeout or end of stream.
    pub async fn read_until(&mut self, needle: &str, wait: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if self
                .seen
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.seen.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
    }

    /// Reads and keeps everything until the server closes the connection; false
    /// if it is still open after `wait`.
    pub async fn read_to_close(&mut self, wait: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self
                    .seen
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(_) => return false,
            }
        }
    }

    /// Everything read so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// True once the server has closed the connection (reads hit the end).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}
