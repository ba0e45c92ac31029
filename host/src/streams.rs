//! The SSE hub: one broadcast channel per stream path.
//!
//! A message is encoded into its SSE frame once and the same `Bytes` is shared by
//! every subscriber, so a broadcast costs the sender O(1) whatever the audience.
//! Each subscriber reads from a bounded ring; one that falls a whole ring behind
//! is disconnected (its EventSource reconnects), never buffered without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

pub struct Hub {
    streams: RwLock<HashMap<String, Arc<StreamChannel>>>,
    capacity: usize,
}

struct StreamChannel {
    /// Held while numbering and sending, so frames enter the ring in id order.
    next_id: Mutex<u64>,
    tx: broadcast::Sender<Bytes>,
}

/// Encodes one SSE event. `data` is one JSON text; should it ever hold line
/// breaks, each line becomes its own `data:` field, as SSE requires.
pub fn encode_frame(id: u64, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 24);
    out.push_str("id: ");
    out.push_str(&id.to_string());
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

impl Hub {
    /// `capacity`: how many frames a subscriber may fall behind before it is dropped.
    pub fn new(capacity: usize) -> Self {
        Hub {
            streams: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Makes sure a stream exists at `path` (scripts call this as they register).
    pub fn ensure(&self, path: &str) {
        if self.streams.read().unwrap().contains_key(path) {
            return;
        }
        let mut streams = self.streams.write().unwrap();
        streams.entry(path.to_string()).or_insert_with(|| {
            Arc::new(StreamChannel {
                next_id: Mutex::new(1),
                tx: broadcast::channel(self.capacity).0,
            })
        });
    }

    /// Drops every stream `keep` says no to; their subscribers' responses end.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.streams.write().unwrap().retain(|path, _| keep(path));
    }

    fn get(&self, path: &str) -> Option<Arc<StreamChannel>> {
        self.streams.read().unwrap().get(path).cloned()
    }

    /// Sends `json` to every subscriber of `path`; returns how many it reached,
    /// or `None` when no stream is registered there.
    pub fn broadcast(&self, path: &str, json: &str) -> Option<usize> {
        let stream = self.get(path)?;
        let mut next_id = stream.next_id.lock().unwrap();
        let frame = encode_frame(*next_id, json);
        *next_id += 1;
        // An Err only means nobody is listening right now.
        Some(stream.tx.send(frame).unwrap_or(0))
    }

    pub fn subscriber_count(&self, path: &str) -> usize {
        self.get(path).map_or(0, |s| s.tx.receiver_count())
    }

    /// A subscription's frames, ending when the stream goes away or when the
    /// subscriber lagged a whole ring behind.
    pub fn subscribe(&self, path: &str) -> Option<impl Stream<Item = Bytes> + Send + 'static> {
        let rx = self.get(path)?.tx.subscribe();
        Some(
            BroadcastStream::new(rx)
                .take_while(|item| {
                    let keep = !matches!(item, Err(BroadcastStreamRecvError::Lagged(_)));
                    if !keep {
                        tracing::info!("disconnecting a subscriber that fell too far behind");
                    }
                    futures_util::future::ready(keep)
                })
                .filter_map(|item| futures_util::future::ready(item.ok())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_id_and_data() {
        assert_eq!(
            &encode_frame(7, "{\"a\":1}")[..],
            b"id: 7\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(&encode_frame(1, "a\nb")[..], b"id: 1\ndata: a\ndata: b\n\n");
    }

    #[tokio::test]
    async fn broadcast_reaches_subscribers_in_order_and_counts_them() {
        let hub = Hub::new(16);
        assert_eq!(hub.broadcast("/s", "1"), None);
        hub.ensure("/s");
        assert_eq!(hub.broadcast("/s", "1"), Some(0));
        let mut a = Box::pin(hub.subscribe("/s").unwrap());
        let mut b = Box::pin(hub.subscribe("/s").unwrap());
        assert_eq!(hub.subscriber_count("/s"), 2);
        assert_eq!(hub.broadcast("/s", "2"), Some(2));
        assert_eq!(hub.broadcast("/s", "3"), Some(2));
        assert_eq!(&a.next().await.unwrap()[..], b"id: 2\ndata: 2\n\n");
        assert_eq!(&a.next().await.unwrap()[..], b"id: 3\ndata: 3\n\n");
        assert_eq!(&b.next().await.unwrap()[..], b"id: 2\ndata: 2\n\n");
        drop(b);
        assert_eq!(hub.subscriber_count("/s"), 1);
        hub.retain(|_| false);
        assert!(
            a.next().await.is_none(),
            "removing the stream ends subscriptions"
        );
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_dropped() {
        let hub = Hub::new(4);
        hub.ensure("/s");
        let mut slow = Box::pin(hub.subscribe("/s").unwrap());
        for i in 0..10 {
            hub.broadcast("/s", &i.to_string());
        }
        assert!(slow.next().await.is_none());
    }
}
