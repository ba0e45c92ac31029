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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig, WebSocketContext,
};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;

use super::connection::Connection as ClientSocket;
use super::reply::Failure;
use super::subscribe::{self, Subscribe};
use crate::app::App;
use crate::bindings::{WsClient, WsEvent};
use crate::registry::StreamRoute;
use crate::script::{CallError, Hooks, Job, LoadedScript};
use crate::sleep::sleep_until;
use crate::streams::{End, Sink, SinkSubscription};
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
    // Subscribed now, so a refusal is still an HTTP answer; frames sent
    // until the upgrade completes wait in the sink.
    let limits = &app.settings.hub;
    let sink = Sink::new(limits.lag, limits.lag_bytes);
    let subscribed = match subscription.open_sink(&app.hub, sink.clone()) {
        Ok(subscribed) => subscribed,
        Err(error) => {
            let path = stream.path.clone();
            return Failure::Subscribe { path, error }.into();
        }
    };
    let client = app.services.clients.connect(&stream.path, sink.clone());
    let accept = derive_accept_key(key.as_bytes());
    let app = app.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!("WebSocket upgrade failed: {e}"),
        };
        let Some((socket, read_ahead)) = socket_of(upgraded) else {
            return tracing::error!(
                "WebSocket upgrade: the connection is not a TCP socket of ours"
            );
        };
        let socket = Arc::new(socket);
        sink.connect(socket.clone());
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(app.settings.ws_max_message_bytes))
            .max_frame_size(Some(app.settings.ws_max_message_bytes));
        let ws = WebSocketContext::from_partially_read(read_ahead, Role::Server, Some(config));
        Connection::new(app, client, params, sink, socket, ws)
            .serve(subscribed)
            .await;
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

/// The upgraded connection's socket, out of hyper, and the bytes read past
/// the request (a client may send its first frames right behind it).
fn socket_of(upgraded: Upgraded) -> Option<(TcpStream, Vec<u8>)> {
    let parts = upgraded.downcast::<TokioIo<ClientSocket>>().ok()?;
    let (unread, socket) = parts.io.into_inner().into_parts();
    let mut read_ahead = parts.read_buf.to_vec();
    read_ahead.extend_from_slice(&unread);
    Some((socket, read_ahead))
}

/// The connection's read buffer: client frames are small; a bigger one
/// takes a few reads. (tungstenite zero-fills it before each read.)
const READ_BUFFER_BYTES: usize = 4 << 10;

/// How long a closing connection waits for its last frames to go out and
/// for the peer's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Client frames read in one go before the connection sees to its other work.
const READS_PER_TURN: usize = 64;

/// Why a connection ends, and the close frame it gets.
fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

/// What a `read` ended on.
enum Read {
    /// The socket has no more for now.
    Drained,
    /// A message went to the script (or many frames were read): the
    /// connection lets other tasks run before it reads on.
    ForScript,
}

/// tungstenite's view of the connection: it reads the socket, and what it
/// writes (pongs, close frames, our pings) goes out through the sink, in
/// order with the hub's frames.
struct Io<'a> {
    socket: &'a TcpStream,
    sink: &'a Sink,
}

impl std::io::Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.socket.try_read(buf)
    }
}

impl std::io::Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.sink.send_own(&Bytes::copy_from_slice(buf)) {
            true => Ok(buf.len()),
            false => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One upgraded connection.
struct Connection {
    app: Arc<App>,
    /// Registered for `client.send` until the connection closes.
    client: Option<Client>,
    /// The client's number, its id, path and query, for the script.
    number: u64,
    record: Arc<WsClient>,
    sink: Arc<Sink>,
    socket: Arc<TcpStream>,
    ws: WebSocketContext,
    /// Client frames in the current one-second window, for the rate cap.
    window: (Instant, u32),
    /// Something came from the peer since the last ping.
    answered: bool,
    serving: Option<Serving>,
}

impl Connection {
    fn new(
        app: Arc<App>,
        client: Client,
        params: Vec<(String, String)>,
        sink: Arc<Sink>,
        socket: Arc<TcpStream>,
        ws: WebSocketContext,
    ) -> Self {
        let record = Arc::new(WsClient {
            id: client.id.clone(),
            path: client.path.clone(),
            params,
        });
        Connection {
            app,
            number: client.number,
            client: Some(client),
            record,
            sink,
            socket,
            ws,
            window: (Instant::now(), 0),
            answered: true,
            serving: None,
        }
    }

