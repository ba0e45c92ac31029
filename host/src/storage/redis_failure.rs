//! What a script sees when Redis fails a storage call: one message for a
//! Redis that cannot be reached, whichever part of the Redis store (a read,
//! a commit, a lease) reached for it, and Redis's own answer otherwise.

use crate::cluster::{link, Link};

/// The message scripts see when Redis could not be reached.
pub fn unreachable(link: &Link, e: &redis::RedisError) -> String {
    format!("storage: {}", link::unreachable(&link.display, e))
}

/// `unreachable` for connection failures; otherwise what Redis answered.
pub fn failure(link: &Link, e: &redis::RedisError) -> String {
    if link::unreached(e) {
        unreachable(link, e)
    } else {
        format!("storage: Redis at {} refused the call: {e}", link.display)
    }
}
