//! The subscriber sockets of the `fanout` and `websocket` sections, in a
//! process of their own (this binary, `--clients ...`), pinned with `taskset`
//! to another core than the server, so that a fan-out time is the server's
//! work and not the cost of the bench reading 10,000 sockets on the same core.
//!
//! The child is plain blocking code around one `mio` poll (no async runtime):
//! every subscriber is a non-blocking socket read until it would block, and a
//! round ends when the last one has seen its token. It talks to the bench on
//! stdin/stdout: `ready` once the server counts all subscribers, `go` to
//! start, then one line of results.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::{Events, Interest, Poll, Token};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::http;

/// The cores of the server and of its clients, when the machine has two and
/// `taskset` is there; `None`: both run unpinned.
pub fn cores() -> Option<(&'static str, &'static str)> {
    let two = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let taskset = std::process::Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (two && taskset).then_some(("0", "1"))
}

/// How a section's text says where the clients ran.
pub fn placement() -> &'static str {
    match cores() {
        Some(_) => "the subscriber sockets run in a separate process pinned to the other core (`taskset -c 1`; the server `taskset -c 0`)",
        None => "the subscriber sockets run in a separate process (unpinned: no `taskset` or one core)",
    }
}

/// The bench's side of a client process.
pub struct Clients {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Clients {
    /// Starts `aiwebengine-bench --clients <args>` on the clients' core.
    pub async fn spawn(args: &[String]) -> Result<Clients> {
        let me = std::env::current_exe()?;
        let mut cmd = match cores() {
            Some((_, cpu)) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpu]).arg(me);
                c
            }
            None => Command::new(me),
        };
        let mut child = cmd
            .arg("--clients")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the client process")?;
        let stdin = child.stdin.take().context("stdin")?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(Clients {
            child,
            stdin,
            lines,
        })
    }

    /// The next line the clients print (`Err` if they ended: see their stderr).
    pub async fn line(&mut self, within: Duration) -> Result<String> {
        match tokio::time::timeout(within, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(_) => {
                let status = self.child.wait().await?;
                bail!("the client process ended ({status})")
            }
            Err(_) => bail!("the client process said nothing for {within:?}"),
        }
    }

    /// Waits for `ready`, the server counting every subscriber.
    pub async fn ready(&mut self) -> Result<()> {
        let line = self.line(Duration::from_secs(180)).await?;
        if line != "ready" {
            bail!("the client process said {line:?}");
        }
        Ok(())
    }

    /// Starts the measurement and returns its result line's numbers.
    pub async fn go(mut self) -> Result<Vec<f64>> {
        self.stdin.write_all(b"go\n").await?;
        self.stdin.flush().await?;
        let line = self.line(Duration::from_secs(300)).await?;
        let numbers = line
            .strip_prefix("result")
            .with_context(|| format!("the client process said {line:?}"))?
            .split_whitespace()
            .map(|n| n.parse::<f64>())
            .collect::<Result<Vec<_>, _>>()?;
        let _ = self.child.wait().await;
        Ok(numbers)
    }
}

/// The child: `--clients fanout <sse|ws> <addr> <stream> <post path> <body with {round}> <n> <rounds>`
/// prints each round's fan-out in ms; `--clients roundtrip <addr> <stream> <trips>`
/// prints each trip's round trip in ms.
pub fn main(args: &[String]) -> Result<()> {
    let arg = |i: usize| args.get(i).map(String::as_str).context("missing argument");
    let numbers = match arg(0)? {
        "fanout" => {
            let ws = match arg(1)? {
                "ws" => true,
                "sse" => false,
                other => bail!("unknown transport {other}"),
            };
            fan_out(
                ws,
                arg(2)?,
                arg(3)?,
                arg(4)?,
                arg(5)?,
                arg(6)?.parse()?,
                arg(7)?.parse()?,
            )?
        }
        "roundtrip" => round_trips(arg(1)?, arg(2)?, arg(3)?.parse()?)?,
        "clusterfan" => crate::cluster::fan_out_clients(args.get(1..).unwrap_or_default())?,
        other => bail!("unknown client job {other}"),
    };
    let text: Vec<String> = numbers.iter().map(|n| format!("{n:.3}")).collect();
    println!("result {}", text.join(" "));
    Ok(())
}

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A blocking connection that sent `request` and read the response head
/// (which must start with `status`); returns it with the bytes after the head.
fn open(addr: &str, request: &str, status: &[u8]) -> Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = http::find(&buf, b"\r\n\r\n") {
            if !buf.starts_with(status) {
                bail!("refused: {}", String::from_utf8_lossy(&buf[..end]));
            }
            return Ok((s, buf.split_off(end + 4)));
        }
    }
}