    /// Serves the connection: the hub's frames reach the socket without it
    /// (`Sink`); it writes out what the socket did not take at once, reads
    /// the client's frames, pings, and closes.
    async fn serve(mut self, subscribed: SinkSubscription) {
        tracing::debug!(stream = %self.record.path, client = %self.record.id, "WebSocket connected");
        self.tell_script(WsEvent::Open);
        let every = self.app.settings.keep_alive;
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Since when queued frames have waited for the socket without any
        // of them going out.
        let mut stalled: Option<Instant> = None;
        let stall_limit = self.app.settings.write_stall;
        let closing: Option<CloseFrame> = loop {
            match self.sink.flush() {
                Ok(0) => {}
                Ok(_) => stalled = None,
                Err(_) => break None,
            }
            let pending = self.sink.pending();
            match (self.sink.end(), pending) {
                (Some(End::Lagged), _) => {
                    break Some(close(
                        CloseCode::Again,
                        "too slow: reconnect with lastEventId",
                    ))
                }
                (Some(End::StreamClosed), false) => {
                    break Some(close(CloseCode::Away, "stream closed"))
                }
                (Some(End::Failed), _) => break None,
                _ => {}
            }
            // The stall clock runs from when frames started waiting.
            let stall_at = match pending {
                true => Some(*stalled.get_or_insert_with(Instant::now) + stall_limit),
                false => {
                    stalled = None;
                    None
                }
            };
            tokio::select! {
                biased;
                _ = self.sink.ready() => {}
                ready = self.socket.writable(), if pending => {
                    if ready.is_err() {
                        break None;
                    }
                }
                () = sleep_until(stall_at), if pending => {
                    self.app.metrics.write_stalls().inc();
                    tracing::info!(client = %self.record.id, "closing a WebSocket peer that took no data for {stall_limit:?}");
                    break None;
                }
                ready = self.socket.readable() => {
                    if ready.is_err() {
                        break None;
                    }
                    match self.read() {
                        // Let the script's turn (and its broadcast) run before
                        // this connection reads on, which ends in one more
                        // read syscall finding the socket empty.
                        Ok(Read::ForScript) => tokio::task::yield_now().await,
                        Ok(Read::Drained) => {}
                        Err(closing) => break closing,
                    }
                }
                _ = ping.tick() => {
                    if !self.answered {
                        tracing::info!(client = %self.record.id, "closing a WebSocket peer that stopped answering pings");
                        break Some(close(CloseCode::Away, "no pong"));
                    }
                    self.answered = false;
                    self.write(Message::Ping(Bytes::new()));
                }
            }
        };
        // No longer a subscriber, nor reachable by `client.send`.
        drop(subscribed);
        self.client.take();
        if self.sink.end() != Some(End::Failed) {
            if let Some(frame) = closing {
                let mut io = Io {
                    socket: &self.socket,
                    sink: &self.sink,
                };
                let _ = self.ws.close(&mut io, Some(frame));
            }
            let _ = tokio::time::timeout(CLOSE_GRACE, self.finish()).await;
        }
        self.sink.release();
        self.tell_script(WsEvent::Close);
        tracing::debug!(client = %self.record.id, "WebSocket closed");
    }

