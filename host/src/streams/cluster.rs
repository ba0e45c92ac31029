//! The hub's side of cluster mode: messages numbered elsewhere (`Publisher`)
//! come back through `deliver` in id order; a stream catches up with the
//! cluster once (`start_at`) and forgets a history the cluster lost
//! (`restart_at`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::filter::Params;
use super::hub::Hub;
use super::lock;
use super::publisher::Publisher;

/// What `Hub::deliver` did with a message numbered by the cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Delivered (or no stream of that path lives here).
    Done,
    /// Already delivered (a replayed catch-up or a duplicate).
    Skipped,
    /// Messages before it are missing: this id is the next one expected.
    Gap(u64),
}

impl Hub {
    /// The paths of streams created from now on, as they are created.
    pub fn watch_new_streams(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = self.new_streams.set(tx);
        rx
    }

    /// Makes the cluster number and publish every message from now on.
    pub fn use_publisher(&self, publisher: Arc<dyn Publisher>) {
        let _ = self.publisher.set(publisher);
    }

    /// A message numbered `id` by the cluster, in id order: delivered when it
    /// is the next one, skipped when already delivered, or a `Gap` naming the
    /// id expected next (the caller fetches the missing ones first, or calls
    /// `restart_at` when they are gone).
    pub fn deliver(&self, path: &str, id: u64, json: &str, filter: Params) -> Delivered {
        let Some(stream) = self.get(path) else {
            return Delivered::Done;
        };
        let filter = (!filter.is_empty()).then_some(filter);
        let mut state = lock(&stream.state);
        if id < state.next_id {
            return Delivered::Skipped;
        }
        if id > state.next_id {
            return Delivered::Gap(state.next_id);
        }
        self.queue(&stream, &mut state, id, json, filter);
        Delivered::Done
    }

    /// The id the next message of `path` will carry (here: the cluster's
    /// messages delivered so far, plus one).
    pub fn next_id(&self, path: &str) -> Option<u64> {
        self.get(path).map(|s| lock(&s.state).next_id)
    }

    /// Whether a cluster stream has caught up with the cluster since this
    /// node created it (always true on a single node).
    pub fn caught_up(&self, path: &str) -> bool {
        self.get(path)
            .is_some_and(|s| s.live_from.load(Ordering::Relaxed) != u64::MAX)
    }

    /// When this node created the stream at `path`, in ms since the Unix epoch.
    pub fn registered_ms(&self, path: &str) -> Option<u64> {
        self.get(path).map(|s| s.registered_ms)
    }

    /// A cluster stream's first catch-up: the cluster's messages go on from
    /// `first`, and those from `live_from` on are news (published after this
    /// node created the stream) for subscribers who came without a
    /// `Last-Event-ID`; earlier ones are delivered too, so they fill the replay
    /// buffer and reach subscribers resuming from before them, but are not
    /// sent to the others. Returns false (and does nothing) if it caught up already.
    pub fn start_at(&self, path: &str, first: u64, live_from: u64) -> bool {
        let Some(stream) = self.get(path) else {
            return false;
        };
        let mut state = lock(&stream.state);
        if stream.live_from.load(Ordering::Relaxed) != u64::MAX {
            return false;
        }
        state.next_id = first.max(1);
        stream.live_from.store(live_from, Ordering::Relaxed);
        true
    }

