//! A stream's replay buffer: its last messages, bounded in count and bytes,
//! and what a subscriber resuming with a `Last-Event-ID` is sent from it.

use std::collections::VecDeque;
use std::sync::Arc;

use super::filter::Params;
use super::frame::Frame;
use super::limits::HubLimits;

#[derive(Default)]
pub(super) struct Replay {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    /// A `Last-Event-ID` below this gets `missed`: the history before it was
    /// lost (the cluster's Redis lost its data, or this node missed a stretch).
    missed_below: u64,
}

impl Replay {
    /// Keeps `frame`, within both bounds of `limits`.
    pub(super) fn keep(&mut self, frame: Arc<Frame>, limits: &HubLimits) {
        self.bytes += frame.bytes.len();
        self.frames.push_back(frame);
        // Both bounds hold strictly: a frame bigger than `replay_bytes` is not kept at all.
        while self.frames.len() > limits.replay_messages || self.bytes > limits.replay_bytes {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.bytes.len();
        }
    }

    /// Forgets everything kept; resuming from before `id` gets `missed`.
    pub(super) fn restart_at(&mut self, id: u64) {
        self.frames.clear();
        self.bytes = 0;
        self.missed_below = id;
    }

    /// For a subscriber resuming after `last`, `next_id` being the id the
    /// stream's next message gets: the first id still kept, when some it
    /// has not seen are gone (or `last` is unknown here).
    pub(super) fn missed(&self, last: u64, next_id: u64) -> Option<u64> {
        let oldest = self.frames.front().map_or(next_id, |f| f.id);
        (last >= next_id || last + 1 < oldest || last < self.missed_below).then_some(oldest)
    }

    /// The kept frames after `last` that reach `params`: all of them when
    /// `last` is from the future (the server restarted).
    pub(super) fn after<'a>(
        &'a self,
        last: u64,
        next_id: u64,
        params: &'a Params,
    ) -> impl Iterator<Item = Arc<Frame>> + 'a {
        let from = if last >= next_id { 0 } else { last + 1 };
        self.frames
            .iter()
            .filter(move |f| f.id >= from && f.reaches(params))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::lock;
    use super::super::testing::{hub, send, take};

    #[test]
    fn a_frame_bigger_than_the_replay_bytes_is_not_kept() {
        let hub = hub(|limits| limits.replay_bytes = 64);
        send(&hub, "small");
        send(&hub, &"x".repeat(100));
        let stream = hub.get("/s").unwrap();
        let state = lock(&stream.state);
        assert_eq!((state.replay.frames.len(), state.replay.bytes), (0, 0));
    }

    #[tokio::test]
    async fn reconnecting_replays_exactly_what_was_missed() {
        let hub = hub(|_| {});
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
        let hub = hub(|limits| limits.replay_messages = 3);
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
}