pub(crate) fn subscribe(addr: &str, path: &str, ws: bool) -> Result<(TcpStream, Vec<u8>)> {
    if ws {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        open(addr, &req, b"HTTP/1.1 101")
    } else {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n");
        open(addr, &req, b"HTTP/1.1 200")
    }
}

pub(crate) fn request(method: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// How many subscribers the server counts on `stream` (both servers list a
/// stream as one flat JSON object in `/_engine/routes`, fields in any order).
pub fn counted(body: &str, stream: &str) -> usize {
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let key = format!("\"path\":\"{stream}\"");
    // The same path may also be a route's ({"method":"GET","path":...}): the
    // stream's object is the one with a subscriber count.
    compact
        .match_indices(&key)
        .find_map(|(at, _)| {
            let start = compact[..at].rfind('{').map_or(0, |i| i + 1);
            let end = compact[at..].find('}').map_or(compact.len(), |i| at + i);
            compact[start..end]
                .split("\"subscribers\":")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn subscribers_counted(addr: &str, stream: &str) -> usize {
    let Ok((mut s, mut body)) = open(
        addr,
        &request("GET", "/_engine/routes", ""),
        b"HTTP/1.1 200",
    ) else {
        return 0;
    };
    let _ = s.read_to_end(&mut body); // Connection: close
    counted(&String::from_utf8_lossy(&body), stream)
}

/// Waits until the server counts `n` subscribers on `stream`.
pub(crate) fn until_counted(addr: &str, stream: &str, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while subscribers_counted(addr, stream) < n {
        if Instant::now() > deadline {
            bail!("the server never counted {n} subscribers on {stream}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Says `ready` and waits for the bench's `go`.
pub(crate) fn ready() -> Result<()> {
    println!("ready");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != "go" {
        bail!("expected go, got {line:?}");
    }
    Ok(())
}

struct Subscriber {
    sock: mio::net::TcpStream,
    buf: Vec<u8>,
    /// The next round whose token this subscriber waits for.
    round: usize,
}

/// Reads what `sub` has; true when it completed `round`.
fn drain(sub: &mut Subscriber, chunk: &mut [u8], round: usize, token: &[u8]) -> Result<bool> {
    loop {
        match sub.sock.read(chunk) {
            Ok(0) => bail!("the server closed a subscriber"),
            Ok(k) => sub.buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut done = false;
    if sub.round == round {
        if let Some(at) = http::find(&sub.buf, token) {
            sub.buf.drain(..at + token.len());
            sub.round += 1;
            done = true;
        }
    }
    if sub.buf.len() > 1 << 16 {
        let keep = sub.buf.len() - 64;
        sub.buf.drain(..keep);
    }
    Ok(done)
}

fn fan_out(
    ws: bool,
    addr: &str,
    stream: &str,
    post_path: &str,
    body: &str,
    n: usize,
    rounds: usize,
) -> Result<Vec<f64>> {
    let mut poll = Poll::new()?;
    let mut subs = Vec::with_capacity(n);
    for i in 0..n {
        let (sock, buf) = subscribe(addr, stream, ws).with_context(|| format!("subscriber {i}"))?;
        sock.set_nonblocking(true)?;
        let mut sock = mio::net::TcpStream::from_std(sock);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE)?;
        subs.push(Subscriber {
            sock,
            buf,
            round: 0,
        });
    }
    until_counted(addr, stream, n)?;
    ready()?;
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut times = Vec::with_capacity(rounds);
    let post_token = Token(n);
    for round in 0..rounds {
        let token = format!("tok-{round}\"");
        let mut post = TcpStream::connect(addr)?;
        post.set_nodelay(true)?;
        let text = request(
            "POST",
            post_path,
            &body.replace("{round}", &round.to_string()),
        );
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
                bail!("round {round}: {got} of {n} subscribers got the message in 30 s");
            }
            poll.poll(&mut events, Some(left))?;
            for event in events.iter() {
                let Token(i) = event.token();
                if i == n {
                    read_all(&mut post, &mut answer)?;
                    continue;
                }
                let sub = subs.get_mut(i).context("unknown token")?;
                if drain(sub, &mut chunk, round, token.as_bytes())? {
                    got += 1;
                    if got == n {
                        last = Instant::now();
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
        times.push(last.duration_since(t0).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(times)
}

/// Reads what a non-blocking socket has (its end included) into `into`.
pub(crate) fn read_all(sock: &mut impl Read, into: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        match sock.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(k) => into.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
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

/// The server's frames at the front of `buf` (unmasked), as (opcode, payload);
/// a partial frame stays in `buf`.
fn frames(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 2 {
            return out;
        }
        let (op, len7) = (buf[0] & 0x0f, (buf[1] & 0x7f) as usize);
        let (head, len) = match len7 {
            126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
            127 if buf.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (10, u64::from_be_bytes(b) as usize)
            }
            126 | 127 => return out,
            n => (2, n),
        };
        if buf.len() < head + len {
            return out;
        }
        out.push((op, buf[head..head + len].to_vec()));
        buf.drain(..head + len);
    }
}

/// Fails on a close frame, saying its code and reason; true if `token` came.
fn look(buf: &mut Vec<u8>, token: &[u8], who: &str) -> Result<bool> {
    let mut seen = false;
    for (op, payload) in frames(buf) {
        match op {
            0x8 => {
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                bail!("the server closed the {who} (code {code:?}: {reason})");
            }
            0x1 => seen |= http::find(&payload, token).is_some(),
            _ => {}
        }
    }
    Ok(seen)
}

/// One trip starts at most this often: a client may send 100 messages a
/// second (`--ws-messages-per-sec`); more close it with 1008, as they should.
const TRIP_EVERY: Duration = Duration::from_millis(12);

/// `trips` sequential trips: one client sends a frame, the script's
/// `onMessage` broadcasts it, another client receives it. The trips are paced
/// under the server's per-client message cap (the latency of an idle server,
/// not a flood).
fn round_trips(addr: &str, stream: &str, trips: usize) -> Result<Vec<f64>> {
    let (mut sender, mut sent_buf) = subscribe(addr, stream, true)?;
    let (mut receiver, mut buf) = subscribe(addr, stream, true)?;
    receiver.set_read_timeout(Some(Duration::from_secs(10)))?;
    until_counted(addr, stream, 2)?;
    ready()?;
    let mut chunk = vec![0u8; 4096];
    let mut times = Vec::with_capacity(trips);
    for i in 0..trips {
        let token = format!("rt-{i}\"");
        let t0 = Instant::now();
        let next = t0 + TRIP_EVERY;
        sender.write_all(&text_frame(&format!("rt-{i}")))?;
        while !look(&mut buf, token.as_bytes(), "receiving client")? {
            let k = match receiver.read(&mut chunk) {
                Ok(k) => k,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    bail!("trip {i}: the message never arrived in 10 s")
                }
                Err(e) => return Err(e.into()),
            };
            if k == 0 {
                bail!("trip {i}: the server closed the receiving client");
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        // The sender is subscribed too: drain what it got, so it never backs up
        // and a close sent to it is seen.
        sender.set_nonblocking(true)?;
        read_all(&mut sender, &mut sent_buf)?;
        sender.set_nonblocking(false)?;
        look(&mut sent_buf, b"\0", "sending client")?;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_stream_whatever_the_field_order() {
        let engine = r#"{"scripts":[{"routes":[{"method":"GET","path":"/chat"}],"streams":[{"conflictsWith":null,"path":"/chat","sse":2,"subscribers":3,"websocket":1},{"path":"/wsroom","subscribers":7}]}]}"#;
        assert_eq!(counted(engine, "/chat"), 3);
        assert_eq!(counted(engine, "/wsroom"), 7);
        let node = r#"{"streams": [{"path": "/x", "subscribers": 0}, {"subscribers": 12, "path": "/chat"}]}"#;
        assert_eq!(counted(node, "/chat"), 12);
        assert_eq!(counted(node, "/nope"), 0);
    }

    #[test]
    fn reads_server_frames_and_keeps_a_partial_one() {
        let mut buf = vec![0x81, 3, b'a', b'b', b'c', 0x88, 4, 0x03, 0xf0, b'x'];
        let got = frames(&mut buf);
        assert_eq!(got, vec![(1, b"abc".to_vec())]);
        assert_eq!(buf.len(), 5);
        buf.push(b'y');
        assert!(look(&mut buf, b"z", "client")
            .unwrap_err()
            .to_string()
            .contains("1008"));
    }
}
