//! Reading a connection's first request head ourselves, before hyper or
//! `direct_sse` sees it, with three bounds: its size (`MAX_HEAD`), the time the
//! client may take (`--header-read-timeout-secs`), and shutdown (an idle
//! connection never holds it up).
//!
//! The end of a head is a blank line, with `\r\n` or a bare `\n` as line ends
//! (HTTP/1.1 allows recipients to accept LF alone, and hyper does). The scan is
//! incremental: each read looks only at the new bytes (plus the three before
//! them), so a head that trickles in byte by byte costs linear time.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::reply::Early;

/// The largest request head accepted, on the first request and (through
/// hyper's `max_buf_size`) on later ones. Node allows 16 KiB, nginx 8 KiB lines.
pub const MAX_HEAD: usize = 32 * 1024;

/// What reading the first head gave.
pub enum Head {
    /// Bytes up to (at least) the end of the first head, or up to EOF: hyper
    /// judges a partial or malformed one.
    Read(BytesMut),
    /// Over `MAX_HEAD`: answered here (414 or 431) and closed.
    TooLarge,
    /// Nothing usable before the timeout or shutdown: the connection is dropped.
    Idle,
}

/// Reads the first request head from `tcp`.
pub async fn read_first(
    tcp: &mut TcpStream,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Head {
    let mut buf = BytesMut::with_capacity(1024);
    let mut scanned = 0;
    let read = async {
        loop {
            if let Some(_end) = head_end(&buf, &mut scanned) {
                return true;
            }
            if buf.len() >= MAX_HEAD {
                return false;
            }
            buf.reserve(1024.min(MAX_HEAD - buf.len()));
            match tcp.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return true, // EOF: let hyper judge what came
                Ok(_) => {}
            }
        }
    };
    let outcome = tokio::select! {
        done = tokio::time::timeout(timeout, read) => done.ok(),
        _ = shutdown.wait_for(|stop| *stop) => None,
    };
    match outcome {
        Some(true) if !buf.is_empty() => Head::Read(buf),
        Some(true) | None => Head::Idle,
        Some(false) => {
            let line_too_long = !buf.contains(&b'\n');
            refuse(tcp, line_too_long).await;
            Head::TooLarge
        }
    }
}

/// Where the first head ends (the index after its blank line), scanning from
/// `*scanned` on and remembering how far it got. Blank lines before the
/// request line are skipped, as HTTP/1.1 asks.
fn head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let from = (*scanned).max(start);
    let found = buf
        .iter()
        .enumerate()
        .skip(from)
        .filter(|(_, b)| **b == b'\n')
        .find_map(|(i, _)| {
            let before = |back: usize| i.checked_sub(back).and_then(|j| buf.get(j)).copied();
            let blank = i > start
                && (before(1) == Some(b'\n')
                    || (before(1) == Some(b'\r') && before(2) == Some(b'\n') && i > start + 1));
            blank.then_some(i + 1)
        });
    // Next time, look again only at the last three bytes seen ("\n\r" + new "\n").
    *scanned = buf.len().saturating_sub(3).max(start);
    found
}

/// Answers a head over `MAX_HEAD` and closes: 414 when even the request line
/// did not fit, 431 otherwise. What the client still sends is read and dropped
/// (up to a bound), so closing does not reset the connection before it reads
/// the answer.
async fn refuse(tcp: &mut TcpStream, line_too_long: bool) {
    let early = match line_too_long {
        true => Early::LineTooLong,
        false => Early::HeadTooLarge,
    };
    tracing::debug!(status = %early.status(), "refusing an oversized request head");
    let reply = early.to_wire();
    let bound = Duration::from_secs(2);
    let _ = tokio::time::timeout(bound, async {
        tcp.write_all(reply.as_bytes()).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 8192];
        let mut drained = 0usize;
        while drained < (1 << 20) {
            match tcp.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(head: &[u8]) -> Option<usize> {
        head_end(head, &mut 0)
    }

    #[test]
    fn heads_end_at_a_blank_line_with_either_line_end() {
        assert_eq!(end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Some(27));
        assert_eq!(end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
        assert_eq!(end(b"GET / HTTP/1.1\r\nHost: x\n\r\n"), Some(26));
        assert_eq!(end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Some(22));
        assert_eq!(end(b"\r\n\r\n"), None);
    }

    #[test]
    fn a_trickled_head_is_found_scanning_each_byte_once() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let mut scanned = 0;
        let mut found = None;
        for n in 1..=head.len() {
            found = found.or(head_end(&head[..n], &mut scanned));
        }
        assert_eq!(found, Some(27));
    }
}
