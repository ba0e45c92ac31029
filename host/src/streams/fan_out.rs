//! Putting a frame in its stream's broadcast ring, which wakes the stream's
//! SSE subscribers, while keeping a stalled subscriber from pinning more than
//! `lag_bytes` of frames; and writing it to the stream's WebSocket
//! subscribers' sockets (`sink.rs`). A small audience (up to
//! `INLINE_AUDIENCE`) is served by the sender itself, in its turn, with no
//! thread hand-off; a larger one by the hub's fan-out thread, so a script's
//! send never waits on thousands of wake-ups or writes. Either way a
//! stream's frames reach its ring and its sockets in id order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::frame::Frame;
use super::limits::HubLimits;
use super::lock;
use super::sink::Subscriber;

/// A frame as it sits in a stream's broadcast ring. The ring keeps its last
/// `lag` entries for as long as any subscriber has not read them, so a stalled
/// subscriber could pin `lag` frames of any size. The fan-out thread therefore
/// also keeps a window of the last `lag_bytes` of frames it queued and empties
/// the cells that fall out of it: a subscriber that reaches an empty cell is
/// more than `lag_bytes` behind and is disconnected, as for a frame lag.
pub(super) type Cell = arc_swap::ArcSwapOption<Frame>;

/// Subscribers a sender wakes itself; more are left to the fan-out thread.
const INLINE_AUDIENCE: usize = 64;

/// WebSocket subscribers one thread writes a frame to: a larger audience is
/// split across the machine's cores, each thread writing to its share (the
/// writes are `send` syscalls; one core does some 200,000 a second).
const SINKS_PER_THREAD: usize = 2048;

/// How a frame is written to a stream's sockets: how many sinks one thread
/// takes, and how many threads there may be.
#[derive(Clone, Copy)]
struct Split {
    per_thread: usize,
    threads: usize,
}

/// A stream's broadcast ring, with the window over it.
pub(super) struct Ring {
    tx: broadcast::Sender<Arc<Cell>>,
    window: Mutex<Window>,
    /// Frames of this ring queued to the fan-out thread and not yet in the
    /// ring; while there are any, later frames queue behind them.
    queued: AtomicUsize,
    /// The WebSocket subscribers, written to by whoever delivers a frame.
    sinks: Mutex<Vec<Subscriber>>,
    /// New ones, moved to `sinks` before the next frame is delivered: a
    /// subscriber joins without waiting for a delivery in progress.
    joining: Mutex<Vec<Subscriber>>,
    /// WebSocket subscribers not yet left.
    sink_count: AtomicUsize,
}

