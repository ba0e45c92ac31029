//! The hub's fan-out thread: it puts each queued frame in its stream's
//! broadcast ring, so a script's send never waits on the audience, and keeps
//! a stalled subscriber from pinning more than `lag_bytes` of frames.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::frame::Frame;
use super::limits::HubLimits;
use super::lock;

/// A frame as it sits in a stream's broadcast ring. The ring keeps its last
/// `lag` entries for as long as any subscriber has not read them, so a stalled
/// subscriber could pin `lag` frames of any size. The fan-out thread therefore
/// also keeps a window of the last `lag_bytes` of frames it queued and empties
/// the cells that fall out of it: a subscriber that reaches an empty cell is
/// more than `lag_bytes` behind and is disconnected, as for a frame lag.
pub(super) type Cell = arc_swap::ArcSwapOption<Frame>;

/// A stream's broadcast ring, with the fan-out thread's window over it.
pub(super) struct Ring {
    tx: broadcast::Sender<Arc<Cell>>,
    /// Only the fan-out thread takes this lock.
    window: Mutex<Window>,
}

impl Ring {
    /// A ring of `lag` frames.
    pub(super) fn new(lag: usize) -> Ring {
        Ring {
            tx: broadcast::channel(lag.max(1)).0,
            window: Mutex::new(Window::default()),
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<Cell>> {
        self.tx.subscribe()
    }

    /// How many subscribers read from it.
    pub(super) fn receiver_count(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// The fan-out thread's per-stream record of the cells still inside the window.
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

/// The queue into the fan-out thread; the thread ends when it is dropped.
pub(super) type FanOut = crossbeam_channel::Sender<(Arc<Ring>, Arc<Frame>)>;

/// Starts the fan-out thread for a hub with `limits`.
pub(super) fn start(limits: &HubLimits) -> FanOut {
    let (fan_out, queue) = crossbeam_channel::unbounded::<(Arc<Ring>, Arc<Frame>)>();
    let (lag_bytes, ring) = (limits.lag_bytes.max(1), limits.lag.max(1));
    std::thread::Builder::new()
        .name("stream fan-out".into())
        .spawn(move || {
            // Ends when the hub (the only sender) is dropped.
            for (stream, frame) in queue {
                let size = frame.bytes.len();
                let cell = Arc::new(Cell::from(Some(frame)));
                lock(&stream.window).push(&cell, size, lag_bytes, ring);
                let _ = stream.tx.send(cell); // Err: nobody is listening
            }
        })
        .expect("starting the stream fan-out thread");
    fan_out
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::super::lock;
    use super::super::testing::{hub, send};

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
