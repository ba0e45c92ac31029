//! What the hub's unit tests share: a hub with one stream, `/s`.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{sse_bytes, Hub, HubLimits, Params, SubscribeError};

impl Hub {
    /// An SSE subscription's bytes, as the server's SSE paths write them.
    pub(super) fn subscribe(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
    ) -> Result<impl Stream<Item = Bytes> + Send + 'static, SubscribeError> {
        let frames = self.subscribe_frames(path, last_event_id, params)?;
        Ok(sse_bytes(frames))
    }
}

/// A hub with a stream at `/s`, its limits the defaults as `set` changes them.
pub(super) fn hub(set: impl FnOnce(&mut HubLimits)) -> Hub {
    let mut limits = HubLimits::default();
    set(&mut limits);
    let hub = Hub::new(limits);
    hub.ensure("/s");
    hub
}

/// Broadcasts `data` on `/s`; how many it reached.
pub(super) fn send(hub: &Hub, data: &str) -> usize {
    hub.broadcast("/s", data, vec![]).unwrap()
}

/// The next `n` SSE frames of `s`, as text.
pub(super) async fn take(s: &mut (impl Stream<Item = Bytes> + Unpin), n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(String::from_utf8(s.next().await.unwrap().to_vec()).unwrap());
    }
    out
}
