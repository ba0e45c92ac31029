//! WebSocket connections on stream paths (RFC 6455, through tokio-tungstenite).
//!
//! A `GET` with `Upgrade: websocket` on a stream path subscribes like SSE does
//! (same parameters, filters, caps and replay, `?lastEventId=N` to resume) and
//! is answered `101`; from then on, every message of the stream is one text
//! frame `{"id":n,"data":...}` — the hub's own bytes, encoded once for all.
//! The client's own frames go to the script's `onMessage` (each a turn of the
//! script, queued in order with its requests), under a size cap (close 1009)
//! and a rate cap (close 1008). The server pings every keep-alive interval and
//! closes a peer that did not answer the previous ping; a peer too slow to
//! read is cut as an SSE one is (write stall, or lagging a ring behind: 1013);
//! the end of the stream (shutdown, or its script unloaded) closes with 1001.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;

use super::reply::Failure;
use super::subscribe::{self, Subscribe};
use crate::app::App;
use crate::bindings::{WsClient, WsEvent};
use crate::registry::StreamRoute;
use crate::script::{CallError, Hooks, Job};
use crate::streams::{Frame, Lagged, Transport};
use crate::ws_clients::Client;

/// Does this request ask to become a WebSocket?
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// Answers an upgrade request on `stream`: `101` and a task serving the
/// connection, or the refusal (bad handshake, subscriber caps).
pub fn upgrade(
    app: &Arc<App>,
    stream: &StreamRoute,
    query: &str,
    headers: &HeaderMap,
    on_upgrade: Option<OnUpgrade>,
) -> Response {
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !version_ok {
        return Failure::WebSocketVersion.into();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Failure::WebSocketKeyMissing.into();
    };
    let Some(on_upgrade) = on_upgrade else {
        return Failure::NotUpgradable.into();
    };
    let subscription = match Subscribe::new(&stream.path, query, None) {
        Ok(subscription) => subscription,
        Err(too_long) => return Failure::from(too_long).into(),
    };
    let params = subscription.params.clone();
    let frames = match subscription.open(&app.hub, Transport::WebSocket) {
        Ok(frames) => frames,
        Err(error) => {
            let path = stream.path.clone();
            return Failure::Subscribe { path, error }.into();
        }
    };
    let client = app
        .services
        .clients
        .connect(&stream.path, app.settings.hub.lag);
    let accept = derive_accept_key(key.as_bytes());
    let app = app.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER_BYTES)
                    .max_message_size(Some(app.settings.ws_max_message_bytes))
                    .max_frame_size(Some(app.settings.ws_max_message_bytes));
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                Connection::new(app, client, params).serve(ws, frames).await;
            }
            Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
        }
    });
    let mut res = Response::new(Bytes::new().into());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

/// The connection's read buffer. tungstenite zero-fills its whole read buffer
/// before every read attempt, and the connection polls for a client frame each
/// time it wakes (for a broadcast too): at tungstenite's default of 128 KiB
/// that was a 128 KiB memset per subscriber per message, most of the fan-out's
/// time, and 128 KiB of touched memory per connection. Client frames are
/// small; a bigger one takes a few reads.
const READ_BUFFER_BYTES: usize = 4 << 10;

/// How long a closing connection waits for the peer's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Why a connection ends, and the close frame it gets.
fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// One upgraded connection.
struct Connection {
    app: Arc<App>,
    client: Client,
    record: WsClient,
    /// Client frames in the current one-second window, for the rate cap.
    window: (Instant, u32),
}

impl Connection {
    fn new(app: Arc<App>, client: Client, params: Vec<(String, String)>) -> Self {
        let record = WsClient {
            id: client.id.clone(),
            path: client.path.clone(),
            params,
        };
        Connection {
            app,
            client,
            record,
            window: (Instant::now(), 0),
        }
    }

