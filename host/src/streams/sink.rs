//! A WebSocket subscriber's way out: its socket, written straight from where
//! a frame is delivered (the sender's turn, or the fan-out thread), with a
//! queue for what the socket would not take at once.
//!
//! A broadcast to 10,000 WebSocket subscribers is then 10,000 non-blocking
//! `send`s in one loop, the frame's bytes encoded once for all of them (a
//! server's frames are not masked), instead of waking 10,000 connection
//! tasks that each frame and write the message. A connection's own task
//! only has work when its socket pushes back: it writes the queue out when
//! the socket is writable again. Everything written to the connection (hub
//! frames, `client.send` messages, the connection's own pings, pongs and
//! close frame) goes through the same queue, whole frames only, so frames
//! never interleave and keep their order.
//!
//! A subscriber whose queue grows past `lag` frames or `lag_bytes` bytes is
//! too slow: it ends (`End::Lagged`), and its connection closes with 1013.
//!
//! While the script handles one of the connection's own messages, its sink
//! is corked (`cork`): what the turn sends it (its broadcast's copy, a
//! `client.send`) waits and goes out when the turn ends, so the other
//! subscribers' copies are written first and the turn's frames to this
//! connection share its writes. The sender rarely waits on its own echo;
//! everyone else does.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prometheus::IntCounter;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::filter::Params;
use super::frame::Frame;
use super::lock;

/// Why a sink takes no more frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// It fell too far behind (close 1013).
    Lagged,
    /// Its stream went away: shutdown, or the script was unloaded (close 1001).
    StreamClosed,
    /// Writing to the socket failed: the peer is gone.
    Failed,
}

/// Frames and bytes a corked sink holds back before it writes anyway.
const CORKED_FRAMES: usize = 64;
const CORKED_BYTES: usize = 64 * 1024;

/// What a connection writes to and its task waits on.
pub struct Sink {
    out: Mutex<Out>,
    /// Tells the connection's task it has work: a queue to write out, or an end.
    ready: Notify,
    lag: usize,
    lag_bytes: usize,
}

struct Out {
    /// `None` until the connection is upgraded; frames queue meanwhile.
    socket: Option<Arc<TcpStream>>,
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// Part of the queue's first frame is on the wire already.
    started: bool,
    end: Option<End>,
    /// The stream's count of subscribers cut for lagging.
    lagged: Option<IntCounter>,
    /// Frames wait for the end of the running turn (see `cork`).
    corked: bool,
}

/// What `Sink::put` did.
#[derive(Debug, PartialEq, Eq)]
enum Put {
    Done,
    /// Over the caps: not taken.
    Full,
    /// The sink has ended, or the socket failed.
    Ended,
}

impl Sink {
    /// A sink that queues at most `lag` frames or `lag_bytes` bytes.
    pub fn new(lag: usize, lag_bytes: usize) -> Arc<Sink> {
        Arc::new(Sink {
            out: Mutex::new(Out {
                socket: None,
                queue: VecDeque::new(),
                bytes: 0,
                started: false,
                end: None,
                lagged: None,
                corked: false,
            }),
            ready: Notify::new(),
            lag: lag.max(1),
            lag_bytes: lag_bytes.max(1),
        })
    }

    /// The upgraded connection's socket: what queued so far goes out.
    pub fn connect(&self, socket: Arc<TcpStream>) {
        lock(&self.out).socket = Some(socket);
        self.ready.notify_one();
    }

    /// A hub frame. Past the caps, the sink ends as `Lagged`.
    pub(super) fn offer(&self, frame: &Bytes) {
        let mut out = lock(&self.out);
        if out.end.is_some() {
            return;
        }
        if self.put(&mut out, frame, true) == Put::Full {
            self.finish(&mut out, End::Lagged);
        }
    }

    /// Counts a lag disconnect in `lagged` (the stream's metric).
    pub(super) fn count_lag_in(&self, lagged: IntCounter) {
        lock(&self.out).lagged = Some(lagged);
    }

    /// A frame replayed to a new subscriber: not counted against `lag` (the
    /// replay buffer has its own caps), only against `lag_bytes`.
    pub(super) fn offer_replayed(&self, frame: &Bytes) {
        let mut out = lock(&self.out);
        if out.end.is_none() && self.put(&mut out, frame, false) == Put::Full {
            self.finish(&mut out, End::Lagged);
        }
    }

