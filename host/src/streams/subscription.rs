//! Subscribing to a stream: the caps, the frames a subscriber is owed (replay,
//! then live ones its parameters match), the end on lagging, and the counts
//! a subscription holds while it lives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use super::filter::Params;
use super::frame::Frame;
use super::hub::Hub;
use super::lock;

/// A subscriber fell a whole ring behind; its subscription ends after this.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

/// Which transport a subscriber uses (counted apart for `/_engine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Sse,
    WebSocket,
}

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
    websockets: Option<Arc<AtomicUsize>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(websockets) = &self.websockets {
            websockets.fetch_sub(1, Ordering::Relaxed);
        }
        lock(&self.subscribers).remove(&self.id);
    }
}

impl Hub {
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
        let rx = stream.ring.subscribe();
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
        let lagged_metric = stream.metrics.lagged.clone();
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
    use crate::streams::encode_json;
    use crate::streams::testing::{hub, send, take};

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

    #[tokio::test]
    async fn websocket_text_rides_beside_the_sse_frame() {
        assert_eq!(
            &encode_json(Some(3), "{\"a\":1}")[..],
            b"{\"id\":3,\"data\":{\"a\":1}}"
        );
        assert_eq!(&encode_json(None, "\"x\"")[..], b"{\"data\":\"x\"}");
        let hub = hub(|limits| limits.replay_messages = 1);
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
