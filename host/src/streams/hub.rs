//! The hub itself: its streams by path, each with its ring, replay buffer,
//! subscribers and metrics; creating streams, numbering and sending messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use super::fan_out::{self, FanOut, Ring};
use super::filter::{matches, Params};
use super::frame::Frame;
use super::limits::HubLimits;
use super::lock;
use super::publisher::{Outgoing, Publisher, Settle};
use super::replay::Replay;
use crate::metrics::{Metrics, StreamMetrics};

/// Every stream registered here, by path; shared by the scripts that send and
/// the connections that subscribe.
pub struct Hub {
    streams: RwLock<HashMap<String, Arc<StreamChannel>>>,
    pub(super) limits: HubLimits,
    /// Subscribers in all.
    pub(super) total: Arc<AtomicUsize>,
    fan_out: FanOut,
    metrics: Arc<Metrics>,
    /// Set in cluster mode: messages are numbered by the cluster.
    pub(super) publisher: OnceLock<Arc<dyn Publisher>>,
    /// Told the path of every stream created from now on (cluster mode).
    pub(super) new_streams: OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// One stream: its ring, its state, who listens.
pub(super) struct StreamChannel {
    pub(super) state: Mutex<StreamState>,
    pub(super) ring: Arc<Ring>,
    /// Each live subscriber's parameters, to count who a filtered message reaches.
    pub(super) subscribers: Arc<Mutex<HashMap<u64, Arc<Params>>>>,
    pub(super) metrics: StreamMetrics,
    /// How many of the subscribers are WebSocket connections.
    pub(super) websockets: Arc<AtomicUsize>,
    /// When this node created the stream, in ms since the Unix epoch.
    pub(super) registered_ms: u64,
    /// Cluster mode: the first id that is news to subscribers who came
    /// without a `Last-Event-ID`; `u64::MAX` until the stream has caught up
    /// with the cluster (`start_at`), so they wait for it. 0 on a single node.
    pub(super) live_from: Arc<AtomicU64>,
}

impl StreamChannel {
    /// How many of the stream's subscribers a message with `filter` reaches.
    fn reach(&self, filter: Option<&Params>) -> usize {
        match filter {
            None => self.ring.receiver_count(),
            Some(filter) => lock(&self.subscribers)
                .values()
                .filter(|p| matches(filter, p))
                .count(),
        }
    }
}

/// What changes under the stream's lock: numbering, replay, subscriber ids.
pub(super) struct StreamState {
    pub(super) next_id: u64,
    pub(super) next_subscriber: u64,
    pub(super) replay: Replay,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Hub {
    pub fn new(limits: HubLimits) -> Self {
        Self::with_metrics(limits, Arc::new(Metrics::new()))
    }

    /// A hub counting its streams' traffic in `metrics`.
    pub fn with_metrics(limits: HubLimits, metrics: Arc<Metrics>) -> Self {
        Hub {
            streams: RwLock::new(HashMap::new()),
            fan_out: fan_out::start(&limits),
            limits,
            total: Arc::new(AtomicUsize::new(0)),
            metrics,
            publisher: OnceLock::new(),
            new_streams: OnceLock::new(),
        }
    }

    /// Makes sure a stream exists at `path` (scripts call this as they register).
    pub fn ensure(&self, path: &str) {
        if self.read_streams().contains_key(path) {
            return;
        }
        let mut streams = self.write_streams();
        streams.entry(path.to_string()).or_insert_with(|| {
            if let Some(tell) = self.new_streams.get() {
                let _ = tell.send(path.to_string());
            }
            Arc::new(StreamChannel {
                state: Mutex::new(StreamState {
                    next_id: 1,
                    next_subscriber: 1,
                    replay: Replay::default(),
                }),
                ring: Arc::new(Ring::new(self.limits.lag)),
                subscribers: Arc::new(Mutex::new(HashMap::new())),
                metrics: self.metrics.stream(path),
                websockets: Arc::new(AtomicUsize::new(0)),
                registered_ms: now_ms(),
                live_from: Arc::new(AtomicU64::new(match self.publisher.get() {
                    Some(_) => u64::MAX,
                    None => 0,
                })),
            })
        });
    }

    pub fn limits(&self) -> &HubLimits {
        &self.limits
    }

    fn read_streams(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<StreamChannel>>> {
        self.streams.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_streams(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<StreamChannel>>> {
        self.streams.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops every stream `keep` says no to; their subscribers' responses end.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.write_streams().retain(|path, _| keep(path));
    }

    pub(super) fn get(&self, path: &str) -> Option<Arc<StreamChannel>> {
        self.read_streams().get(path).cloned()
    }

    /// The paths of every stream registered here.
    pub fn paths(&self) -> Vec<String> {
        self.read_streams().keys().cloned().collect()
    }

    /// Sends `json` to the subscribers of `path` that match `filter` (all when
    /// it is empty), numbered here, or by the cluster in cluster mode; returns
    /// how many of this node's subscribers it reaches (in cluster mode, once
    /// `settle` says the cluster accepted it). `Ok(None)`: no stream is
    /// registered at `path`.
    pub fn send(
        &self,
        path: &str,
        json: &str,
        filter: Params,
        settle: impl FnOnce() -> Settle,
    ) -> Result<Option<usize>, String> {
        let Some(publisher) = self.publisher.get() else {
            return Ok(self.broadcast(path, json, filter));
        };
        let Some(stream) = self.get(path) else {
            return Ok(None);
        };
        let floor = lock(&stream.state).next_id.saturating_sub(1);
        let message = Outgoing {
            path,
            json,
            filter: &filter,
            floor,
        };
        publisher.publish(message, settle())?;
        let filter = (!filter.is_empty()).then_some(filter);
        Ok(Some(stream.reach(filter.as_ref())))
    }

    /// Numbers `json` here and sends it to the subscribers of `path` that match
    /// `filter` (all when it is empty); returns how many it reached, or `None`
    /// when no stream is registered there.
    pub fn broadcast(&self, path: &str, json: &str, filter: Params) -> Option<usize> {
        let stream = self.get(path)?;
        let filter = (!filter.is_empty()).then_some(filter);
        let mut state = lock(&stream.state);
        let id = state.next_id;
        Some(self.queue(&stream, &mut state, id, json, filter))
    }

    /// Numbers a frame `id` (the next one), keeps it for replay and queues it
    /// for its ring (`fan_out`); returns how many subscribers it reaches.
    pub(super) fn queue(
        &self,
        stream: &Arc<StreamChannel>,
        state: &mut StreamState,
        id: u64,
        json: &str,
        filter: Option<Params>,
    ) -> usize {
        state.next_id = id + 1;
        let frame = Arc::new(Frame::message(id, json, filter));
        state.replay.keep(frame.clone(), &self.limits);
        let reached = stream.reach(frame.filter());
        stream.metrics.sent(frame.bytes.len(), reached);
        // Under the lock, so frames reach the ring in id order.
        self.fan_out.send(&stream.ring, frame);
        reached
    }

    pub fn subscriber_count(&self, path: &str) -> usize {
        self.get(path).map_or(0, |s| s.ring.receiver_count())
    }

    /// How many of `path`'s subscribers are WebSocket connections.
    pub fn websocket_count(&self, path: &str) -> usize {
        self.get(path)
            .map_or(0, |s| s.websockets.load(Ordering::Relaxed))
    }

    pub fn total_subscribers(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::streams::testing::{hub, send, take};

    #[tokio::test]
    async fn broadcast_reaches_subscribers_in_order_and_counts_them() {
        let hub = Hub::new(HubLimits::default());
        assert_eq!(hub.broadcast("/s", "1", vec![]), None);
        hub.ensure("/s");
        assert_eq!(send(&hub, "1"), 0);
        let mut a = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        let b = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        assert_eq!(
            (hub.subscriber_count("/s"), hub.total_subscribers()),
            (2, 2)
        );
        assert_eq!(send(&hub, "2"), 2);
        assert_eq!(take(&mut a, 1).await, ["id: 2\ndata: 2\n\n"]);
        drop(b);
        assert_eq!(
            (hub.subscriber_count("/s"), hub.total_subscribers()),
            (1, 1)
        );
        hub.retain(|_| false);
        assert!(
            a.next().await.is_none(),
            "removing the stream ends subscriptions"
        );
    }

    #[tokio::test]
    async fn filters_pick_subscribers_by_their_parameters() {
        let hub = hub(|_| {});
        let room = |r: &str| vec![("room".to_string(), r.to_string())];
        let mut r1 = Box::pin(hub.subscribe("/s", None, room("1")).unwrap());
        let mut r2 = Box::pin(hub.subscribe("/s", None, room("2")).unwrap());
        assert_eq!(hub.broadcast("/s", "for-1", room("1")), Some(1));
        assert_eq!(hub.broadcast("/s", "for-all", vec![]), Some(2));
        assert_eq!(
            take(&mut r1, 2).await,
            ["id: 1\ndata: for-1\n\n", "id: 2\ndata: for-all\n\n"]
        );
        assert_eq!(take(&mut r2, 1).await, ["id: 2\ndata: for-all\n\n"]);
        let mut again = Box::pin(hub.subscribe("/s", Some(0), room("2")).unwrap());
        assert_eq!(
            take(&mut again, 1).await,
            ["id: 2\ndata: for-all\n\n"],
            "replay filters too"
        );
    }
}
