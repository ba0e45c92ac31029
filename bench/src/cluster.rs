//! The `cluster` section (issue 14): two aiwebengine nodes sharing their
//! streams through one Redis, against a single node without Redis. It starts
//! its own `redis-server` (no persistence, in a temp dir, on a free port of
//! 127.0.0.1) and measures
//!
//! - delivery latency: POST on node A to an SSE subscriber on node B reading
//!   the frame (cross-node), on A (same node) and, on a server without
//!   `--redis`, its own subscriber (single node);
//! - publishes per second: one handler call sending N messages, whose
//!   response waits until Redis accepted all N;
//! - fan-out to 1,000 subscribers, 500 on each node;
//!
//! and checks, for every subscriber of every measurement, that the ids arrive
//! one by one, in order, and that it got every message sent: the section
//! fails if one is lost or reordered. aiwebengine only.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mio::{Events, Interest, Poll, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::clients::{self, Clients};
use crate::servers::{Kind, Server};
use crate::{http, median, percentile, Bench};

const SCRIPT: &str = r#"
// The cluster section's script: three streams and the routes that send to them.
routeRegistry.registerStreamRoute("/cb/lat");
routeRegistry.registerStreamRoute("/cb/bulk");
routeRegistry.registerStreamRoute("/cb/fan");
routeRegistry.registerRoute("POST", "/cb/lat/send", (req) => {
  routeRegistry.sendStreamMessage("/cb/lat", JSON.parse(req.body || "{}"));
  return { body: "ok" };
});
routeRegistry.registerRoute("POST", "/cb/bulk/send", (req) => {
  const n = Number(req.query.n || 2000);
  for (let i = 0; i < n; i++) routeRegistry.sendStreamMessage("/cb/bulk", { i });
  return { body: { n } };
});
routeRegistry.registerRoute("POST", "/cb/fan/send", (req) => {
  routeRegistry.sendStreamMessage("/cb/fan", JSON.parse(req.body || "{}"));
  return { body: "ok" };
});
"#;

/// Messages one bulk POST sends.
const BULK: usize = 2000;
/// Concurrent bulk POSTs per node.
const CONCURRENT: usize = 4;
/// Subscribers of the fan-out, split evenly over the nodes.
const FAN_OUT: usize = 1000;
/// `--stream-lag` of every server here. With the default (1,024 frames) the
/// bulk measurement's subscriber on B, reading 16,000 messages that arrive in
/// ~0.4 s on a busy 2-core machine, fell a ring behind and was disconnected as
/// a slow consumer (the server's `stream_lag_disconnects_total` said so): the
/// designed behaviour, not a loss, but it would end the order check.
const STREAM_LAG: usize = 65_536;
/// How long any one expected message may take before it counts as lost.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// SSE frames and the order check, shared by the in-process subscribers and the
// fan-out's client process.

/// One SSE event: its `id:`, `event:` and `data:` (lines joined).
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub id: Option<u64>,
    pub event: Option<String>,
    pub data: String,
}

/// Splits a subscriber's bytes into events (frames end with a blank line).
#[derive(Default)]
pub struct Sse {
    buf: Vec<u8>,
}

impl Sse {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = http::find(&self.buf[start..], b"\n\n") {
            let frame = String::from_utf8_lossy(&self.buf[start..start + end]);
            let mut ev = Event::default();
            let mut any = false;
            for line in frame.split('\n') {
                if let Some(v) = line.strip_prefix("id: ") {
                    ev.id = v.trim().parse().ok();
                    any = true;
                } else if let Some(v) = line.strip_prefix("event: ") {
                    ev.event = Some(v.trim().to_string());
                    any = true;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(v);
                    any = true;
                }
                // `retry:` and `: keep-alive` comments carry no event.
            }
            if any {
                out.push(ev);
            }
            start += end + 2;
        }
        self.buf.drain(..start);
    }
}