    async fn serve<S>(
        mut self,
        mut ws: WebSocketStream<S>,
        frames: impl Stream<Item = Result<Arc<Frame>, Lagged>>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        tracing::debug!(stream = %self.record.path, client = %self.record.id, "WebSocket connected");
        self.to_script(WsEvent::Open);
        let mut frames = Box::pin(frames);
        let every = self.app.settings.keep_alive;
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut answered = true;
        let closing: Option<Message> = loop {
            let out = tokio::select! {
                frame = frames.next() => match frame {
                    Some(Ok(frame)) => match Utf8Bytes::try_from(frame.json.clone()) {
                        Ok(text) => Message::Text(text),
                        Err(_) => continue, // the hub only makes JSON text
                    },
                    Some(Err(Lagged)) => break Some(close(CloseCode::Again, "too slow: reconnect with lastEventId")),
                    None => break Some(close(CloseCode::Away, "stream closed")),
                },
                direct = self.client.direct.recv() => match direct.map(Utf8Bytes::try_from) {
                    Some(Ok(text)) => Message::Text(text),
                    Some(Err(_)) => continue,
                    None => break Some(close(CloseCode::Away, "stream closed")),
                },
                incoming = ws.next() => {
                    answered = true;
                    match incoming {
                        Some(Ok(message)) => match self.received(message) {
                            Ok(()) => continue,
                            Err(closing) => break closing,
                        },
                        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                            break Some(close(CloseCode::Size, "message too big"))
                        }
                        Some(Err(e)) => {
                            tracing::debug!(client = %self.record.id, "WebSocket read failed: {e}");
                            break None;
                        }
                        None => break None,
                    }
                },
                _ = ping.tick() => {
                    if !answered {
                        tracing::info!(client = %self.record.id, "closing a WebSocket peer that stopped answering pings");
                        break Some(close(CloseCode::Away, "no pong"));
                    }
                    answered = false;
                    Message::Ping(Bytes::new())
                },
            };
            if ws.send(out).await.is_err() {
                break None; // the peer is gone or stopped reading (write stall)
            }
        };
        // No longer a subscriber, nor reachable by `client.send`.
        drop(frames);
        self.client.direct.close();
        if let Some(message) = closing {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = ws.send(message).await;
                // Let tungstenite see the peer's close reply, briefly.
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
        self.to_script(WsEvent::Close);
        tracing::debug!(client = %self.record.id, "WebSocket closed");
    }

    /// A frame from the client; `Err` ends the connection (with a close frame).
    fn received(&mut self, message: Message) -> Result<(), Option<Message>> {
        let event = match message {
            Message::Text(text) => WsEvent::Text(text.as_str().to_string()),
            Message::Binary(bytes) => WsEvent::Binary(bytes.to_vec()),
            Message::Close(_) => return Err(None), // tungstenite answers it
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(()),
        };
        let limit = self.app.settings.ws_messages_per_sec;
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        if limit > 0 && self.window.1 > limit {
            tracing::warn!(client = %self.record.id, limit, "closing a WebSocket client that sent too many messages");
            return Err(Some(close(CloseCode::Policy, "too many messages")));
        }
        self.to_script(event);
        Ok(())
    }

    /// Queues `event` for the script serving the stream now (a reload may have
    /// replaced the one it connected to), if it has a handler for it.
    fn to_script(&self, event: WsEvent) {
        let table = self.app.table.load();
        let Some(stream) = subscribe::stream_at(&table, &self.record.path) else {
            return;
        };
        let script = &stream.script;
        let hooks = script.registrations.websocket.hooks(&self.record.path);
        let wanted = match event {
            WsEvent::Open => hooks.open,
            WsEvent::Text(_) | WsEvent::Binary(_) => hooks.message,
            // Also lets the guest forget the client object it made.
            WsEvent::Close => hooks != Hooks::default(),
        };
        if !wanted {
            return;
        }
        let job = Job::WebSocket {
            client: self.record.clone(),
            event,
        };
        match script.send_job(job) {
            Ok(()) => {}
            Err(CallError::Busy) => {
                tracing::warn!(script = %script.name, client = %self.record.id, "queue full; WebSocket event dropped")
            }
            Err(_) => {}
        }
    }
}

/// Waits (polling) until every subscriber is gone: after shutdown ended the
/// streams, WebSocket and direct SSE connections close on their own.
pub async fn drained(app: &App) {
    while app.hub.total_subscribers() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
