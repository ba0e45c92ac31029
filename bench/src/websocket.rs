//! The `websocket` section: fan-out of one broadcast to 1,000 and 10,000
//! WebSocket subscribers, and the round trip client → script → broadcast →
//! other client, against Node (`ws`) and Bun (its built-in `ws`).
//!
//! Clients are raw sockets speaking just enough RFC 6455: the handshake, one
//! masked text frame to send (mask key zero, so the payload reads as is), and
//! a byte search for a token in what the server sends (its frames are unmasked).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::servers::{Kind, Server};
use crate::{http, median, percentile, Bench};

const PATH: &str = "/wsroom";

/// Opens a WebSocket on `PATH` and reads up to the end of the 101 response.
async fn connect(addr: &str) -> Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {PATH} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = http::find(&buf, b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                bail!("no upgrade: {}", String::from_utf8_lossy(&buf[..end]));
            }
            return Ok((s, buf.split_off(end + 4)));
        }
    }
}

/// A client text frame (masked with a zero key, as RFC 6455 allows).
fn text_frame(text: &str) -> Vec<u8> {
    let mut f = vec![0x81u8];
    let len = text.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(text.as_bytes());
    f
}

/// Spawns a reader per subscriber that reports when it sees `tok-<round>`.
async fn subscribers(
    addr: &str,
    n: usize,
) -> Result<(
    mpsc::UnboundedReceiver<(usize, Instant)>,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut s, mut buf) = connect(addr).await?;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut chunk = vec![0u8; 4096];
            let mut round = 0usize;
            loop {
                while let Some(at) = http::find(&buf, format!("tok-{round}\"").as_bytes()) {
                    let _ = tx.send((round, Instant::now()));
                    buf.drain(..at);
                    round += 1;
                }
                if buf.len() > 1 << 16 {
                    buf.drain(..buf.len() - 64);
                }
                match s.read(&mut chunk).await {
                    Ok(k) if k > 0 => buf.extend_from_slice(&chunk[..k]),
                    _ => break,
                }
            }
        }));
    }
    Ok((rx, tasks))
}

async fn count(addr: &str) -> usize {
    let Ok((200, body)) = http::once(addr, "GET", "/_engine/routes", "").await else {
        return 0;
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    // The stream's own object: its fields may come in any order after "path".
    let stream = compact
        .split(&format!("\"path\":\"{PATH}\""))
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .unwrap_or("");
    stream
        .split("\"subscribers\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn contenders(b: &Bench) -> Vec<Kind> {
    // Pings every 15 s would go unanswered by these raw clients.
    let mut all = vec![b.engine("aiwebengine", &["--keep-alive-secs", "3600"])];
    all.extend(b.peers.iter().cloned());
    all
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let sizes: &[usize] = if b.quick { &[1000] } else { &[1000, 10_000] };
    let rounds = if b.quick { 3 } else { 5 };
    b.say("\n## WebSocket: fan-out, and a round trip through the script\n");
    b.say(&format!("Fan-out: POST /wsroom/send until the last WebSocket subscriber has the message, median of {rounds}. Round trip: one client sends a frame, the script's onMessage broadcasts it, another client receives it (200 sequential trips). Clients are raw sockets in the bench process, which shares the cores.\n"));
    b.say("| server | subscribers | fan-out ms (median) | worst ms |");
    b.say("|---|---:|---:|---:|");
    for &n in sizes {
        for kind in contenders(b) {
            let server = Server::start(&kind, &b.seed).await?;
            let (mut rx, tasks) = subscribers(&server.addr, n).await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while count(&server.addr).await < n {
                if Instant::now() > deadline {
                    bail!("{}: WebSocket subscribers never reached {n}", kind.name);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut times = Vec::new();
            for round in 0..rounds {
                let body = format!("tok-{round}");
                let t0 = Instant::now();
                let (status, _) = http::once(&server.addr, "POST", "/wsroom/send", &body).await?;
                if status != 200 {
                    bail!("{}: POST /wsroom/send answered {status}", kind.name);
                }
                let (mut got, mut last) = (0, t0);
                while got < n {
                    let (r, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                        .await
                        .context("a WebSocket subscriber never got the message")?
                        .context("readers ended")?;
                    if r == round {
                        got += 1;
                        last = last.max(at);
                    }
                }
                times.push(last.duration_since(t0).as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tasks.iter().for_each(|t| t.abort());
            b.say(&format!(
                "| {} | {n} | {:.1} | {:.1} |",
                kind.name,
                median(times.clone()),
                percentile(times, 1.0)
            ));
            server.stop().await;
        }
    }
    b.say("\n| server | round trip p50 ms | p99 ms |");
    b.say("|---|---:|---:|");
    for kind in contenders(b) {
        let server = Server::start(&kind, &b.seed).await?;
        let (p50, p99) = round_trips(&server.addr, if b.quick { 50 } else { 200 }).await?;
        b.say(&format!("| {} | {p50:.3} | {p99:.3} |", kind.name));
        server.stop().await;
    }
    Ok(())
}

/// `trips` sequential trips from one client through the script to another.
async fn round_trips(addr: &str, trips: usize) -> Result<(f64, f64)> {
    let (mut sender, _) = connect(addr).await?;
    let (mut receiver, mut buf) = connect(addr).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(addr).await < 2 {
        if Instant::now() > deadline {
            bail!("the round-trip clients never subscribed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut chunk = vec![0u8; 4096];
    let mut times = Vec::with_capacity(trips);
    for i in 0..trips {
        let token = format!("rt-{i}\"");
        let t0 = Instant::now();
        sender.write_all(&text_frame(&format!("rt-{i}"))).await?;
        while http::find(&buf, token.as_bytes()).is_none() {
            let k = tokio::time::timeout(Duration::from_secs(10), receiver.read(&mut chunk))
                .await
                .context("the round trip never arrived")??;
            if k == 0 {
                bail!("the receiving client was closed");
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        buf.clear();
        // The sender is subscribed too: drain what it got so it never backs up.
        let _ = tokio::time::timeout(Duration::from_millis(1), sender.read(&mut chunk)).await;
    }
    Ok((median(times.clone()), percentile(times, 0.99)))
}