    /// The history before `id` is lost (the cluster's Redis lost its data, or
    /// was away longer than it keeps messages): forget the replay buffer, make
    /// `id` the next message, and answer older `Last-Event-ID`s with `missed`.
    pub fn restart_at(&self, path: &str, id: u64) {
        let Some(stream) = self.get(path) else {
            return;
        };
        let mut state = lock(&stream.state);
        tracing::warn!(
            stream = path,
            from = state.next_id,
            to = id,
            "stream history lost; reconnecting clients older than this get `missed`"
        );
        state.replay.restart_at(id);
        state.next_id = id;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::{Stream, StreamExt};

    use super::*;
    use crate::streams::{testing, HubLimits, Outgoing, Settle};

    /// A hub with a stream at `/s` keeping 3 messages for replay.
    fn hub() -> Hub {
        testing::hub(|limits| limits.replay_messages = 3)
    }

    async fn next(s: &mut (impl Stream<Item = Bytes> + Unpin)) -> String {
        String::from_utf8(s.next().await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn delivered_messages_go_in_id_order_only() {
        let hub = hub();
        let mut live = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        assert_eq!(hub.deliver("/s", 1, "1", vec![]), Delivered::Done);
        assert_eq!(hub.deliver("/s", 1, "1", vec![]), Delivered::Skipped);
        assert_eq!(hub.deliver("/s", 3, "3", vec![]), Delivered::Gap(2));
        assert_eq!(hub.deliver("/s", 2, "2", vec![]), Delivered::Done);
        assert_eq!(hub.deliver("/nope", 9, "9", vec![]), Delivered::Done);
        assert_eq!(next(&mut live).await, "id: 1\ndata: 1\n\n");
        assert_eq!(next(&mut live).await, "id: 2\ndata: 2\n\n");
        assert_eq!(hub.next_id("/s"), Some(3));
    }

    struct Refuse;
    impl Publisher for Refuse {
        fn publish(&self, message: Outgoing<'_>, _: Settle) -> Result<(), String> {
            Err(format!("down (floor {})", message.floor))
        }
    }

    #[tokio::test]
    async fn catching_up_sends_news_to_fresh_subscribers_and_more_to_resuming_ones() {
        let hub = Hub::new(HubLimits::default());
        hub.use_publisher(Arc::new(Refuse));
        hub.ensure("/s");
        assert!(!hub.caught_up("/s"));
        // Subscribed before the node reached the cluster: one fresh, one resuming from 5.
        let mut fresh = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        let mut resuming = Box::pin(hub.subscribe("/s", Some(5), vec![]).unwrap());
        // The cluster's log holds 4..=8; 7 and 8 came after the stream was created here.
        assert!(hub.start_at("/s", 4, 7));
        assert!(!hub.start_at("/s", 1, 1), "once");
        for i in 4..=8 {
            assert_eq!(
                hub.deliver("/s", i, &i.to_string(), vec![]),
                Delivered::Done
            );
        }
        assert_eq!(
            next(&mut fresh).await,
            "id: 7\ndata: 7\n\n",
            "history is not news"
        );
        assert_eq!(next(&mut resuming).await, "id: 6\ndata: 6\n\n");
        assert_eq!(next(&mut resuming).await, "id: 7\ndata: 7\n\n");
        // A reconnect later is replayed from the buffer as usual.
        let mut again = Box::pin(hub.subscribe("/s", Some(6), vec![]).unwrap());
        assert_eq!(next(&mut again).await, "id: 7\ndata: 7\n\n");
        let mut late = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        hub.deliver("/s", 9, "9", vec![]);
        assert_eq!(next(&mut late).await, "id: 9\ndata: 9\n\n");
    }

    #[tokio::test]
    async fn a_restart_makes_older_ids_missed() {
        let hub = hub();
        for i in 1..=4 {
            hub.deliver("/s", i, &i.to_string(), vec![]);
        }
        hub.restart_at("/s", 5);
        hub.deliver("/s", 5, "5", vec![]);
        let mut old = Box::pin(hub.subscribe("/s", Some(4), vec![]).unwrap());
        assert_eq!(
            next(&mut old).await,
            "event: missed\ndata: {\"lastEventId\":4,\"firstAvailableId\":5}\n\n"
        );
        assert_eq!(next(&mut old).await, "id: 5\ndata: 5\n\n");
    }

    #[test]
    fn a_publisher_numbers_instead_of_the_hub() {
        let hub = hub();
        hub.deliver("/s", 1, "1", vec![]);
        hub.use_publisher(Arc::new(Refuse));
        let settle = || -> Settle { Box::new(|_| {}) };
        assert_eq!(
            hub.send("/s", "x", vec![], settle).err().unwrap(),
            "down (floor 1)"
        );
        assert!(matches!(hub.send("/nope", "x", vec![], settle), Ok(None)));
        assert_eq!(hub.next_id("/s"), Some(2), "nothing numbered here");
    }
}
