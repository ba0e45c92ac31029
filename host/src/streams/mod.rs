//! The stream hub: per stream path, a broadcast ring for SSE subscribers, the
//! sockets of WebSocket ones, and a bounded replay buffer.
//!
//! A message is encoded once into its SSE frame and, beside it, its WebSocket
//! frame (text `{"id":n,"data":...}`); the same bytes are shared by every
//! subscriber of either transport. The sender (a script's turn) numbers the
//! frame and keeps it for replay; a small audience (up to 64) it serves
//! itself, a larger one is queued to the hub's fan-out thread. Serving a frame
//! puts it in the stream's ring, waking the SSE subscribers, and writes it to
//! each WebSocket subscriber's socket without blocking (`sink.rs`), so a
//! broadcast costs the script little whatever the audience (a filtered one
//! also counts who it reached). An SSE subscriber reads from the ring at its
//! own pace; a WebSocket one has what its socket did not take queued. One
//! that falls too far behind is disconnected (it reconnects and replays),
//! never buffered without bound.
//!
//! No gap, no duplicate: numbering, replay and queueing happen under the
//! stream's lock, as does subscribing, which notes the first id it has not yet
//! seen; live frames below it (already replayed, or older than the
//! subscription) are skipped.
//!
//! In cluster mode (`cluster/`) the hub does not number messages itself: a
//! `Publisher` hands them to Redis, which numbers them for the whole cluster,
//! and they come back, to every node alike, through `deliver` in id order.
//! Everything after that — replay, rings, filters — is the same code.
//!
//! - `hub.rs`          the hub, its streams and their state; numbering and sending
//! - `frame.rs`        one event encoded once: SSE frame and WebSocket text
//! - `filter.rs`       which subscribers a message's filter picks
//! - `replay.rs`       the bounded replay buffer and what a resuming subscriber gets
//! - `fan_out.rs`      putting frames in the rings and sockets (inline, or the fan-out thread); the byte window
//! - `sink.rs`         a WebSocket subscriber's socket, written from the fan-out, and its queue
//! - `subscription.rs` subscribing: caps, replay then live frames, lag, counts
//! - `publisher.rs`    `Publisher`: where messages go to be numbered in cluster mode
//! - `cluster.rs`      the hub's side of cluster mode: `deliver`, catch-up, restarts
//! - `limits.rs`       sizes and caps of the hub
//! - `testing.rs`      the unit tests' shared hub (tests only)

mod cluster;
mod fan_out;
mod filter;
mod frame;
mod hub;
mod limits;
mod publisher;
mod replay;
mod sink;
mod subscription;
#[cfg(test)]
mod testing;

use std::sync::{Mutex, PoisonError};

pub use cluster::Delivered;
pub use filter::Params;
pub use frame::{encode_frame, encode_json, ws_text, Frame, MISSED_EVENT};
pub use hub::Hub;
pub use limits::HubLimits;
pub use publisher::{Outgoing, Publisher, Settle};
pub use sink::{Corked, End, Sink};
pub use subscription::{sse_bytes, Lagged, SinkSubscription, SubscribeError};

/// Every lock of the hub holds data that stays consistent between statements,
/// so a panic elsewhere while one was held does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