    /// Lets the last frames (a close frame among them) go out and the peer's
    /// close reply come in.
    async fn finish(&mut self) {
        loop {
            if self.sink.flush().is_err() {
                return;
            }
            let pending = self.sink.pending();
            if !pending && !self.ws.can_read() {
                return; // both close frames are through
            }
            tokio::select! {
                ready = self.socket.writable(), if pending => {
                    if ready.is_err() {
                        return;
                    }
                }
                ready = self.socket.readable() => {
                    if ready.is_err() || self.read().is_err() && !self.sink.pending() {
                        return;
                    }
                }
            }
        }
    }

    /// Reads the client's frames until the socket has no more, one was
    /// queued for the script, or after `READS_PER_TURN` of them; `Err` ends
    /// the connection, with a close frame to send if it is `Some`.
    fn read(&mut self) -> Result<Read, Option<CloseFrame>> {
        for _ in 0..READS_PER_TURN {
            let mut io = Io {
                socket: &self.socket,
                sink: &self.sink,
            };
            let message = match self.ws.read(&mut io) {
                Ok(message) => message,
                Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok(Read::Drained)
                }
                Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                    return Err(Some(close(CloseCode::Size, "message too big")))
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Err(None),
                Err(e) => {
                    tracing::debug!(client = %self.record.id, "WebSocket read failed: {e}");
                    return Err(None);
                }
            };
            self.answered = true;
            if self.received(message)? {
                return Ok(Read::ForScript);
            }
        }
        Ok(Read::ForScript) // more may wait: the socket is still readable
    }

    /// Writes one message of the connection's own (through the sink).
    fn write(&mut self, message: Message) {
        let mut io = Io {
            socket: &self.socket,
            sink: &self.sink,
        };
        if self.ws.write(&mut io, message).is_ok() {
            let _ = self.ws.flush(&mut io);
        }
    }

    /// A frame from the client: true when it went to the script; `Err` ends
    /// the connection (with a close frame).
    fn received(&mut self, message: Message) -> Result<bool, Option<CloseFrame>> {
        let event = match message {
            Message::Text(text) => WsEvent::Text(text.as_str().to_string()),
            Message::Binary(bytes) => WsEvent::Binary(bytes.to_vec()),
            Message::Close(_) => {
                // tungstenite queued the reply; `finish` sends it.
                let mut io = Io {
                    socket: &self.socket,
                    sink: &self.sink,
                };
                let _ = self.ws.flush(&mut io);
                return Err(None);
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(false),
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
        self.tell_script(event);
        Ok(true)
    }

    /// Queues `event` for the script serving the stream now (a reload may have
    /// replaced the one it connected to), if it has a handler for it.
    fn tell_script(&mut self, event: WsEvent) {
        let Some((script, hooks)) = self.serving() else {
            return;
        };
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
            connection: self.number,
            client: self.record.clone(),
            sink: self.sink.clone(),
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

    /// The script serving the stream now and its hooks there: looked up in
    /// the route table again only after a reload swapped it.
    fn serving(&mut self) -> Option<(Arc<LoadedScript>, Hooks)> {
        // Read before the table: a swap in between is seen next time.
        let generation = self.app.table_generation.load(Ordering::Acquire);
        if let Some(known) = self.serving.as_ref().filter(|s| s.generation == generation) {
            if let Some(script) = known.script.upgrade() {
                return Some((script, known.hooks));
            }
        }
        let table = self.app.table.load();
        let script = subscribe::stream_at(&table, &self.record.path)?
            .script
            .clone();
        let hooks = script.registrations.websocket.hooks(&self.record.path);
        self.serving = Some(Serving {
            generation,
            script: Arc::downgrade(&script),
            hooks,
        });
        Some((script, hooks))
    }
}

/// Who serves a connection's stream, as of route table `generation`. Weak:
/// an idle connection does not keep a replaced script alive.
struct Serving {
    generation: u64,
    script: Weak<LoadedScript>,
    hooks: Hooks,
}

/// Waits (polling) until every subscriber is gone: after shutdown ended the
/// streams, WebSocket and direct SSE connections close on their own.
pub async fn drained(app: &App) {
    while app.hub.total_subscribers() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