impl Ring {
    /// A ring of `lag` frames.
    pub(super) fn new(lag: usize) -> Ring {
        Ring {
            tx: broadcast::channel(lag.max(1)).0,
            window: Mutex::new(Window::default()),
            queued: AtomicUsize::new(0),
            sinks: Mutex::new(Vec::new()),
            joining: Mutex::new(Vec::new()),
            sink_count: AtomicUsize::new(0),
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<Cell>> {
        self.tx.subscribe()
    }

    /// Adds a WebSocket subscriber; it gets the frames delivered from now on
    /// (the caller holds the stream's lock, so those are the ones numbered
    /// from now on). Also forgets those that left, unless a delivery is
    /// under way (it does that itself).
    pub(super) fn join(&self, subscriber: Subscriber) {
        self.sink_count.fetch_add(1, Ordering::Relaxed);
        lock(&self.joining).push(subscriber);
        if let Ok(mut sinks) = self.sinks.try_lock() {
            self.admit(&mut sinks);
            sinks.retain(|s| !s.left());
        }
    }

    /// A WebSocket subscriber left (its `Subscriber::left` is set).
    pub(super) fn leave(&self) {
        self.sink_count.fetch_sub(1, Ordering::Relaxed);
    }

    fn admit(&self, sinks: &mut Vec<Subscriber>) {
        sinks.append(&mut lock(&self.joining));
    }

    /// How many subscribers read from it, of either transport.
    pub(super) fn receiver_count(&self) -> usize {
        self.tx.receiver_count() + self.sink_count.load(Ordering::Relaxed)
    }
}

impl Drop for Ring {
    /// The stream is gone: its WebSocket subscribers close (as the SSE ones
    /// do when the broadcast sender goes).
    fn drop(&mut self) {
        let sinks = self.sinks.get_mut().unwrap_or_else(|e| e.into_inner());
        let joining = self.joining.get_mut().unwrap_or_else(|e| e.into_inner());
        for subscriber in sinks.iter().chain(joining.iter()) {
            subscriber.sink.close_stream();
        }
    }
}

/// A stream's record of the cells still inside the window.
#[derive(Default)]
struct Window {
    cells: VecDeque<(std::sync::Weak<Cell>, usize)>,
    bytes: usize,
}

impl Window {
    /// Notes `cell` (of `size` bytes) and empties the oldest cells beyond
    /// `limit` bytes. Cells more than `ring` entries back have left the ring
    /// already and are just forgotten.
    fn push(&mut self, cell: &Arc<Cell>, size: usize, limit: usize, ring: usize) {
        self.cells.push_back((Arc::downgrade(cell), size));
        self.bytes += size;
        while self.cells.len() > ring {
            if let Some((_, size)) = self.cells.pop_front() {
                self.bytes -= size;
            }
        }
        while self.bytes > limit && self.cells.len() > 1 {
            let Some((old, size)) = self.cells.pop_front() else {
                break;
            };
            self.bytes -= size;
            if let Some(old) = old.upgrade() {
                old.store(None); // a subscriber still owes it: it has lagged too far
            }
        }
    }
}

/// A hub's way into its rings: the queue into its fan-out thread (which ends
/// when this is dropped) and the window limits.
pub(super) struct FanOut {
    queue: crossbeam_channel::Sender<(Arc<Ring>, Arc<Frame>)>,
    lag_bytes: usize,
    ring: usize,
    split: Split,
}

impl FanOut {
    /// Puts `frame` in `ring`: at once for a small audience with nothing
    /// queued before it, else through the fan-out thread. The caller holds
    /// the stream's lock, so frames of one stream come here in id order.
    pub(super) fn send(&self, ring: &Arc<Ring>, frame: Arc<Frame>) {
        if ring.queued.load(Ordering::Acquire) == 0 && ring.receiver_count() <= INLINE_AUDIENCE {
            deliver(ring, frame, self.lag_bytes, self.ring, self.split);
        } else {
            ring.queued.fetch_add(1, Ordering::AcqRel);
            let _ = self.queue.send((ring.clone(), frame));
        }
    }
}

fn deliver(ring: &Ring, frame: Arc<Frame>, lag_bytes: usize, len: usize, split: Split) {
    // SSE subscribers are only woken here: first, then the sockets' writes.
    if ring.tx.receiver_count() > 0 {
        let cell = Arc::new(Cell::from(Some(frame.clone())));
        let mut window = lock(&ring.window);
        window.push(&cell, frame.bytes.len(), lag_bytes, len);
        let _ = ring.tx.send(cell); // Err: they all left meanwhile
    }
    let mut sinks = lock(&ring.sinks);
    ring.admit(&mut sinks);
    sinks.retain(|subscriber| !subscriber.left());
    offer_all(&sinks, &frame, split);
}

/// Writes `frame` to every sink that wants it: on this thread, or for a
/// large audience on as many scoped threads as `split` allows, each with
/// its share. They are all done before the next frame, so each socket still
/// gets its frames in order.
fn offer_all(sinks: &[Subscriber], frame: &Frame, split: Split) {
    let threads = split
        .threads
        .min(sinks.len() / split.per_thread.max(1))
        .max(1);
    let offer = |share: &[Subscriber]| share.iter().for_each(|s| s.offer(frame));
    if threads == 1 {
        return offer(sinks);
    }
    std::thread::scope(|scope| {
        let mut shares = sinks.chunks(sinks.len().div_ceil(threads));
        let mine = shares.next();
        for share in shares {
            let spawned = std::thread::Builder::new()
                .name("stream fan-out".into())
                .spawn_scoped(scope, move || offer(share));
            if spawned.is_err() {
                offer(share); // no thread to be had: this one does it
            }
        }
        offer(mine.unwrap_or_default());
    });
}

/// Starts the fan-out thread for a hub with `limits`.
pub(super) fn start(limits: &HubLimits) -> FanOut {
    let (fan_out, queue) = crossbeam_channel::unbounded::<(Arc<Ring>, Arc<Frame>)>();
    let (lag_bytes, ring) = (limits.lag_bytes.max(1), limits.lag.max(1));
    let split = Split {
        per_thread: SINKS_PER_THREAD,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    std::thread::Builder::new()
        .name("stream fan-out".into())
        .spawn(move || {
            // Ends when the hub (the only sender) is dropped.
            for (stream, frame) in queue {
                deliver(&stream, frame, lag_bytes, ring, split);
                stream.queued.fetch_sub(1, Ordering::AcqRel);
            }
        })
        .expect("starting the stream fan-out thread");
    FanOut {
        queue: fan_out,
        lag_bytes,
        ring,
        split,
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::super::lock;
    use super::super::testing::{hub, send, take};

    #[tokio::test]
    async fn frames_keep_their_order_when_the_audience_crosses_the_inline_size() {
        let hub = hub(|_| {});
        let mut kept = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        // A large audience: frames go through the fan-out thread...
        let crowd: Vec<_> = (0..super::INLINE_AUDIENCE + 5)
            .map(|_| Box::pin(hub.subscribe("/s", None, vec![]).unwrap()))
            .collect();
        // (held up: another thread holds the ring's window for a while)
        let stream = hub.get("/s").unwrap();
        let (held, holding) = std::sync::mpsc::channel();
        let holder = {
            let stream = stream.clone();
            std::thread::spawn(move || {
                let _window = lock(&stream.ring.window);
                held.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(200));
            })
        };
        holding.recv().unwrap();
        for i in 1..=50 {
            send(&hub, &i.to_string());
        }
        // ...then a small one while those are still queued: later frames
        // wait behind them instead of overtaking them inline.
        drop(crowd);
        for i in 51..=100 {
            send(&hub, &i.to_string());
        }
        holder.join().unwrap();
        let frames = take(&mut kept, 100).await;
        let ids: Vec<String> = (1..=100)
            .map(|i| format!("id: {i}\ndata: {i}\n\n"))
            .collect();
        assert_eq!(frames, ids);
        assert_eq!(stream.ring.queued.load(super::Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_large_websocket_audience_split_across_threads_gets_every_frame_in_order() {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        use std::sync::Arc;
        use tokio::io::AsyncReadExt;

        use super::super::frame::{encode_json, ws_text, Frame};
        use super::super::sink::{Sink, Subscriber};

        let ring = super::Ring::new(1024);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut clients = Vec::new();
        for _ in 0..23 {
            let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
            let (client, accepted) = tokio::join!(client, listener.accept());
            let sink = Sink::new(1024, 1 << 20);
            sink.connect(Arc::new(accepted.unwrap().0));
            ring.join(Subscriber {
                sink,
                first_live: 0,
                live_from: None::<Arc<AtomicU64>>,
                params: Arc::new(vec![]),
                left: Arc::new(AtomicBool::new(false)),
            });
            clients.push(client.unwrap());
        }
        // 23 sinks, 4 a thread, at most 4 threads: shares of 6, 6, 6 and 5.
        let split = super::Split {
            per_thread: 4,
            threads: 4,
        };
        let ids = 1..=30u64;
        for id in ids.clone() {
            let frame = Arc::new(Frame::message(id, &id.to_string(), None));
            super::deliver(&ring, frame, 1 << 20, 1024, split);
        }
        let want: Vec<u8> = ids
            .map(|id| ws_text(encode_json(Some(id), &id.to_string())))
            .collect::<Vec<_>>()
            .concat();
        for client in &mut clients {
            let mut got = vec![0u8; want.len()];
            let read = client.read_exact(&mut got);
            let read = tokio::time::timeout(std::time::Duration::from_secs(10), read);
            read.await.expect("a share was never written").unwrap();
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn a_subscriber_too_many_bytes_behind_is_dropped_and_frees_them() {
        let hub = hub(|limits| limits.lag_bytes = 10_000);
        let mut slow = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        let big = "y".repeat(4000);
        for _ in 0..10 {
            send(&hub, &big);
        }
        // Wait for the fan-out thread: the newest frame is in the ring.
        let stream = hub.get("/s").unwrap();
        for _ in 0..500 {
            if stream.ring.tx.len() == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(lock(&stream.ring.window).bytes <= 10_000 + 4100);
        assert!(
            slow.next().await.is_none(),
            "cut once it reaches an emptied frame"
        );
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_dropped() {
        let hub = hub(|limits| limits.lag = 4);
        let mut slow = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        // A receiver of our own sees when the fan-out thread has put the last
        // frame in the ring (it lags too, and skips ahead).
        let mut probe = hub.get("/s").unwrap().ring.subscribe();
        for i in 1..=10 {
            send(&hub, &i.to_string());
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, probe.recv()).await {
                Ok(Ok(cell)) if cell.load().as_ref().is_some_and(|f| f.id == 10) => break,
                Ok(_) => {}
                Err(_) => panic!("the fan-out thread never delivered frame 10"),
            }
        }
        assert!(slow.next().await.is_none());
        drop(slow); // as hyper drops a finished body
        assert_eq!(hub.total_subscribers(), 0);
    }
}