/// One subscriber's ids: each must be the previous one plus one.
#[derive(Default, Clone, Copy, Debug)]
pub struct Order {
    last: Option<u64>,
    /// Messages received in order (each id above the last one).
    pub received: u64,
    /// Ids at or below one already received (out of order or repeated).
    pub reordered: u64,
    /// Ids skipped over (a later id arrived first).
    pub skipped: u64,
    /// `missed` events, or events without an id.
    pub odd: u64,
}

impl Order {
    pub fn see(&mut self, ev: &Event) {
        let (None, Some(id)) = (ev.event.as_deref(), ev.id) else {
            self.odd += 1;
            return;
        };
        match self.last {
            Some(last) if id <= last => {
                self.reordered += 1;
                return;
            }
            Some(last) => self.skipped += id - last - 1,
            None => {}
        }
        self.last = Some(id);
        self.received += 1;
    }
}

/// Every subscriber's account, over the whole section.
#[derive(Default)]
struct Tally {
    subscribers: u64,
    messages: u64,
    lost: u64,
    reordered: u64,
    problems: Vec<String>,
}

impl Tally {
    /// Closes the account of a subscriber that should have received `expected`.
    fn add(&mut self, who: &str, order: &Order, expected: u64, closed: bool) {
        self.subscribers += 1;
        self.messages += order.received;
        let lost = expected.saturating_sub(order.received).max(order.skipped);
        self.lost += lost;
        self.reordered += order.reordered;
        if lost > 0 || order.reordered > 0 || order.odd > 0 || order.received > expected || closed {
            self.problems.push(format!(
                "{who}: expected {expected}, received {} in order, {} reordered, {} skipped, \
                 {} missed/odd events{}",
                order.received,
                order.reordered,
                order.skipped,
                order.odd,
                if closed {
                    ", and the server closed it"
                } else {
                    ""
                }
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Redis.

struct Redis {
    url: String,
    version: String,
    child: Child,
}

impl Redis {
    async fn start(dir: &Path) -> Result<Redis> {
        if std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            bail!(
                "redis-server is not installed (bench/run.sh installs it: \
                 apt-get install -y redis-server)"
            );
        }
        let version = crate::version(Path::new("redis-server")).await;
        std::fs::create_dir_all(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let port_arg = port.to_string();
        let dir_arg = dir.display().to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port_arg,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir_arg,
                "--daemonize",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").await.is_ok() {
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await
                    {
                        if buf[..n].starts_with(b"+PONG") {
                            break;
                        }
                    }
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("redis-server on {addr} did not answer PING in 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Redis {
            url: format!("redis://{addr}"),
            version,
            child,
        })
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

// ---------------------------------------------------------------------------
// In-process subscribers (latency and publishes: a few sockets, no need for
// the client process).

struct Sub {
    name: String,
    addr: String,
    path: String,
    rx: mpsc::UnboundedReceiver<(Event, Instant)>,
    order: Order,
    closed: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Sub {
    async fn open(name: &str, addr: &str, path: &str) -> Result<Sub> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut head = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let rest = loop {
            let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
                .await
                .context("no response head")??;
            ensure!(n > 0, "{name}: closed before the response head");
            head.extend_from_slice(&chunk[..n]);
            if let Some(end) = http::find(&head, b"\r\n\r\n") {
                ensure!(
                    head.starts_with(b"HTTP/1.1 200"),
                    "{name}: subscribe refused: {}",
                    String::from_utf8_lossy(&head[..end])
                );
                break head.split_off(end + 4);
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut sse = Sse::default();
            let mut events = Vec::new();
            sse.feed(&rest, &mut events);
            loop {
                let now = Instant::now();
                for ev in events.drain(..) {
                    if tx.send((ev, now)).is_err() {
                        return;
                    }
                }
                match s.read(&mut chunk).await {
                    Ok(n) if n > 0 => sse.feed(&chunk[..n], &mut events),
                    _ => return, // the channel's end tells the reader
                }
            }
        });
        Ok(Sub {
            name: name.to_string(),
            addr: addr.to_string(),
            path: path.to_string(),
            rx,
            order: Order::default(),
            closed: false,
            task,
        })
    }

    /// Waits for the event whose data contains `needle`; the time it was read.
    async fn until(&mut self, needle: &str) -> Result<Instant> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((ev, at))) => {
                    self.order.see(&ev);
                    if ev.data.contains(needle) {
                        return Ok(at);
                    }
                }
                Ok(None) => {
                    self.closed = true;
                    bail!(
                        "{}: the server closed the subscriber ({})",
                        self.name,
                        lag_disconnects(&self.addr, &self.path).await
                    )
                }
                Err(_) => bail!(
                    "{}: {needle:?} never arrived in {WAIT:?} (lost?); {:?}",
                    self.name,
                    self.order
                ),
            }
        }
    }

    /// Waits until `expected` messages arrived in all (or `WAIT` passes
    /// without one arriving); the time the last one was read.
    async fn count_to(&mut self, expected: u64) -> Option<Instant> {
        let mut last = None;
        while self.order.received + self.order.reordered < expected {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some((ev, at))) => {
                    self.order.see(&ev);
                    last = Some(at);
                }
                Ok(None) => {
                    self.closed = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
        last
    }

    /// Takes what arrived after the end and closes the account.
    async fn finish(mut self, tally: &mut Tally, expected: u64) {
        self.count_to(expected).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok((ev, _)) = self.rx.try_recv() {
            self.order.see(&ev);
        }
        self.task.abort();
        let who = match self.closed {
            true => format!(
                "{} ({})",
                self.name,
                lag_disconnects(&self.addr, &self.path).await
            ),
            false => self.name.clone(),
        };
        tally.add(&who, &self.order, expected, self.closed);
    }
}

/// What the server's metrics say about slow subscribers it disconnected on `path`.
async fn lag_disconnects(addr: &str, path: &str) -> String {
    let body = match http::once(addr, "GET", "/_engine/metrics", "").await {
        Ok((200, body)) => body,
        other => return format!("no metrics: {:?}", other.map(|(s, _)| s)),
    };
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("lag_disconnects") && l.contains(&format!("\"{path}\"")))
        .collect();
    match lines.is_empty() {
        true => "its metrics count no lag disconnect".into(),
        false => format!("its metrics: {}", lines.join("; ")),
    }
}

/// The server's `/_engine/routes`.
async fn routes(addr: &str) -> String {
    match http::once(addr, "GET", "/_engine/routes", "").await {
        Ok((200, body)) => body,
        _ => String::new(),
    }
}

/// Waits until the server counts `n` subscribers on `stream`.
async fn until_counted(addr: &str, stream: &str, n: usize) -> Result<()> {
    let started = Instant::now();
    while clients::counted(&routes(addr).await, stream) < n {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{addr} never counted {n} subscribers on {stream}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Waits until both nodes are connected to Redis and see each other.
async fn until_clustered(addrs: &[&str]) -> Result<()> {
    let started = Instant::now();
    for addr in addrs {
        loop {
            let body: String = routes(addr)
                .await
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let nodes = body
                .split("\"nodes\":[")
                .nth(1)
                .and_then(|rest| rest.split(']').next())
                .map_or(0, |list| list.matches('"').count() / 2);
            if body.contains("\"connected\":true") && nodes >= addrs.len() {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{addr} did not join the cluster in 60 s: {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

async fn post(conn: &mut http::Conn, path: &str, body: &str) -> Result<()> {
    let (status, answer) = conn.request("POST", path, body).await?;
    ensure!(status == 200, "POST {path} answered {status}: {answer}");
    Ok(())
}

// ---------------------------------------------------------------------------
// The section.

struct Nodes {
    a: Server,
    b: Server,
    single: Server,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let scripts = b.work.join("cluster-scripts");
    std::fs::create_dir_all(&scripts)?;
    std::fs::write(scripts.join("bench_cluster.js"), SCRIPT)?;
    let redis = Redis::start(&b.work.join("redis")).await?;
    let lag = STREAM_LAG.to_string();
    let node = |name: &str| {
        b.engine(
            &format!("aiwebengine node {name}"),
            &[
                "--redis",
                &redis.url,
                "--node-name",
                name,
                "--stream-lag",
                &lag,
            ],
        )
    };
    let (kind_a, kind_b) = (node("A"), node("B"));
    let kind_single: Kind = b.engine("aiwebengine single", &["--stream-lag", &lag]);
    let nodes = Nodes {
        a: Server::start(&kind_a, &scripts).await?,
        b: Server::start(&kind_b, &scripts).await?,
        single: Server::start(&kind_single, &scripts).await?,
    };
    until_clustered(&[&nodes.a.addr, &nodes.b.addr]).await?;

    let mut tally = Tally::default();
    let outcome = measure(b, &nodes, &redis, &mut tally).await;
    nodes.a.stop().await;
    nodes.b.stop().await;
    nodes.single.stop().await;
    redis.stop().await;
    outcome?;

    b.say(&format!(
        "\n**Checked**: {} subscriber connections, {} messages received; \
         lost: {}, reordered: {}.",
        tally.subscribers, tally.messages, tally.lost, tally.reordered
    ));
    if !tally.problems.is_empty() {
        for p in &tally.problems {
            b.say(&format!("- {p}"));
        }
        bail!(
            "cluster: {} lost, {} reordered — see above",
            tally.lost,
            tally.reordered
        );
    }
    Ok(())
}

async fn measure(b: &mut Bench, n: &Nodes, redis: &Redis, tally: &mut Tally) -> Result<()> {
    let quick = b.quick;
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let lat_rounds = if quick { 2 } else { 6 };
    let lat_per_round = if quick { 30 } else { 50 };
    let bulk_rounds = if quick { 2 } else { 5 };
    let fan_rounds = if quick { 3 } else { 7 };

    // Every engine on the same scripts; a few warm-up calls each.
    for addr in [&n.a.addr, &n.b.addr, &n.single.addr] {
        http::wait_for(addr, "/_engine/routes", "/cb/fan", Duration::from_secs(30)).await?;
    }

    let lat = latency(n, lat_rounds, lat_per_round, tally).await?;
    let bulk = publishes(n, bulk_rounds, tally).await?;
    let fan = fan_out(n, fan_rounds, tally).await?;

    b.say("\n## Cluster: two nodes sharing streams through one Redis\n");
    b.say(&format!(
        "aiwebengine only. The section starts its own `redis-server` (Redis {}, `--save \"\" \
         --appendonly no`, on 127.0.0.1) and two nodes, A and B (`serve --redis \
         redis://127.0.0.1:PORT --node-name A` / `B`), over the same scripts folder, and a third server without \
         `--redis` (single node); all three with `--stream-lag {STREAM_LAG}` (with the \
         default 1,024 the bulk check's subscriber on B, reading 16,000 messages arriving \
         in ~0.4 s, was disconnected as a slow consumer), otherwise default limits. **Delivery**: a POST whose handler sends one message; the \
         time from writing the POST to an SSE subscriber reading the frame; {} sequential \
         samples per row, in {lat_rounds} alternating rounds (cluster, single, single, \
         cluster, …) after a warm-up; cross-node and same-node are the same POSTs on A, read \
         by a subscriber on B and one on A. **Publishes/s**: a handler that sends {BULK} \
         messages (`{{\"i\": k}}`) and returns; in cluster mode its response waits until \
         Redis accepted all of them, so messages ÷ the POST's time is publishes per second \
         end to end (median of {bulk_rounds} runs; \"delivered\" is until a subscriber on B \
         read the last one). **Fan-out**: {FAN_OUT} SSE subscribers, half on A and half on B \
         (or all on the single node), a POST on A; the time until the last subscriber read \
         the message; median of {fan_rounds}; {}, the servers and Redis unpinned. Every \
         subscriber of every measurement checks that ids arrive one by one in order and that \
         it received every message sent. All on one 2-core machine (servers, Redis and \
         clients share it), shared with other builds and tests of the project during this \
         session: 1-minute load average {load} as the section started.\n",
        redis
            .version
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or("?"),
        lat_rounds * lat_per_round,
        placement(),
    ));
    let single_p50 = median(lat.single.clone());
    let cross_p50 = median(lat.cross.clone());
    b.say("| delivery: POST → SSE subscriber | p50 ms | p99 ms | samples |");
    b.say("|---|---:|---:|---:|");
    for (label, v) in [
        ("single node (no Redis)", &lat.single),
        (
            "cluster, cross-node (POST on A → subscriber on B)",
            &lat.cross,
        ),
        (
            "cluster, same node (POST on A → subscriber on A)",
            &lat.same,
        ),
    ] {
        b.say(&format!(
            "| {label} | {:.2} | {:.2} | {} |",
            median(v.clone()),
            percentile(v.clone(), 0.99),
            v.len()
        ));
    }
    b.say(&format!(
        "\nGoal: cross-node p50 ≤ single-node p50 + 1 ms ({:.2} ≤ {:.2}): **{}**.\n",
        cross_p50,
        single_p50 + 1.0,
        if cross_p50 <= single_p50 + 1.0 {
            "met"
        } else {
            "not met"
        }
    ));
    b.say("| publishes through Redis | messages | POST ms (median) | publishes/s | per node | delivered on B ms |");
    b.say("|---|---:|---:|---:|---:|---:|");
    for row in &bulk {
        b.say(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.0} | {:.1} |",
            row.label,
            row.messages,
            row.ms,
            row.messages as f64 / row.ms * 1000.0,
            row.messages as f64 / row.ms * 1000.0 / row.nodes as f64,
            row.delivered_ms
        ));
    }
    let best_per_node = bulk
        .iter()
        .map(|r| r.messages as f64 / r.ms * 1000.0 / r.nodes as f64)
        .fold(0.0, f64::max);
    let one_post = bulk
        .first()
        .map_or(0.0, |r| r.messages as f64 / r.ms * 1000.0);
    b.say(&format!(
        "\nGoal: ≥ 20,000 publishes/s per node: one POST {one_post:.0}/s, best {best_per_node:.0}/s per node: **{}**.\n",
        if one_post >= 20_000.0 { "met" } else { "not met" }
    ));
    b.say(&format!(
        "| fan-out: POST on A → last of {FAN_OUT} subscribers | median ms | worst ms |"
    ));
    b.say("|---|---:|---:|");
    for (label, times) in &fan {
        b.say(&format!(
            "| {label} | {:.1} | {:.1} |",
            median(times.clone()),
            percentile(times.clone(), 1.0)
        ));
    }
    Ok(())
}

/// Where the fan-out's subscriber sockets ran.
fn placement() -> &'static str {
    match clients::cores() {
        Some(_) => {
            "the subscriber sockets run in a separate process pinned to core 1 (`taskset -c 1`)"
        }
        None => "the subscriber sockets run in a separate process (unpinned)",
    }
}

struct Latency {
    single: Vec<f64>,
    cross: Vec<f64>,
    same: Vec<f64>,
}

async fn latency(n: &Nodes, rounds: usize, per_round: usize, tally: &mut Tally) -> Result<Latency> {
    let mut on_a = Sub::open("latency subscriber on A", &n.a.addr, "/cb/lat").await?;
    let mut on_b = Sub::open("latency subscriber on B", &n.b.addr, "/cb/lat").await?;
    let mut on_single = Sub::open("latency subscriber, single", &n.single.addr, "/cb/lat").await?;
    until_counted(&n.a.addr, "/cb/lat", 1).await?;
    until_counted(&n.b.addr, "/cb/lat", 1).await?;
    until_counted(&n.single.addr, "/cb/lat", 1).await?;
    let mut to_a = http::Conn::open(&n.a.addr).await?;
    let mut to_single = http::Conn::open(&n.single.addr).await?;
    let mut out = Latency {
        single: Vec::new(),
        cross: Vec::new(),
        same: Vec::new(),
    };
    let (mut sent_cluster, mut sent_single, mut k) = (0u64, 0u64, 0u64);
    // Round 0 is the warm-up, not recorded.
    for round in 0..=rounds {
        let count = if round == 0 { 20 } else { per_round };
        for cluster_first in [round % 2 == 0, round % 2 != 0] {
            for _ in 0..count {
                k += 1;
                let body = format!("{{\"k\":{k}}}");
                let needle = format!("\"k\":{k}}}");
                let t0 = Instant::now();
                if cluster_first {
                    post(&mut to_a, "/cb/lat/send", &body).await?;
                    sent_cluster += 1;
                    let at_b = on_b.until(&needle).await?;
                    let at_a = on_a.until(&needle).await?;
                    if round > 0 {
                        out.cross
                            .push(at_b.duration_since(t0).as_secs_f64() * 1000.0);
                        out.same
                            .push(at_a.duration_since(t0).as_secs_f64() * 1000.0);
                    }
                } else {
                    post(&mut to_single, "/cb/lat/send", &body).await?;
                    sent_single += 1;
                    let at = on_single.until(&needle).await?;
                    if round > 0 {
                        out.single
                            .push(at.duration_since(t0).as_secs_f64() * 1000.0);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    on_a.finish(tally, sent_cluster).await;
    on_b.finish(tally, sent_cluster).await;
    on_single.finish(tally, sent_single).await;
    Ok(out)
}

struct BulkRow {
    label: String,
    messages: usize,
    nodes: usize,
    ms: f64,
    delivered_ms: f64,
}

async fn publishes(n: &Nodes, rounds: usize, tally: &mut Tally) -> Result<Vec<BulkRow>> {
    let mut on_a = Sub::open("bulk subscriber on A", &n.a.addr, "/cb/bulk").await?;
    let mut on_b = Sub::open("bulk subscriber on B", &n.b.addr, "/cb/bulk").await?;
    until_counted(&n.a.addr, "/cb/bulk", 1).await?;
    until_counted(&n.b.addr, "/cb/bulk", 1).await?;
    let path = format!("/cb/bulk/send?n={BULK}");
    let cases: [(String, Vec<&str>); 3] = [
        (
            format!("1 POST on A sending {BULK}"),
            vec![n.a.addr.as_str()],
        ),
        (
            format!("{CONCURRENT} concurrent POSTs on A, {BULK} each"),
            vec![n.a.addr.as_str(); CONCURRENT],
        ),
        (
            format!("{CONCURRENT} + {CONCURRENT} concurrent POSTs on A and B, {BULK} each"),
            [
                vec![n.a.addr.as_str(); CONCURRENT],
                vec![n.b.addr.as_str(); CONCURRENT],
            ]
            .concat(),
        ),
    ];
    let mut times: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); cases.len()];
    let mut sent = 0u64;
    // Round 0 is the warm-up, not recorded.
    for round in 0..=rounds {
        for (c, (_, targets)) in cases.iter().enumerate() {
            let mut conns = Vec::new();
            for addr in targets {
                conns.push(http::Conn::open(addr).await?);
            }
            let t0 = Instant::now();
            let calls = conns.into_iter().map(|mut conn| {
                let path = path.clone();
                tokio::spawn(async move {
                    post(&mut conn, &path, "").await?;
                    Ok::<_, anyhow::Error>(Instant::now())
                })
            });
            let mut end = t0;
            for call in calls.collect::<Vec<_>>() {
                end = end.max(call.await??);
            }
            sent += (BULK * targets.len()) as u64;
            let last_b = on_b.count_to(sent).await;
            on_a.count_to(sent).await;
            let Some(last_b) = last_b else {
                bail!(
                    "bulk: the subscriber on B stopped at {:?} of {sent} messages{}",
                    on_b.order,
                    match on_b.closed {
                        true => format!(
                            " (the server closed it; {})",
                            lag_disconnects(&n.b.addr, "/cb/bulk").await
                        ),
                        false => String::new(),
                    }
                );
            };
            if round > 0 {
                times[c]
                    .0
                    .push(end.duration_since(t0).as_secs_f64() * 1000.0);
                times[c]
                    .1
                    .push(last_b.duration_since(t0).as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    on_a.finish(tally, sent).await;
    on_b.finish(tally, sent).await;
    Ok(cases
        .iter()
        .zip(times)
        .map(|((label, targets), (post_ms, delivered))| BulkRow {
            label: label.clone(),
            messages: BULK * targets.len(),
            nodes: if targets.contains(&n.b.addr.as_str()) {
                2
            } else {
                1
            },
            ms: median(post_ms),
            delivered_ms: median(delivered),
        })
        .collect())
}

async fn fan_out(n: &Nodes, rounds: usize, tally: &mut Tally) -> Result<Vec<(String, Vec<f64>)>> {
    let mut out = Vec::new();
    let half = FAN_OUT / 2;
    for (label, subscribers) in [
        (
            format!("cluster: {half} on A + {half} on B"),
            vec![&n.a.addr, &n.b.addr],
        ),
        (
            format!("single node: {FAN_OUT} on it"),
            vec![&n.single.addr],
        ),
    ] {
        let post_to = subscribers[0];
        let mut args = vec![
            "clusterfan".to_string(),
            post_to.clone(),
            "/cb/fan/send".into(),
            "/cb/fan".into(),
            FAN_OUT.to_string(),
            rounds.to_string(),
        ];
        args.extend(subscribers.iter().map(|s| s.to_string()));
        let mut c = Clients::spawn(&args).await?;
        c.ready()
            .await
            .with_context(|| format!("fan-out, {label}: subscribing"))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut numbers = c.go().await.with_context(|| format!("fan-out, {label}"))?;
        // The client process ends its line with lost, reordered, received.
        ensure!(
            numbers.len() == rounds + 3,
            "fan-out: odd result {numbers:?}"
        );
        let received = numbers.pop().unwrap_or(0.0) as u64;
        let reordered = numbers.pop().unwrap_or(0.0) as u64;
        let lost = numbers.pop().unwrap_or(0.0) as u64;
        tally.subscribers += FAN_OUT as u64;
        tally.messages += received;
        tally.lost += lost;
        tally.reordered += reordered;
        if lost > 0 || reordered > 0 {
            tally.problems.push(format!(
                "fan-out, {label}: {lost} lost, {reordered} reordered (client process stderr has each subscriber)"
            ));
        }
        out.push((label, numbers));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The fan-out's client process: `--clients clusterfan <post addr> <post path>
// <stream> <n> <rounds> <addr>...` subscribes n sockets round-robin over the
// addrs, then per round POSTs `{"r": round}` and times the last subscriber
// reading it. Prints each round's ms, then lost, reordered and received.

struct FanSub {
    sock: mio::net::TcpStream,
    sse: Sse,
    order: Order,
    /// Rounds whose message this subscriber read.
    seen: usize,
    closed: bool,
}

pub fn fan_out_clients(args: &[String]) -> Result<Vec<f64>> {
    let arg = |i: usize| args.get(i).map(String::as_str).context("missing argument");
    let (post_addr, post_path, stream) = (arg(0)?, arg(1)?, arg(2)?);
    let n: usize = arg(3)?.parse()?;
    let rounds: usize = arg(4)?.parse()?;
    let addrs: Vec<&str> = args
        .get(5..)
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    ensure!(!addrs.is_empty(), "no subscriber address");
    let mut poll = Poll::new()?;
    let mut subs = Vec::with_capacity(n);
    let mut events_buf = Vec::new();
    for i in 0..n {
        let (sock, rest) = clients::subscribe(addrs[i % addrs.len()], stream, false)
            .with_context(|| format!("subscriber {i}"))?;
        sock.set_nonblocking(true)?;
        let mut sock = mio::net::TcpStream::from_std(sock);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE)?;
        let mut sub = FanSub {
            sock,
            sse: Sse::default(),
            order: Order::default(),
            seen: 0,
            closed: false,
        };
        sub.sse.feed(&rest, &mut events_buf);
        for ev in events_buf.drain(..) {
            sub.order.see(&ev);
        }
        subs.push(sub);
    }
    for (k, addr) in addrs.iter().enumerate() {
        let here = (0..n).filter(|i| i % addrs.len() == k).count();
        clients::until_counted(addr, stream, here)?;
    }
    clients::ready()?;
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut times = Vec::with_capacity(rounds);
    let post_token = Token(n);
    for round in 0..rounds {
        let needle = format!("\"r\":{round}}}");
        let mut post = TcpStream::connect(post_addr)?;
        post.set_nodelay(true)?;
        let text = clients::request("POST", post_path, &format!("{{\"r\":{round}}}"));
        let t0 = Instant::now();
        post.write_all(text.as_bytes())?;
        post.set_nonblocking(true)?;
        let mut post = mio::net::TcpStream::from_std(post);
        poll.registry()
            .register(&mut post, post_token, Interest::READABLE)?;
        let (mut got, mut last, mut answer) = (0, t0, Vec::new());
        let deadline = t0 + Duration::from_secs(30);
        while got < n || answer.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("clusterfan: round {round}: {got} of {n} subscribers got it in 30 s");
                break;
            }
            poll.poll(&mut events, Some(left))?;
            for event in events.iter() {
                let Token(i) = event.token();
                if i == n {
                    clients::read_all(&mut post, &mut answer)?;
                    continue;
                }
                let sub = subs.get_mut(i).context("unknown token")?;
                loop {
                    match std::io::Read::read(&mut sub.sock, &mut chunk) {
                        Ok(0) => {
                            if !sub.closed {
                                eprintln!("clusterfan: the server closed subscriber {i}");
                            }
                            sub.closed = true;
                            let _ = poll.registry().deregister(&mut sub.sock);
                            break;
                        }
                        Ok(k) => sub.sse.feed(&chunk[..k], &mut events_buf),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                for ev in events_buf.drain(..) {
                    sub.order.see(&ev);
                    if ev.data.contains(&needle) {
                        sub.seen += 1;
                        got += 1;
                        if got == n {
                            last = Instant::now();
                        }
                    }
                }
            }
        }
        if !answer.starts_with(b"HTTP/1.1 200") {
            bail!(
                "POST {post_path} answered {}",
                String::from_utf8_lossy(&answer)
            );
        }
        poll.registry().deregister(&mut post)?;
        if got < n {
            break; // counted as lost below
        }
        times.push(last.duration_since(t0).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Anything late or extra.
    std::thread::sleep(Duration::from_millis(300));
    let (mut lost, mut reordered, mut received) = (0u64, 0u64, 0u64);
    for (i, sub) in subs.iter_mut().enumerate() {
        loop {
            match std::io::Read::read(&mut sub.sock, &mut chunk) {
                Ok(k) if k > 0 => sub.sse.feed(&chunk[..k], &mut events_buf),
                _ => break,
            }
        }
        for ev in events_buf.drain(..) {
            sub.order.see(&ev);
        }
        let o = &sub.order;
        let l = (rounds as u64).saturating_sub(o.received).max(o.skipped);
        if l > 0 || o.reordered > 0 || o.odd > 0 || o.received != rounds as u64 {
            eprintln!(
                "clusterfan: subscriber {i} on {}: expected {rounds}, {o:?}, closed: {}",
                addrs[i % addrs.len()],
                sub.closed
            );
        }
        lost += l;
        reordered += o.reordered;
        received += o.received;
    }
    while times.len() < rounds {
        times.push(f64::NAN);
    }
    times.extend([lost as f64, reordered as f64, received as f64]);
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_checks_order() {
        let mut sse = Sse::default();
        let mut evs = Vec::new();
        sse.feed(
            b"retry: 2000\n\nid: 4\ndata: {\"k\":1}\n\n: keep-alive\n\nid: 5\nda",
            &mut evs,
        );
        assert_eq!(evs.len(), 1);
        sse.feed(
            b"ta: {\"k\":2}\n\nid: 7\ndata: x\n\nid: 6\ndata: y\n\n",
            &mut evs,
        );
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[1].data, "{\"k\":2}");
        let mut o = Order::default();
        evs.iter().for_each(|e| o.see(e));
        assert_eq!((o.received, o.skipped, o.reordered), (3, 1, 1));
        let mut tally = Tally::default();
        tally.add("x", &o, 4, false);
        assert_eq!((tally.lost, tally.reordered), (1, 1));
    }
}
