//! The live WebSocket connections on stream paths, by client id: what a
//! script's `client.send` reaches (`script/imports/websocket.rs`).
//!
//! The connection itself (upgrade, frames, pings, limits) is served by
//! `server/websocket.rs`; the hub's broadcast reaches it like any subscriber.
//! Which streams a script listens to is in `script/registrations.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::streams::encode_json;

/// Live WebSocket connections by client id, each with a bounded queue of
/// messages sent to it alone (`client.send`).
#[derive(Default)]
pub struct Clients {
    next: AtomicU64,
    live: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    path: String,
    tx: mpsc::Sender<Bytes>,
}

/// One registered connection; dropping it unregisters the client.
pub struct Client {
    pub id: String,
    pub path: String,
    /// Messages for this connection only, already encoded as `{"data":...}`.
    pub direct: mpsc::Receiver<Bytes>,
    clients: Arc<Clients>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.clients.live.lock().unwrap().remove(&self.id);
    }
}

impl Clients {
    /// Registers a connection to the stream at `path`; `capacity` bounds what
    /// may wait for it (a client that does not read loses direct messages).
    pub fn connect(self: &Arc<Self>, path: &str, capacity: usize) -> Client {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("ws-{n}");
        let (tx, direct) = mpsc::channel(capacity.max(1));
        self.live.lock().unwrap().insert(
            id.clone(),
            Entry {
                path: path.to_string(),
                tx,
            },
        );
        Client {
            id,
            path: path.to_string(),
            direct,
            clients: self.clone(),
        }
    }

    /// Queues `json` for client `id`, if it is connected to one of `streams`
    /// (a script reaches only its own streams' clients). False when it is not
    /// (any more), or too far behind to take more.
    pub fn send(&self, id: &str, streams: &[String], json: &str) -> bool {
        let live = self.live.lock().unwrap();
        let Some(entry) = live.get(id).filter(|e| streams.contains(&e.path)) else {
            return false;
        };
        match entry.tx.try_send(encode_json(None, json)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(client = id, stream = %entry.path, "client.send dropped: the client is not reading");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