    /// A message for this connection alone (`client.send`): false when the
    /// connection has ended or is too far behind to take it (it is dropped).
    pub fn send_direct(&self, frame: &Bytes) -> bool {
        let mut out = lock(&self.out);
        out.end.is_none() && self.put(&mut out, frame, true) == Put::Done
    }

    /// A frame of the connection's own (ping, pong, close), written even
    /// after the sink ended, but not past `lag_bytes` (then the sink ends as
    /// `Lagged`) nor once the socket failed. False when not taken.
    pub fn send_own(&self, frame: &Bytes) -> bool {
        let mut out = lock(&self.out);
        if out.end == Some(End::Failed) {
            return false;
        }
        match self.put(&mut out, frame, false) {
            Put::Done => true,
            Put::Full => {
                self.finish(&mut out, End::Lagged);
                false
            }
            Put::Ended => false,
        }
    }

    /// Holds frames back until the guard is dropped, at the end of a turn
    /// of the script for this connection (see the module's docs).
    pub fn cork(self: &Arc<Self>) -> Corked {
        lock(&self.out).corked = true;
        Corked(self.clone())
    }

    /// Writes `frame` at once if nothing waits before it, else queues it:
    /// not past `lag_bytes`, nor past `lag` frames when `counted`.
    fn put(&self, out: &mut Out, frame: &Bytes, counted: bool) -> Put {
        if out.corked {
            if out.queue.len() < CORKED_FRAMES && out.bytes + frame.len() <= CORKED_BYTES {
                self.push(out, frame.clone());
                return Put::Done;
            }
            // A turn sending this much to its connection: no more holding back.
            out.corked = false;
            if self.write_queue(out).is_err() {
                return Put::Ended;
            }
        }
        if out.queue.is_empty() {
            if let Some(socket) = &out.socket {
                match socket.try_write(frame) {
                    Ok(n) if n == frame.len() => return Put::Done,
                    Ok(n) => {
                        out.started = n > 0;
                        self.push(out, frame.slice(n..));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.push(out, frame.clone())
                    }
                    Err(_) => {
                        self.finish(out, End::Failed);
                        return Put::Ended;
                    }
                }
                self.ready.notify_one();
                return Put::Done;
            }
        }
        if out.bytes + frame.len() > self.lag_bytes || (counted && out.queue.len() >= self.lag) {
            return Put::Full;
        }
        self.push(out, frame.clone());
        Put::Done
    }

    fn push(&self, out: &mut Out, bytes: Bytes) {
        out.bytes += bytes.len();
        out.queue.push_back(bytes);
    }

    /// Ends the sink. A lagging one keeps only the rest of a frame already
    /// started, so its close frame follows whole frames.
    fn finish(&self, out: &mut Out, end: End) {
        if out.end.is_some() {
            return;
        }
        out.end = Some(end);
        if end == End::Lagged {
            if let Some(lagged) = &out.lagged {
                lagged.inc();
            }
            tracing::info!("disconnecting a subscriber that fell too far behind");
        }
        if end != End::StreamClosed {
            let keep = usize::from(out.started);
            while out.queue.len() > keep {
                if let Some(dropped) = out.queue.pop_back() {
                    out.bytes -= dropped.len();
                }
            }
        }
        self.ready.notify_one();
    }

    /// The stream went away (called as its ring is dropped).
    pub(super) fn close_stream(&self) {
        self.finish(&mut lock(&self.out), End::StreamClosed);
    }

    /// Why the sink takes no more hub frames, if it ended.
    pub fn end(&self) -> Option<End> {
        lock(&self.out).end
    }

    /// Whether frames wait for the socket.
    pub fn pending(&self) -> bool {
        !lock(&self.out).queue.is_empty()
    }

    /// How many frames (or rests of one) wait.
    #[cfg(test)]
    pub(super) fn queued_frames(&self) -> usize {
        lock(&self.out).queue.len()
    }

    /// Writes out what is queued, as far as the socket takes it now; how
    /// many bytes went out. An error: the socket failed (the sink has ended).
    pub fn flush(&self) -> io::Result<usize> {
        self.write_queue(&mut lock(&self.out))
    }

