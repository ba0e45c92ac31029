//! Subscribing to a stream: the caps, the frames a subscriber is owed (replay,
//! then live ones its parameters match), the end on lagging, and the counts
//! a subscription holds while it lives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use super::fan_out::Ring;
use super::filter::Params;
use super::frame::Frame;
use super::hub::{Hub, StreamChannel};
use super::lock;
use super::sink::{Sink, Subscriber};

/// A subscriber fell a whole ring behind; its subscription ends after this.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    NoStream,
    TooMany(&'static str),
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
    subscribers: Arc<Mutex<HashMap<u64, Arc<Params>>>>,
    websocket: Option<WebSocketCount>,
}

/// What a WebSocket subscriber also holds: the stream's count of them (shown
/// apart in `/_engine`), its ring (weak: the stream's end must drop it, which
/// is what ends the sinks) and the flag the ring forgets it by.
struct WebSocketCount {
    count: Arc<AtomicUsize>,
    ring: Weak<Ring>,
    left: Arc<AtomicBool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(ws) = &self.websocket {
            ws.count.fetch_sub(1, Ordering::Relaxed);
            ws.left.store(true, Ordering::Release);
            if let Some(ring) = ws.ring.upgrade() {
                ring.leave();
            }
        }
        lock(&self.subscribers).remove(&self.id);
    }
}

/// A WebSocket subscription: while it lives, the stream's frames it wants
/// are written to its sink. Dropping it leaves the stream.
pub struct SinkSubscription {
    _guard: Subscription,
}

/// What a new subscriber is owed, settled under the stream's lock.
struct Owed {
    /// Replayed frames (with a `missed` one first if some are gone).
    first: Vec<Arc<Frame>>,
    /// Live frames before this id were replayed, or predate the subscription.
    first_live: u64,
    /// Cluster mode, before the stream caught up: the first id that is news.
    live_from: Option<Arc<AtomicU64>>,
    params: Arc<Params>,
}

