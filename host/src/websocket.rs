//! The host side of WebSocket connections on stream paths (`wit/websocket.wit`):
//! which streams a script listens to (`onOpen`, `onMessage`, `onClose`), the
//! live connections a script may `send` to, and the `websocket` WIT functions.
//!
//! The connection itself (upgrade, frames, pings, limits) is served by
//! `server/websocket.rs`; the hub's broadcast reaches it like any subscriber.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::bindings::aiwebengine::script::websocket::Host;
use crate::host_state::HostState;
use crate::streams::{encode_json, Hub};

/// Which client handlers a script gave `registerStreamRoute` for one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub open: bool,
    pub message: bool,
    pub close: bool,
}

/// Streams of one script with client handlers, by path.
#[derive(Clone, Debug, Default)]
pub struct Listeners(Vec<(String, Hooks)>);

impl Listeners {
    pub fn hooks(&self, path: &str) -> Hooks {
        self.0
            .iter()
            .find(|(p, _)| p == path)
            .map_or_else(Hooks::default, |(_, h)| *h)
    }
}

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
    hub: Arc<Hub>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.hub.clients.live.lock().unwrap().remove(&self.id);
    }
}

impl Clients {
    /// Registers a connection to the stream at `path`; `capacity` bounds what
    /// may wait for it (a client that does not read loses direct messages).
    pub fn connect(hub: &Arc<Hub>, path: &str, capacity: usize) -> Client {
        let n = hub.clients.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("ws-{n}");
        let (tx, direct) = mpsc::channel(capacity.max(1));
        hub.clients.live.lock().unwrap().insert(
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
            hub: hub.clone(),
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

    pub fn count(&self) -> usize {
        self.live.lock().unwrap().len()
    }
}

impl Host for HostState {
    fn listen(
        &mut self,
        path: String,
        on_open: bool,
        on_message: bool,
        on_close: bool,
    ) -> Result<(), String> {
        if !self.registrations.streams.contains(&path) {
            return Err(format!("no stream is registered at {path:?}"));
        }
        let hooks = Hooks {
            open: on_open,
            message: on_message,
            close: on_close,
        };
        let listeners = &mut self.registrations.websocket.0;
        listeners.retain(|(p, _)| *p != path);
        listeners.push((path, hooks));
        Ok(())
    }

    fn send(&mut self, client: String, json: String) -> bool {
        self.hub
            .clients
            .send(&client, &self.registrations.streams, &json)
    }
}
