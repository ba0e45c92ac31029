//! The stream hub: one broadcast ring per stream path, plus a bounded replay buffer.
//!
//! A message is encoded once into its SSE frame and, beside it, its WebSocket
//! text (`{"id":n,"data":...}`); the same bytes are shared by every subscriber
//! of either transport. The sender (a script's thread) only numbers the frame,
//! keeps it for replay and queues it: the hub's fan-out thread puts it in the
//! stream's ring and wakes the subscribers, so a broadcast costs the script
//! O(1) whatever the audience (a filtered one also counts who it reached).
//! Each subscriber reads from the ring at its own pace; one that falls a whole
//! ring behind is disconnected (its EventSource reconnects and replays), never
//! buffered without bound.
//!
//! No gap, no duplicate: numbering, replay and queueing happen under the
//! stream's lock, as does subscribing, which notes the first id it has not yet
//! seen; live frames below it (already replayed, or older than the
//! subscription) are skipped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

/// The event sent to a reconnecting subscriber whose `Last-Event-ID` is older
/// than the replay buffer (or unknown to this stream): some messages are lost.
pub const MISSED_EVENT: &str = "missed";

/// Query parameters: a subscriber's, or a message's filter.
pub type Params = Vec<(String, String)>;

/// Sizes and caps of the hub.
#[derive(Clone, Copy, Debug)]
pub struct HubLimits {
    /// Frames a subscriber may fall behind before it is disconnected.
    pub lag: usize,
    /// Messages kept per stream for `Last-Event-ID` replay.
    pub replay_messages: usize,
    /// Bytes kept per stream for replay.
    pub replay_bytes: usize,
    /// Subscribers per stream.
    pub per_stream: usize,
    /// Subscribers in all.
    pub total: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            lag: 1024,
            replay_messages: 1000,
            replay_bytes: 4 << 20,
            per_stream: 20_000,
            total: 50_000,
        }
    }
}

/// One encoded event and who it is for.
pub struct Frame {
    pub id: u64,
    /// The SSE frame.
    pub bytes: Bytes,
    /// The same event as one WebSocket text message (UTF-8 JSON).
    pub json: Bytes,
    filter: Option<Params>,
}

/// A subscriber fell a whole ring behind; its subscription ends after this.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

/// Which transport a subscriber uses (counted apart for `/_engine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Sse,
    WebSocket,
}

impl Frame {
    fn reaches(&self, params: &Params) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.iter().all(|f| params.contains(f)))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    NoStream,
    TooMany(&'static str),
}

pub struct Hub {
    streams: RwLock<HashMap<String, Arc<StreamChannel>>>,
    /// Live WebSocket connections, for `client.send`.
    pub clients: crate::websocket::Clients,
    limits: HubLimits,
    total: Arc<AtomicUsize>,
    fan_out: crossbeam_channel::Sender<(Arc<StreamChannel>, Arc<Frame>)>,
}

struct StreamChannel {
    state: Mutex<StreamState>,
    tx: broadcast::Sender<Arc<Frame>>,
    /// Each live subscriber's parameters, to count who a filtered message reaches.
    subscribers: Arc<Mutex<HashMap<u64, Params>>>,
    /// How many of the subscribers are WebSocket connections.
    websockets: Arc<AtomicUsize>,
}

struct StreamState {
    next_id: u64,
    next_subscriber: u64,
    replay: VecDeque<Arc<Frame>>,
    replay_bytes: usize,
}

/// Encodes one SSE event. `data` is one JSON text; should it ever hold line
/// breaks, each line becomes its own `data:` field, as SSE requires.
pub fn encode_frame(id: Option<u64>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 24);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The WebSocket text of an event: `{"id":n,"data":...}`, or without the id.
pub fn encode_json(id: Option<u64>, data: &str) -> Bytes {
    Bytes::from(match id {
        Some(id) => format!("{{\"id\":{id},\"data\":{data}}}"),
        None => format!("{{\"data\":{data}}}"),
    })
}

/// A subscription's SSE frames, ending where it lags.
pub fn sse_bytes(
    frames: impl Stream<Item = Result<Arc<Frame>, Lagged>>,
) -> impl Stream<Item = Bytes> {
    frames
        .take_while(|item| futures_util::future::ready(item.is_ok()))
        .filter_map(|item| futures_util::future::ready(item.ok().map(|f| f.bytes.clone())))
}