impl Hub {
    /// Opens a subscription to `path`: checks the caps, works out what the
    /// subscriber is owed and, still under the stream's lock (so no frame
    /// is numbered meanwhile), lets `attach` hook it to the stream; a
    /// WebSocket subscriber's `attach` gives the flag it leaves the ring by.
    fn open<T>(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
        attach: impl FnOnce(&StreamChannel, &Owed) -> (T, Option<Arc<AtomicBool>>),
    ) -> Result<(T, Owed, Subscription), SubscribeError> {
        let stream = self.get(path).ok_or(SubscribeError::NoStream)?;
        if stream.ring.receiver_count() >= self.limits.per_stream {
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
        let params = Arc::new(params); // kept once, for counting and for filtering
        let mut state = lock(&stream.state);
        // Frames numbered before now were replayed below or predate us.
        let first_live = state.next_id;
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        lock(&stream.subscribers).insert(id, params.clone());
        let mut first: Vec<Arc<Frame>> = Vec::new();
        // A cluster stream that has not caught up yet knows nothing of the
        // cluster's ids: a resuming subscriber gets everything after its id
        // as it arrives, the others what is news (see `start_at`).
        let waiting = stream.live_from.load(Ordering::Relaxed) == u64::MAX;
        let live_from = (waiting && last_event_id.is_none()).then(|| stream.live_from.clone());
        let (first_live, last_event_id) = match last_event_id {
            Some(last) if waiting => (last + 1, None),
            other => (first_live, other),
        };
        if let Some(last) = last_event_id {
            stream.metrics.replays.inc();
            if let Some(first_available) = state.replay.missed(last, state.next_id) {
                stream.metrics.missed.inc();
                first.push(Arc::new(Frame::missed(last, first_available)));
            }
            first.extend(state.replay.after(last, state.next_id, &params));
        }
        let owed = Owed {
            first,
            first_live,
            live_from,
            params,
        };
        let (attached, left) = attach(&stream, &owed);
        drop(state);
        let websocket = left.map(|left| {
            stream.websockets.fetch_add(1, Ordering::Relaxed);
            WebSocketCount {
                count: stream.websockets.clone(),
                ring: Arc::downgrade(&stream.ring),
                left,
            }
        });
        let guard = Subscription {
            id,
            total: self.total.clone(),
            subscribers: stream.subscribers.clone(),
            websocket,
        };
        Ok((attached, owed, guard))
    }

    /// A WebSocket subscription to `path` writing to `sink`: first the
    /// frames after `last_event_id` from the replay buffer (with a `missed`
    /// one if some are gone), then the live ones matching `params`. When the
    /// stream goes away, the sink ends (`End::StreamClosed`).
    pub fn subscribe_sink(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
        sink: Arc<Sink>,
    ) -> Result<SinkSubscription, SubscribeError> {
        let (_, _, guard) = self.open(path, last_event_id, params, |stream, owed| {
            sink.count_lag_in(stream.metrics.lagged.clone());
            for frame in &owed.first {
                sink.offer_replayed(&frame.ws);
            }
            let left = Arc::new(AtomicBool::new(false));
            stream.ring.join(Subscriber {
                sink: sink.clone(),
                first_live: owed.first_live,
                live_from: owed.live_from.clone(),
                params: owed.params.clone(),
                left: left.clone(),
            });
            ((), Some(left))
        })?;
        Ok(SinkSubscription { _guard: guard })
    }

    /// An SSE subscription's frames: first those after `last_event_id` from
    /// the replay buffer (with a `missed` event if some are gone), then live
    /// ones matching `params`. It ends when the stream goes away, or with
    /// one `Err(Lagged)` when the subscriber lags a whole ring behind.
    pub fn subscribe_frames(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
    ) -> Result<impl Stream<Item = Result<Arc<Frame>, Lagged>> + Send + 'static, SubscribeError>
    {
        let ((rx, lagged_metric), owed, guard) =
            self.open(path, last_event_id, params, |stream, _| {
                let lagged = stream.metrics.lagged.clone();
                ((stream.ring.subscribe(), lagged), None)
            })?;
        let Owed {
            first,
            first_live,
            live_from,
            params,
        } = owed;
        let mut lagged = false;
        let live = BroadcastStream::new(rx)
            // A frame, or `Lagged`: a whole ring behind, or at a cell emptied
            // for being more than `lag_bytes` behind.
            .map(|item| match item {
                Ok(cell) => cell.load_full().ok_or(Lagged),
                Err(BroadcastStreamRecvError::Lagged(_)) => Err(Lagged),
            })
            .take_while(move |item| {
                // Let the one `Lagged` through, then end.
                let keep = !lagged;
                if item.is_err() && !lagged {
                    lagged_metric.inc();
                    tracing::info!("disconnecting a subscriber that fell too far behind");
                    lagged = true;
                }
                futures_util::future::ready(keep)
            })
            .filter_map(move |item| {
                let frame = match item {
                    Ok(f) => (f.id >= first_live
                        && live_from
                            .as_ref()
                            .is_none_or(|from| f.id >= from.load(Ordering::Relaxed))
                        && f.reaches(&params))
                    .then_some(Ok(f)),
                    Err(Lagged) => Some(Err(Lagged)),
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
    use crate::streams::sink::End;
    use crate::streams::testing::{hub, send, take};
    use crate::streams::{encode_json, ws_text};

    #[tokio::test]
    async fn frames_in_flight_are_neither_duplicated_nor_delivered_early() {
        // Subscribing right after a broadcast races the fan-out thread; the
        // outcome must be the same either way.
        for _ in 0..50 {
            let hub = hub(|_| {});
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

    /// Both ends of a loopback TCP connection: (server's, client's).
    async fn socket_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    #[tokio::test]
    async fn websocket_frames_ride_beside_the_sse_frame_straight_to_the_socket() {
        use tokio::io::AsyncReadExt;
        assert_eq!(
            &encode_json(Some(3), "{\"a\":1}")[..],
            b"{\"id\":3,\"data\":{\"a\":1}}"
        );
        assert_eq!(&encode_json(None, "\"x\"")[..], b"{\"data\":\"x\"}");
        let hub = hub(|limits| limits.replay_messages = 1);
        send(&hub, "1");
        send(&hub, "2");
        let (server, mut client) = socket_pair().await;
        let sink = Sink::new(16, 1 << 20);
        let subscribed = hub
            .subscribe_sink("/s", Some(0), vec![], sink.clone())
            .unwrap();
        assert_eq!(
            (hub.subscriber_count("/s"), hub.websocket_count("/s")),
            (1, 1)
        );
        // Replayed before there is a socket: queued, written once connected.
        assert!(sink.pending());
        sink.connect(Arc::new(server));
        sink.flush().unwrap();
        assert!(!sink.pending());
        // A live frame is written by the delivery itself.
        send(&hub, "3");
        let want: Vec<u8> = [
            ws_text(Bytes::from_static(
                b"{\"event\":\"missed\",\"data\":{\"lastEventId\":0,\"firstAvailableId\":2}}",
            )),
            ws_text(Bytes::from_static(b"{\"id\":2,\"data\":2}")),
            ws_text(Bytes::from_static(b"{\"id\":3,\"data\":3}")),
        ]
        .concat();
        let mut got = vec![0u8; want.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
        drop(subscribed);
        assert_eq!(
            (hub.subscriber_count("/s"), hub.websocket_count("/s")),
            (0, 0)
        );
        send(&hub, "4");
        assert_eq!(sink.end(), None, "a sink that left is just forgotten");
    }

    #[tokio::test]
    async fn a_websocket_peer_that_does_not_read_is_cut_after_whole_frames() {
        let hub = hub(|limits| limits.lag = 4);
        let (server, _client) = socket_pair().await; // never read
        let sink = Sink::new(4, 1 << 30);
        let _subscribed = hub
            .subscribe_sink("/s", None, vec![], sink.clone())
            .unwrap();
        sink.connect(Arc::new(server));
        let big = format!("\"{}\"", "y".repeat(64 << 10));
        let mut sent = 0;
        while sink.end().is_none() {
            assert!(sent < 10_000, "the kernel took {sent} frames of 64 KiB");
            send(&hub, &big);
            sent += 1;
        }
        assert_eq!(sink.end(), Some(End::Lagged));
        // At most the rest of a frame already started stays, for the close
        // frame to follow whole frames.
        assert!(sink.queued_frames() <= 1);
        assert!(
            !sink.send_direct(&ws_text(Bytes::from_static(b"x"))),
            "an ended sink takes no client.send"
        );
    }

    #[tokio::test]
    async fn removing_the_stream_ends_its_websocket_sinks() {
        let hub = hub(|_| {});
        let sink = Sink::new(4, 1 << 20);
        let _subscribed = hub
            .subscribe_sink("/s", None, vec![], sink.clone())
            .unwrap();
        hub.retain(|_| false);
        assert_eq!(sink.end(), Some(End::StreamClosed));
    }

    #[test]
    fn subscriber_caps() {
        let hub = hub(|limits| {
            limits.per_stream = 2;
            limits.total = 3;
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