    fn write_queue(&self, out: &mut Out) -> io::Result<usize> {
        let Some(socket) = out.socket.clone() else {
            return Ok(0);
        };
        let mut written = 0;
        while let Some(front) = out.queue.front_mut() {
            match socket.try_write(front) {
                Ok(n) => {
                    written += n;
                    if n == front.len() {
                        out.queue.pop_front();
                        out.started = false;
                    } else {
                        let rest = front.slice(n..);
                        *front = rest;
                        out.started = true;
                    }
                    out.bytes -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.finish(out, End::Failed);
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    /// Waits until there may be work (see `ready`).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// The connection is done: the socket is let go (closed once the
    /// connection drops its own handle) and anything queued is dropped.
    pub fn release(&self) {
        let mut out = lock(&self.out);
        out.socket = None;
        out.queue.clear();
        out.bytes = 0;
        if out.end.is_none() {
            out.end = Some(End::Failed);
        }
    }
}

/// A corked sink (`Sink::cork`); dropped, it writes out what waited, and
/// leaves what the socket does not take to the connection's task.
pub struct Corked(Arc<Sink>);

impl Drop for Corked {
    fn drop(&mut self) {
        let sink = &self.0;
        let mut out = lock(&sink.out);
        out.corked = false;
        if !out.queue.is_empty() {
            let _ = sink.write_queue(&mut out);
            if !out.queue.is_empty() {
                sink.ready.notify_one();
            }
        }
    }
}

/// A sink as its stream's ring holds it: with what its subscriber wants.
pub(super) struct Subscriber {
    pub(super) sink: Arc<Sink>,
    /// Frames before this id were replayed, or predate the subscription.
    pub(super) first_live: u64,
    /// Cluster mode: the first id that is news (see `StreamChannel::live_from`).
    pub(super) live_from: Option<Arc<AtomicU64>>,
    pub(super) params: Arc<Params>,
    /// Set when the subscription is dropped; the ring forgets it then.
    pub(super) left: Arc<AtomicBool>,
}

impl Subscriber {
    /// Offers `frame` if this subscriber wants it.
    pub(super) fn offer(&self, frame: &Frame) {
        let wanted = frame.id >= self.first_live
            && self
                .live_from
                .as_ref()
                .is_none_or(|from| frame.id >= from.load(Ordering::Relaxed))
            && frame.reaches(&self.params);
        if wanted {
            self.sink.offer(&frame.ws);
        }
    }

    pub(super) fn left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// The server's end, connected to a sink, and the client's end.
    async fn connected(sink: &Sink) -> TcpStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        sink.connect(Arc::new(accepted.unwrap().0));
        client.unwrap()
    }

    /// Whether anything arrives within 50 ms.
    async fn arrives(client: &TcpStream) -> bool {
        tokio::time::timeout(Duration::from_millis(50), client.readable())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_corked_sink_writes_when_the_turn_ends_in_order() {
        let sink = Sink::new(16, 1 << 20);
        let mut client = connected(&sink).await;
        let corked = sink.cork();
        assert!(sink.send_direct(&Bytes::from_static(b"a")));
        sink.offer(&Bytes::from_static(b"b"));
        assert!(sink.pending());
        assert!(!arrives(&client).await, "held back while corked");
        drop(corked);
        assert!(!sink.pending());
        let mut got = [0u8; 2];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ab");
        // Uncorked, a frame goes straight out again.
        sink.offer(&Bytes::from_static(b"c"));
        client.read_exact(&mut got[..1]).await.unwrap();
        assert_eq!(&got[..1], b"c");
    }

    #[tokio::test]
    async fn a_turn_sending_much_to_its_connection_is_not_held_back() {
        let sink = Sink::new(1024, 1 << 20);
        let mut client = connected(&sink).await;
        let _corked = sink.cork();
        for i in 0..=CORKED_FRAMES {
            assert!(sink.send_direct(&Bytes::from(vec![b'0' + (i % 10) as u8])));
        }
        let mut got = vec![0u8; CORKED_FRAMES + 1];
        client.read_exact(&mut got).await.unwrap();
        let want: Vec<u8> = (0..=CORKED_FRAMES).map(|i| b'0' + (i % 10) as u8).collect();
        assert_eq!(got, want, "all of it, in order, before the turn ends");
    }
}