/// Decrements the counts of a subscriber when its response goes away.
struct Subscription {
    id: u64,
    total: Arc<AtomicUsize>,
    subscribers: Arc<Mutex<HashMap<u64, Params>>>,
    websockets: Option<Arc<AtomicUsize>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(websockets) = &self.websockets {
            websockets.fetch_sub(1, Ordering::Relaxed);
        }
        self.subscribers.lock().unwrap().remove(&self.id);
    }
}

impl Hub {
    pub fn new(limits: HubLimits) -> Self {
        let (fan_out, queue) = crossbeam_channel::unbounded::<(Arc<StreamChannel>, Arc<Frame>)>();
        std::thread::Builder::new()
            .name("stream fan-out".into())
            .spawn(move || {
                // Ends when the hub (the only sender) is dropped.
                for (stream, frame) in queue {
                    let _ = stream.tx.send(frame); // Err: nobody is listening
                }
            })
            .expect("starting the stream fan-out thread");
        Hub {
            streams: RwLock::new(HashMap::new()),
            clients: Default::default(),
            limits,
            total: Arc::new(AtomicUsize::new(0)),
            fan_out,
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
                state: Mutex::new(StreamState {
                    next_id: 1,
                    next_subscriber: 1,
                    replay: VecDeque::new(),
                    replay_bytes: 0,
                }),
                tx: broadcast::channel(self.limits.lag.max(1)).0,
                subscribers: Arc::new(Mutex::new(HashMap::new())),
                websockets: Arc::new(AtomicUsize::new(0)),
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

    /// Sends `json` to the subscribers of `path` that match `filter` (all when
    /// it is empty); returns how many it reached, or `None` when no stream is
    /// registered there.
    pub fn broadcast(&self, path: &str, json: &str, filter: Params) -> Option<usize> {
        let stream = self.get(path)?;
        let filter = (!filter.is_empty()).then_some(filter);
        let mut state = stream.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        let frame = Arc::new(Frame {
            id,
            bytes: encode_frame(Some(id), None, json),
            json: encode_json(Some(id), json),
            filter,
        });
        state.replay_bytes += frame.bytes.len();
        state.replay.push_back(frame.clone());
        while state.replay.len() > self.limits.replay_messages
            || (state.replay_bytes > self.limits.replay_bytes && state.replay.len() > 1)
        {
            let old = state.replay.pop_front().expect("not empty");
            state.replay_bytes -= old.bytes.len();
        }
        let reached = match &frame.filter {
            None => stream.tx.receiver_count(),
            Some(_) => {
                let subscribers = stream.subscribers.lock().unwrap();
                subscribers.values().filter(|p| frame.reaches(p)).count()
            }
        };
        // Queued under the lock, so frames reach the ring in id order.
        let _ = self.fan_out.send((stream.clone(), frame));
        drop(state);
        Some(reached)
    }

    pub fn subscriber_count(&self, path: &str) -> usize {
        self.get(path).map_or(0, |s| s.tx.receiver_count())
    }

    /// How many of `path`'s subscribers are WebSocket connections.
    pub fn websocket_count(&self, path: &str) -> usize {
        self.get(path)
            .map_or(0, |s| s.websockets.load(Ordering::Relaxed))
    }

    pub fn total_subscribers(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// An SSE subscription's frames: see `subscribe_frames`; it ends when
    /// the subscriber lags a whole ring behind.
    pub fn subscribe(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
    ) -> Result<impl Stream<Item = Bytes> + Send + 'static, SubscribeError> {
        let frames = self.subscribe_frames(path, last_event_id, params, Transport::Sse)?;
        Ok(sse_bytes(frames))
    }

    /// A subscription's frames: first those after `last_event_id` from the
    /// replay buffer (with a `missed` event if some are gone), then live ones
    /// matching `params`. It ends when the stream goes away, or with one
    /// `Err(Lagged)` when the subscriber lags a whole ring behind.
    pub fn subscribe_frames(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
        transport: Transport,
    ) -> Result<impl Stream<Item = Result<Arc<Frame>, Lagged>> + Send + 'static, SubscribeError>
    {
        let stream = self.get(path).ok_or(SubscribeError::NoStream)?;
        if stream.tx.receiver_count() >= self.limits.per_stream {
            return Err(SubscribeError::TooMany(
                "this stream has too many subscribers",
            ));
        }
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.limits.total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(SubscribeError::TooMany(
                "the server has too many subscribers",
            ));
        }
        let mut state = stream.state.lock().unwrap();
        let rx = stream.tx.subscribe();
        // Frames numbered before now were replayed below or predate us.
        let first_live = state.next_id;
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        stream
            .subscribers
            .lock()
            .unwrap()
            .insert(id, params.clone());
        let mut first: Vec<Arc<Frame>> = Vec::new();
        if let Some(last) = last_event_id {
            let oldest = state.replay.front().map_or(state.next_id, |f| f.id);
            if last >= state.next_id || last + 1 < oldest {
                let gap = format!("{{\"lastEventId\":{last},\"firstAvailableId\":{}}}", oldest);
                first.push(Arc::new(Frame {
                    id: 0,
                    bytes: encode_frame(None, Some(MISSED_EVENT), &gap),
                    json: Bytes::from(format!("{{\"event\":\"{MISSED_EVENT}\",\"data\":{gap}}}")),
                    filter: None,
                }));
            }
            let replay_from = if last >= state.next_id { 0 } else { last + 1 };
            first.extend(
                state
                    .replay
                    .iter()
                    .filter(|f| f.id >= replay_from && f.reaches(&params))
                    .cloned(),
            );
        }
        drop(state);
        let websockets = (transport == Transport::WebSocket).then(|| {
            stream.websockets.fetch_add(1, Ordering::Relaxed);
            stream.websockets.clone()
        });
        let guard = Subscription {
            id,
            total: self.total.clone(),
            subscribers: stream.subscribers.clone(),
            websockets,
        };
        let mut lagged = false;
        let live = BroadcastStream::new(rx)
            .take_while(move |item| {
                // Let the one `Lagged` through, then end.
                let keep = !lagged;
                if matches!(item, Err(BroadcastStreamRecvError::Lagged(_))) {
                    tracing::info!("disconnecting a subscriber that fell too far behind");
                    lagged = true;
                }
                futures_util::future::ready(keep)
            })
            .filter_map(move |item| {
                let frame = match item {
                    Ok(f) => (f.id >= first_live && f.reaches(&params)).then_some(Ok(f)),
                    Err(BroadcastStreamRecvError::Lagged(_)) => Some(Err(Lagged)),
                };
                futures_util::future::ready(frame)
            });
        Ok(futures_util::stream::iter(first.into_iter().map(Ok))
            .chain(live)
            .map(move |frame| {
                let _ = &guard; // lives as long as the subscription
                frame
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(limits: HubLimits) -> Hub {
        let hub = Hub::new(limits);
        hub.ensure("/s");
        hub
    }

    fn send(hub: &Hub, data: &str) -> usize {
        hub.broadcast("/s", data, vec![]).unwrap()
    }

    async fn take(s: &mut (impl Stream<Item = Bytes> + Unpin), n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(String::from_utf8(s.next().await.unwrap().to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn frames_carry_id_event_and_data() {
        assert_eq!(
            &encode_frame(Some(7), None, "{\"a\":1}")[..],
            b"id: 7\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &encode_frame(Some(1), None, "a\nb")[..],
            b"id: 1\ndata: a\ndata: b\n\n"
        );
        assert_eq!(
            &encode_frame(None, Some("missed"), "{}")[..],
            b"event: missed\ndata: {}\n\n"
        );
    }

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
    async fn a_lagging_subscriber_is_dropped() {
        let hub = hub(HubLimits {
            lag: 4,
            ..HubLimits::default()
        });
        let mut slow = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        for i in 0..10 {
            send(&hub, &i.to_string());
        }
        // The fan-out thread fills the ring in the background; wait for it.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(slow.next().await.is_none());
        drop(slow); // as hyper drops a finished body
        assert_eq!(hub.total_subscribers(), 0);
    }

    #[tokio::test]
    async fn reconnecting_replays_exactly_what_was_missed() {
        let hub = hub(HubLimits::default());
        for i in 1..=5 {
            send(&hub, &i.to_string());
        }
        let mut s = Box::pin(hub.subscribe("/s", Some(3), vec![]).unwrap());
        send(&hub, "6");
        assert_eq!(
            take(&mut s, 3).await,
            [
                "id: 4\ndata: 4\n\n",
                "id: 5\ndata: 5\n\n",
                "id: 6\ndata: 6\n\n"
            ]
        );
    }

    #[tokio::test]
    async fn an_id_older_than_the_buffer_gets_a_missed_event() {
        let hub = hub(HubLimits {
            replay_messages: 3,
            ..HubLimits::default()
        });
        for i in 1..=10 {
            send(&hub, &i.to_string());
        }
        let mut s = Box::pin(hub.subscribe("/s", Some(2), vec![]).unwrap());
        let got = take(&mut s, 4).await;
        assert_eq!(
            got[0],
            "event: missed\ndata: {\"lastEventId\":2,\"firstAvailableId\":8}\n\n"
        );
        assert_eq!(
            &got[1..],
            [
                "id: 8\ndata: 8\n\n",
                "id: 9\ndata: 9\n\n",
                "id: 10\ndata: 10\n\n"
            ]
        );
        // An id from the future (the server restarted): everything there is, plus the gap event.
        let mut s = Box::pin(hub.subscribe("/s", Some(99), vec![]).unwrap());
        let got = take(&mut s, 4).await;
        assert!(got[0].starts_with("event: missed\n"));
        assert_eq!(got[1], "id: 8\ndata: 8\n\n");
    }

    #[tokio::test]
    async fn filters_pick_subscribers_by_their_parameters() {
        let hub = hub(HubLimits::default());
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

    #[tokio::test]
    async fn frames_in_flight_are_neither_duplicated_nor_delivered_early() {
        // Subscribing right after a broadcast races the fan-out thread; the
        // outcome must be the same either way.
        for _ in 0..50 {
            let hub = hub(HubLimits::default());
            send(&hub, "1");
            let mut fresh = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
            let mut replaying = Box::pin(hub.subscribe("/s", Some(0), vec![]).unwrap());
            send(&hub, "2");
            assert_eq!(take(&mut fresh, 1).await, ["id: 2\ndata: 2\n\n"]);
            assert_eq!(
                take(&mut replaying, 2).await,
                ["id: 1\ndata: 1\n\n", "id: 2\ndata: 2\n\n"]
            );
            send(&hub, "3");
            assert_eq!(take(&mut replaying, 1).await, ["id: 3\ndata: 3\n\n"]);
        }
    }

    #[tokio::test]
    async fn websocket_text_rides_beside_the_sse_frame() {
        assert_eq!(
            &encode_json(Some(3), "{\"a\":1}")[..],
            b"{\"id\":3,\"data\":{\"a\":1}}"
        );
        assert_eq!(&encode_json(None, "\"x\"")[..], b"{\"data\":\"x\"}");
        let hub = hub(HubLimits {
            replay_messages: 1,
            ..HubLimits::default()
        });
        send(&hub, "1");
        send(&hub, "2");
        let mut ws = Box::pin(
            hub.subscribe_frames("/s", Some(0), vec![], Transport::WebSocket)
                .unwrap(),
        );
        assert_eq!(
            (hub.subscriber_count("/s"), hub.websocket_count("/s")),
            (1, 1)
        );
        let missed = ws.next().await.unwrap().unwrap();
        assert_eq!(
            &missed.json[..],
            b"{\"event\":\"missed\",\"data\":{\"lastEventId\":0,\"firstAvailableId\":2}}"
        );
        let frame = ws.next().await.unwrap().unwrap();
        assert_eq!(
            (&frame.json[..], &frame.bytes[..]),
            (&b"{\"id\":2,\"data\":2}"[..], &b"id: 2\ndata: 2\n\n"[..])
        );
        drop(ws);
        assert_eq!(hub.websocket_count("/s"), 0);
    }

    #[test]
    fn subscriber_caps() {
        let hub = hub(HubLimits {
            per_stream: 2,
            total: 3,
            ..HubLimits::default()
        });
        hub.ensure("/t");
        let _a = hub.subscribe("/s", None, vec![]).unwrap();
        let _b = hub.subscribe("/s", None, vec![]).unwrap();
        assert!(matches!(
            hub.subscribe("/s", None, vec![]),
            Err(SubscribeError::TooMany(_))
        ));
        let _c = hub.subscribe("/t", None, vec![]).unwrap();
        assert!(matches!(
            hub.subscribe("/t", None, vec![]),
            Err(SubscribeError::TooMany(_))
        ));
        assert!(matches!(
            hub.subscribe("/nope", None, vec![]),
            Err(SubscribeError::NoStream)
        ));
    }
}
