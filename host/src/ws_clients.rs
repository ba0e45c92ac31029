//! The live WebSocket connections on stream paths, by client id: what a
//! script's `client.send` reaches (`script/imports/websocket.rs`).
//!
//! The connection itself (upgrade, frames, pings, limits) is served by
//! `server/websocket.rs`; the hub's broadcast reaches it like any subscriber.
//! Which streams a script listens to is in `script/registrations.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::streams::{encode_json, ws_text, Sink};

/// Live WebSocket connections by client id, each with the sink its frames
/// go out through (`client.send` writes there too, in order with the hub's).
#[derive(Default)]
pub struct Clients {
    next: AtomicU64,
    live: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    path: String,
    sink: Arc<Sink>,
}

/// One registered connection; dropping it unregisters the client.
pub struct Client {
    /// Numbers connections for the life of the server (the script's
    /// WebSocket events name them by it).
    pub number: u64,
    /// `ws-<number>`: what `client.id` says and `client.send` names.
    pub id: String,
    pub path: String,
    clients: Arc<Clients>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.clients.live.lock().unwrap().remove(&self.id);
    }
}

impl Clients {
    /// Registers a connection to the stream at `path` that writes to `sink`
    /// (whose caps bound what may wait for it: a client that does not read
    /// loses direct messages).
    pub fn connect(self: &Arc<Self>, path: &str, sink: Arc<Sink>) -> Client {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("ws-{n}");
        self.live.lock().unwrap().insert(
            id.clone(),
            Entry {
                path: path.to_string(),
                sink,
            },
        );
        Client {
            number: n,
            id,
            path: path.to_string(),
            clients: self.clone(),
        }
    }

    /// Sends `json` to client `id` as `{"data":...}`, if it is connected to
    /// one of `streams` (a script reaches only its own streams' clients).
    /// False when it is not (any more), or too far behind to take more.
    pub fn send(&self, id: &str, streams: &[String], json: &str) -> bool {
        let sink = {
            let live = self.live.lock().unwrap();
            let Some(entry) = live.get(id).filter(|e| streams.contains(&e.path)) else {
                return false;
            };
            entry.sink.clone()
        };
        if sink.send_direct(&ws_text(encode_json(None, json))) {
            return true;
        }
        if sink.end().is_none() {
            tracing::warn!(
                client = id,
                "client.send dropped: the client is not reading"
            );
        }
        false
    }
}
