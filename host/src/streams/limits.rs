//! Sizes and caps of the stream hub, with their defaults (the CLI's too).

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
    /// Bytes of frames a subscriber may fall behind before it is disconnected:
    /// what one stalled subscriber can pin in the stream's ring.
    pub lag_bytes: usize,
    /// Largest message (its JSON) a script may send; larger ones throw.
    pub message_bytes: usize,
    /// Streams one script may register.
    pub streams_per_script: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            lag: 1024,
            replay_messages: 1000,
            replay_bytes: 4 << 20,
            per_stream: 20_000,
            total: 50_000,
            lag_bytes: 32 << 20,
            message_bytes: 1 << 20,
            streams_per_script: 16,
        }
    }
}
