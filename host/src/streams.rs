//! The stream hub: one broadcast ring per stream path, plus a bounded replay buffer.
//!
//! A message is encoded once into its SSE frame and, beside it, its WebSocket
//! text (`{"id":n,"data":...}`); the same bytes are shared by every subscriber
//! of either transport. The sender (a script's thread) only numbers the frame,
//! keeps it for replay and queues it: the hub's fan-out thread puts it in the
//! stream's ring and wakes the subscribers, so a broadcast costs the script
//! O(1) whatever the audience (a filtered one also counts who it reached).
//! Each subscriber reads from the ring at its own pace; one that falls a whole
//! ring behind is disconnected (its EventSource reconnects and replays), never
//! buffered without bound.
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use crate::metrics::{Metrics, StreamMetrics};

/// The event sent to a reconnecting subscriber whose `Last-Event-ID` is older
/// than the replay buffer (or unknown to this stream): some messages are lost.
pub const MISSED_EVENT: &str = "missed";

/// Query parameters: a subscriber's, or a message's filter.
pub type Params = Vec<(String, String)>;

/// Called once a published message is accepted by the cluster, or failed.
pub type Settle = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Where messages go to be numbered when this process is one node of several.
pub trait Publisher: Send + Sync {
    /// Queues `json` for `path`; `settle` runs once it is numbered and
    /// published cluster-wide (or failed). An `Err` means it was not queued
    /// (the cluster is unreachable): the script's send throws. `floor` is
    /// the highest id this node has delivered on `path`.
    fn publish(
        &self,
        path: &str,
        json: &str,
        filter: &Params,
        floor: u64,
        settle: Settle,
    ) -> Result<(), String>;
}

/// What `Hub::deliver` did with a message numbered by the cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Delivered (or no stream of that path lives here).
    Done,
    /// Already delivered (a replayed catch-up or a duplicate).
    Skipped,
    /// Messages before it are missing: this id is the next one expected.
    Gap(u64),
}

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

/// One encoded event and who it is for.
pub struct Frame {
    pub id: u64,
    /// The SSE frame.
    pub bytes: Bytes,
    /// The same event as one WebSocket text message (UTF-8 JSON).
    pub json: Bytes,
    filter: Option<Params>,
}

/// A frame as it sits in a stream's broadcast ring. The ring keeps its last
/// `lag` entries for as long as any subscriber has not read them, so a stalled
/// subscriber could pin `lag` frames of any size. The fan-out thread therefore
/// also keeps a window of the last `lag_bytes` of frames it queued and empties
/// the cells that fall out of it: a subscriber that reaches an empty cell is
/// more than `lag_bytes` behind and is disconnected, as for a frame lag.
type Cell = arc_swap::ArcSwapOption<Frame>;

/// The fan-out thread's per-stream record of the cells still inside the window.
#[derive(Default)]
struct Window {
    cells: VecDeque<(std::sync::Weak<Cell>, usize)>,
    bytes: usize,
}

impl Window {
    /// Notes `cell` (of `size` bytes) and empties the oldest cells beyond
    /// `limit` bytes. Cells more than `ring` entries back have left the ring
    /// already and are just forgotten.
    fn push(&mut self, cell: &Arc<Cell>, size: usize, limit: usize, ring: usize) {
        self.cells.push_back((Arc::downgrade(cell), size));
        self.bytes += size;
        while self.cells.len() > ring {
            if let Some((_, size)) = self.cells.pop_front() {
                self.bytes -= size;
            }
        }
        while self.bytes > limit && self.cells.len() > 1 {
            let Some((old, size)) = self.cells.pop_front() else {
                break;
            };
            self.bytes -= size;
            if let Some(old) = old.upgrade() {
                old.store(None); // a subscriber still owes it: it has lagged too far
            }
        }
    }
}

/// A subscriber fell a whole ring behind; its subscription ends after this.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

/// Which transport a subscriber uses (counted apart for `/_engine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Sse,
    WebSocket,
}

impl Frame {
    fn reaches(&self, params: &Params) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| matches(filter, params))
    }
}

/// Whether a subscriber with `params` is one a message's `filter` picks.
fn matches(filter: &Params, params: &Params) -> bool {
    filter.iter().all(|f| params.contains(f))
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    NoStream,
    TooMany(&'static str),
}

pub struct Hub {
    streams: RwLock<HashMap<String, Arc<StreamChannel>>>,
    limits: HubLimits,
    total: Arc<AtomicUsize>,
    fan_out: crossbeam_channel::Sender<(Arc<StreamChannel>, Arc<Frame>)>,
    metrics: Arc<Metrics>,
    /// Set in cluster mode: messages are numbered by the cluster.
    publisher: std::sync::OnceLock<Arc<dyn Publisher>>,
    /// Told the path of every stream created from now on (cluster mode).
    new_streams: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
}

struct StreamChannel {
    state: Mutex<StreamState>,
    tx: broadcast::Sender<Arc<Cell>>,
    /// Each live subscriber's parameters, to count who a filtered message reaches.
    subscribers: Arc<Mutex<HashMap<u64, Arc<Params>>>>,
    metrics: StreamMetrics,
    /// Only the fan-out thread takes this lock.
    window: Mutex<Window>,
    /// How many of the subscribers are WebSocket connections.
    websockets: Arc<AtomicUsize>,
    /// When this node created the stream, in ms since the Unix epoch.
    registered_ms: u64,
    /// Cluster mode: the first id that is news to subscribers who came
    /// without a `Last-Event-ID`; `u64::MAX` until the stream has caught up
    /// with the cluster (`start_at`), so they wait for it. 0 on a single node.
    live_from: Arc<AtomicU64>,
}

impl StreamChannel {
    /// How many of the stream's subscribers a message with `filter` reaches.
    fn reach(&self, filter: Option<&Params>) -> usize {
        match filter {
            None => self.tx.receiver_count(),
            Some(filter) => lock(&self.subscribers)
                .values()
                .filter(|p| matches(filter, p))
                .count(),
        }
    }
}

struct StreamState {
    next_id: u64,
    next_subscriber: u64,
    replay: VecDeque<Arc<Frame>>,
    replay_bytes: usize,
    /// A `Last-Event-ID` below this gets `missed`: the history before it was
    /// lost (the cluster's Redis lost its data, or this node missed a stretch).
    missed_below: u64,
}

/// Encodes one SSE event. `data` is one JSON text; should it ever hold line
/// breaks, each line becomes its own `data:` field, as SSE requires. SSE ends
/// lines at `\r\n`, `\r` or `\n`, so all three split here: whatever a script
/// passes off as JSON, it cannot start an `id:`, `event:` or `retry:` line.
pub fn encode_frame(id: Option<u64>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 24);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in sse_lines(data) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// `data`'s lines as an SSE client reads them: ended by `\r\n`, `\r` or `\n`.
/// (Built on `split(char)`, which searches with memchr: frames can be large.)
fn sse_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut pieces = data.split('\n').peekable();
    std::iter::from_fn(move || {
        let piece = pieces.next()?;
        let ended_by_lf = pieces.peek().is_some();
        Some(match ended_by_lf {
            true => piece.strip_suffix('\r').unwrap_or(piece), // CRLF is one line end
            false => piece,
        })
    })
    .flat_map(|line| line.split('\r'))
}

/// The WebSocket text of an event: `{"id":n,"data":...}`, or without the id.
pub fn encode_json(id: Option<u64>, data: &str) -> Bytes {
    Bytes::from(match id {
        Some(id) => format!("{{\"id\":{id},\"data\":{data}}}"),
        None => format!("{{\"data\":{data}}}"),
    })
}

/// A subscription's SSE frames, ending where it lags.
pub fn sse_bytes(
    frames: impl Stream<Item = Result<Arc<Frame>, Lagged>>,
) -> impl Stream<Item = Bytes> {
    frames
        .take_while(|item| futures_util::future::ready(item.is_ok()))
        .filter_map(|item| futures_util::future::ready(item.ok().map(|f| f.bytes.clone())))
}

/// Decrements the counts of a subscriber when its response goes away.
struct Subscription {
    id: u64,
    total: Arc<AtomicUsize>,
    subscribers: Arc<Mutex<HashMap<u64, Arc<Params>>>>,
    websockets: Option<Arc<AtomicUsize>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(websockets) = &self.websockets {
            websockets.fetch_sub(1, Ordering::Relaxed);
        }
        lock(&self.subscribers).remove(&self.id);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Every lock of the hub holds data that stays consistent between statements,
/// so a panic elsewhere while one was held does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    pub fn new(limits: HubLimits) -> Self {
        Self::with_metrics(limits, Arc::new(Metrics::new()))
    }

    /// A hub counting its streams' traffic in `metrics`.
    pub fn with_metrics(limits: HubLimits, metrics: Arc<Metrics>) -> Self {
        let (fan_out, queue) = crossbeam_channel::unbounded::<(Arc<StreamChannel>, Arc<Frame>)>();
        let (lag_bytes, ring) = (limits.lag_bytes.max(1), limits.lag.max(1));
        std::thread::Builder::new()
            .name("stream fan-out".into())
            .spawn(move || {
                // Ends when the hub (the only sender) is dropped.
                for (stream, frame) in queue {
                    let size = frame.bytes.len();
                    let cell = Arc::new(Cell::from(Some(frame)));
                    lock(&stream.window).push(&cell, size, lag_bytes, ring);
                    let _ = stream.tx.send(cell); // Err: nobody is listening
                }
            })
            .expect("starting the stream fan-out thread");
        Hub {
            streams: RwLock::new(HashMap::new()),
            limits,
            total: Arc::new(AtomicUsize::new(0)),
            fan_out,
            metrics,
            publisher: std::sync::OnceLock::new(),
            new_streams: std::sync::OnceLock::new(),
        }
    }

    /// The paths of streams created from now on, as they are created.
    pub fn watch_new_streams(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = self.new_streams.set(tx);
        rx
    }

    /// Makes the cluster number and publish every message from now on.
    pub fn use_publisher(&self, publisher: Arc<dyn Publisher>) {
        let _ = self.publisher.set(publisher);
    }

    /// Makes sure a stream exists at `path` (scripts call this as they register).
    pub fn ensure(&self, path: &str) {
        if self.read_streams().contains_key(path) {
            return;
        }
        let mut streams = self.write_streams();
        streams.entry(path.to_string()).or_insert_with(|| {
            if let Some(tell) = self.new_streams.get() {
                let _ = tell.send(path.to_string());
            }
            Arc::new(StreamChannel {
                state: Mutex::new(StreamState {
                    next_id: 1,
                    next_subscriber: 1,
                    replay: VecDeque::new(),
                    replay_bytes: 0,
                    missed_below: 0,
                }),
                tx: broadcast::channel(self.limits.lag.max(1)).0,
                subscribers: Arc::new(Mutex::new(HashMap::new())),
                metrics: self.metrics.stream(path),
                window: Mutex::new(Window::default()),
                websockets: Arc::new(AtomicUsize::new(0)),
                registered_ms: now_ms(),
                live_from: Arc::new(AtomicU64::new(match self.publisher.get() {
                    Some(_) => u64::MAX,
                    None => 0,
                })),
            })
        });
    }

    pub fn limits(&self) -> &HubLimits {
        &self.limits
    }

    fn read_streams(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<StreamChannel>>> {
        self.streams.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_streams(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<StreamChannel>>> {
        self.streams.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops every stream `keep` says no to; their subscribers' responses end.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.write_streams().retain(|path, _| keep(path));
    }

    fn get(&self, path: &str) -> Option<Arc<StreamChannel>> {
        self.read_streams().get(path).cloned()
    }

    /// Sends `json` to the subscribers of `path` that match `filter` (all when
    /// it is empty), numbered here, or by the cluster in cluster mode; returns
    /// how many of this node's subscribers it reaches (in cluster mode, once
    /// `settle` says the cluster accepted it). `Ok(None)`: no stream is
    /// registered at `path`.
    pub fn send(
        &self,
        path: &str,
        json: &str,
        filter: Params,
        settle: impl FnOnce() -> Settle,
    ) -> Result<Option<usize>, String> {
        let Some(publisher) = self.publisher.get() else {
            return Ok(self.broadcast(path, json, filter));
        };
        let Some(stream) = self.get(path) else {
            return Ok(None);
        };
        let floor = lock(&stream.state).next_id.saturating_sub(1);
        publisher.publish(path, json, &filter, floor, settle())?;
        let filter = (!filter.is_empty()).then_some(filter);
        Ok(Some(stream.reach(filter.as_ref())))
    }

    /// Numbers `json` here and sends it to the subscribers of `path` that match
    /// `filter` (all when it is empty); returns how many it reached, or `None`
    /// when no stream is registered there.
    pub fn broadcast(&self, path: &str, json: &str, filter: Params) -> Option<usize> {
        let stream = self.get(path)?;
        let filter = (!filter.is_empty()).then_some(filter);
        let mut state = lock(&stream.state);
        let id = state.next_id;
        Some(self.queue(&stream, &mut state, id, json, filter))
    }

    /// A message numbered `id` by the cluster, in id order: delivered when it
    /// is the next one, skipped when already delivered, or a `Gap` naming the
    /// id expected next (the caller fetches the missing ones first, or calls
    /// `restart_at` when they are gone).
    pub fn deliver(&self, path: &str, id: u64, json: &str, filter: Params) -> Delivered {
        let Some(stream) = self.get(path) else {
            return Delivered::Done;
        };
        let filter = (!filter.is_empty()).then_some(filter);
        let mut state = lock(&stream.state);
        if id < state.next_id {
            return Delivered::Skipped;
        }
        if id > state.next_id {
            return Delivered::Gap(state.next_id);
        }
        self.queue(&stream, &mut state, id, json, filter);
        Delivered::Done
    }

    /// The id the next message of `path` will carry (here: the cluster's
    /// messages delivered so far, plus one).
    pub fn next_id(&self, path: &str) -> Option<u64> {
        self.get(path).map(|s| lock(&s.state).next_id)
    }

    /// The paths of every stream registered here.
    pub fn paths(&self) -> Vec<String> {
        self.read_streams().keys().cloned().collect()
    }

    /// Whether a cluster stream has caught up with the cluster since this
    /// node created it (always true on a single node).
    pub fn caught_up(&self, path: &str) -> bool {
        self.get(path)
            .is_some_and(|s| s.live_from.load(Ordering::Relaxed) != u64::MAX)
    }

    /// When this node created the stream at `path`, in ms since the Unix epoch.
    pub fn registered_ms(&self, path: &str) -> Option<u64> {
        self.get(path).map(|s| s.registered_ms)
    }

    /// A cluster stream's first catch-up: the cluster's messages go on from
    /// `first`, and those from `live_from` on are news (published after this
    /// node created the stream) for subscribers who came without a
    /// `Last-Event-ID`; earlier ones are delivered too, so they fill the replay
    /// buffer and reach subscribers resuming from before them, but are not
    /// sent to the others. Returns false (and does nothing) if it caught up already.
    pub fn start_at(&self, path: &str, first: u64, live_from: u64) -> bool {
        let Some(stream) = self.get(path) else {
            return false;
        };
        let mut state = lock(&stream.state);
        if stream.live_from.load(Ordering::Relaxed) != u64::MAX {
            return false;
        }
        state.next_id = first.max(1);
        stream.live_from.store(live_from, Ordering::Relaxed);
        true
    }

    /// The history before `id` is lost (the cluster's Redis lost its data, or
    /// was away longer than it keeps messages): forget the replay buffer, make
    /// `id` the next message, and answer older `Last-Event-ID`s with `missed`.
    pub fn restart_at(&self, path: &str, id: u64) {
        let Some(stream) = self.get(path) else {
            return;
        };
        let mut state = lock(&stream.state);
        tracing::warn!(
            stream = path,
            from = state.next_id,
            to = id,
            "stream history lost; reconnecting clients older than this get `missed`"
        );
        state.replay.clear();
        state.replay_bytes = 0;
        state.next_id = id;
        state.missed_below = id;
    }

    /// Numbers a frame `id` (the next one), keeps it for replay and queues it
    /// for the fan-out thread; returns how many subscribers it reaches.
    fn queue(
        &self,
        stream: &Arc<StreamChannel>,
        state: &mut StreamState,
        id: u64,
        json: &str,
        filter: Option<Params>,
    ) -> usize {
        state.next_id = id + 1;
        let frame = Arc::new(Frame {
            id,
            bytes: encode_frame(Some(id), None, json),
            json: encode_json(Some(id), json),
            filter,
        });
        self.keep(state, frame.clone());
        let reached = stream.reach(frame.filter.as_ref());
        stream.metrics.sent(frame.bytes.len(), reached);
        // Queued under the lock, so frames reach the ring in id order.
        let _ = self.fan_out.send((stream.clone(), frame));
        reached
    }

    /// Keeps `frame` for replay, within both bounds.
    fn keep(&self, state: &mut StreamState, frame: Arc<Frame>) {
        state.replay_bytes += frame.bytes.len();
        state.replay.push_back(frame);
        // Both bounds hold strictly: a frame bigger than `replay_bytes` is not kept at all.
        while state.replay.len() > self.limits.replay_messages
            || state.replay_bytes > self.limits.replay_bytes
        {
            let Some(old) = state.replay.pop_front() else {
                break;
            };
            state.replay_bytes -= old.bytes.len();
        }
    }

    pub fn subscriber_count(&self, path: &str) -> usize {
        self.get(path).map_or(0, |s| s.tx.receiver_count())
    }

    /// How many of `path`'s subscribers are WebSocket connections.
    pub fn websocket_count(&self, path: &str) -> usize {
        self.get(path)
            .map_or(0, |s| s.websockets.load(Ordering::Relaxed))
    }

    pub fn total_subscribers(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// An SSE subscription's frames: see `subscribe_frames`; it ends when
    /// the subscriber lags a whole ring behind.
    pub fn subscribe(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
    ) -> Result<impl Stream<Item = Bytes> + Send + 'static, SubscribeError> {
        let frames = self.subscribe_frames(path, last_event_id, params, Transport::Sse)?;
        Ok(sse_bytes(frames))
    }

    /// A subscription's frames: first those after `last_event_id` from the
    /// replay buffer (with a `missed` event if some are gone), then live ones
    /// matching `params`. It ends when the stream goes away, or with one
    /// `Err(Lagged)` when the subscriber lags a whole ring behind.
    pub fn subscribe_frames(
        &self,
        path: &str,
        last_event_id: Option<u64>,
        params: Params,
        transport: Transport,
    ) -> Result<impl Stream<Item = Result<Arc<Frame>, Lagged>> + Send + 'static, SubscribeError>
    {
        let stream = self.get(path).ok_or(SubscribeError::NoStream)?;
        if stream.tx.receiver_count() >= self.limits.per_stream {
            return Err(SubscribeError::TooMany(
                "this stream has too many subscribers",
            ));
        }
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.limits.total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(SubscribeError::TooMany(
                "the server has too many subscribers",
            ));
        }
        let params = Arc::new(params); // kept once, for counting and for filtering
        let mut state = lock(&stream.state);
        let rx = stream.tx.subscribe();
        // Frames numbered before now were replayed below or predate us.
        let first_live = state.next_id;
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        lock(&stream.subscribers).insert(id, params.clone());
        let mut first: Vec<Arc<Frame>> = Vec::new();
        // A cluster stream that has not caught up yet knows nothing of the
        // cluster's ids: a resuming subscriber gets everything after its id
        // as it arrives, the others what is news (see `start_at`).
        let waiting = stream.live_from.load(Ordering::Relaxed) == u64::MAX;
        let live_from = (waiting && last_event_id.is_none()).then(|| stream.live_from.clone());
        let (first_live, last_event_id) = match last_event_id {
            Some(last) if waiting => (last + 1, None),
            other => (first_live, other),
        };
        if let Some(last) = last_event_id {
            stream.metrics.replays.inc();
            let oldest = state.replay.front().map_or(state.next_id, |f| f.id);
            if last >= state.next_id || last + 1 < oldest || last < state.missed_below {
                stream.metrics.missed.inc();
                let gap = format!("{{\"lastEventId\":{last},\"firstAvailableId\":{}}}", oldest);
                first.push(Arc::new(Frame {
                    id: 0,
                    bytes: encode_frame(None, Some(MISSED_EVENT), &gap),
                    json: Bytes::from(format!("{{\"event\":\"{MISSED_EVENT}\",\"data\":{gap}}}")),
                    filter: None,
                }));
            }
            let replay_from = if last >= state.next_id { 0 } else { last + 1 };
            first.extend(
                state
                    .replay
                    .iter()
                    .filter(|f| f.id >= replay_from && f.reaches(&params))
                    .cloned(),
            );
        }
        drop(state);
        let websockets = (transport == Transport::WebSocket).then(|| {
            stream.websockets.fetch_add(1, Ordering::Relaxed);
            stream.websockets.clone()
        });
        let guard = Subscription {
            id,
            total: self.total.clone(),
            subscribers: stream.subscribers.clone(),
            websockets,
        };
        let lagged_metric = stream.metrics.lagged.clone();
        let mut lagged = false;
        let live = BroadcastStream::new(rx)
            // A frame, or `Lagged`: a whole ring behind, or at a cell emptied
            // for being more than `lag_bytes` behind.
            .map(|item| match item {
                Ok(cell) => cell.load_full().ok_or(Lagged),
                Err(BroadcastStreamRecvError::Lagged(_)) => Err(Lagged),
            })
            .take_while(move |item| {
                // Let the one `Lagged` through, then end.
                let keep = !lagged;
                if item.is_err() && !lagged {
                    lagged_metric.inc();
                    tracing::info!("disconnecting a subscriber that fell too far behind");
                    lagged = true;
                }
                futures_util::future::ready(keep)
            })
            .filter_map(move |item| {
                let frame = match item {
                    Ok(f) => (f.id >= first_live
                        && live_from
                            .as_ref()
                            .is_none_or(|from| f.id >= from.load(Ordering::Relaxed))
                        && f.reaches(&params))
                    .then_some(Ok(f)),
                    Err(Lagged) => Some(Err(Lagged)),
                };
                futures_util::future::ready(frame)
            });
        Ok(futures_util::stream::iter(first.into_iter().map(Ok))
            .chain(live)
            .map(move |frame| {
                let _ = &guard; // lives as long as the subscription
                frame
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(limits: HubLimits) -> Hub {
        let hub = Hub::new(limits);
        hub.ensure("/s");
        hub
    }

    fn send(hub: &Hub, data: &str) -> usize {
        hub.broadcast("/s", data, vec![]).unwrap()
    }

    async fn take(s: &mut (impl Stream<Item = Bytes> + Unpin), n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(String::from_utf8(s.next().await.unwrap().to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn frames_carry_id_event_and_data() {
        assert_eq!(
            &encode_frame(Some(7), None, "{\"a\":1}")[..],
            b"id: 7\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &encode_frame(Some(1), None, "a\nb")[..],
            b"id: 1\ndata: a\ndata: b\n\n"
        );
        assert_eq!(
            &encode_frame(None, Some("missed"), "{}")[..],
            b"event: missed\ndata: {}\n\n"
        );
    }

    #[test]
    fn carriage_returns_cannot_start_fields() {
        assert_eq!(
            &encode_frame(Some(1), None, "a\rid: 9\r\nevent: x\n\rretry: 1")[..],
            b"id: 1\ndata: a\ndata: id: 9\ndata: event: x\ndata: \ndata: retry: 1\n\n"
        );
    }

    #[test]
    fn a_frame_bigger_than_the_replay_bytes_is_not_kept() {
        let hub = hub(HubLimits {
            replay_bytes: 64,
            ..HubLimits::default()
        });
        send(&hub, "small");
        send(&hub, &"x".repeat(100));
        let stream = hub.get("/s").unwrap();
        let state = lock(&stream.state);
        assert_eq!((state.replay.len(), state.replay_bytes), (0, 0));
    }

    #[tokio::test]
    async fn a_subscriber_too_many_bytes_behind_is_dropped_and_frees_them() {
        let hub = hub(HubLimits {
            lag_bytes: 10_000,
            ..HubLimits::default()
        });
        let mut slow = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        let big = "y".repeat(4000);
        for _ in 0..10 {
            send(&hub, &big);
        }
        // Wait for the fan-out thread: the newest frame is in the ring.
        let stream = hub.get("/s").unwrap();
        for _ in 0..500 {
            if stream.tx.len() == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(lock(&stream.window).bytes <= 10_000 + 4100);
        assert!(
            slow.next().await.is_none(),
            "cut once it reaches an emptied frame"
        );
    }

    #[tokio::test]
    async fn broadcast_reaches_subscribers_in_order_and_counts_them() {
        let hub = Hub::new(HubLimits::default());
        assert_eq!(hub.broadcast("/s", "1", vec![]), None);
        hub.ensure("/s");
        assert_eq!(send(&hub, "1"), 0);
        let mut a = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        let b = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        assert_eq!(
            (hub.subscriber_count("/s"), hub.total_subscribers()),
            (2, 2)
        );
        assert_eq!(send(&hub, "2"), 2);
        assert_eq!(take(&mut a, 1).await, ["id: 2\ndata: 2\n\n"]);
        drop(b);
        assert_eq!(
            (hub.subscriber_count("/s"), hub.total_subscribers()),
            (1, 1)
        );
        hub.retain(|_| false);
        assert!(
            a.next().await.is_none(),
            "removing the stream ends subscriptions"
        );
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_dropped() {
        let hub = hub(HubLimits {
            lag: 4,
            ..HubLimits::default()
        });
        let mut slow = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        // A receiver of our own sees when the fan-out thread has put the last
        // frame in the ring (it lags too, and skips ahead).
        let mut probe = hub.get("/s").unwrap().tx.subscribe();
        for i in 1..=10 {
            send(&hub, &i.to_string());
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, probe.recv()).await {
                Ok(Ok(cell)) if cell.load().as_ref().is_some_and(|f| f.id == 10) => break,
                Ok(_) => {}
                Err(_) => panic!("the fan-out thread never delivered frame 10"),
            }
        }
        assert!(slow.next().await.is_none());
        drop(slow); // as hyper drops a finished body
        assert_eq!(hub.total_subscribers(), 0);
    }

    #[tokio::test]
    async fn reconnecting_replays_exactly_what_was_missed() {
        let hub = hub(HubLimits::default());
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
        let hub = hub(HubLimits {
            replay_messages: 3,
            ..HubLimits::default()
        });
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

    #[tokio::test]
    async fn filters_pick_subscribers_by_their_parameters() {
        let hub = hub(HubLimits::default());
        let room = |r: &str| vec![("room".to_string(), r.to_string())];
        let mut r1 = Box::pin(hub.subscribe("/s", None, room("1")).unwrap());
        let mut r2 = Box::pin(hub.subscribe("/s", None, room("2")).unwrap());
        assert_eq!(hub.broadcast("/s", "for-1", room("1")), Some(1));
        assert_eq!(hub.broadcast("/s", "for-all", vec![]), Some(2));
        assert_eq!(
            take(&mut r1, 2).await,
            ["id: 1\ndata: for-1\n\n", "id: 2\ndata: for-all\n\n"]
        );
        assert_eq!(take(&mut r2, 1).await, ["id: 2\ndata: for-all\n\n"]);
        let mut again = Box::pin(hub.subscribe("/s", Some(0), room("2")).unwrap());
        assert_eq!(
            take(&mut again, 1).await,
            ["id: 2\ndata: for-all\n\n"],
            "replay filters too"
        );
    }

    #[tokio::test]
    async fn frames_in_flight_are_neither_duplicated_nor_delivered_early() {
        // Subscribing right after a broadcast races the fan-out thread; the
        // outcome must be the same either way.
        for _ in 0..50 {
            let hub = hub(HubLimits::default());
            send(&hub, "1");
            let mut fresh = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
            let mut replaying = Box::pin(hub.subscribe("/s", Some(0), vec![]).unwrap());
            send(&hub, "2");
            assert_eq!(take(&mut fresh, 1).await, ["id: 2\ndata: 2\n\n"]);
            assert_eq!(
                take(&mut replaying, 2).await,
                ["id: 1\ndata: 1\n\n", "id: 2\ndata: 2\n\n"]
            );
            send(&hub, "3");
            assert_eq!(take(&mut replaying, 1).await, ["id: 3\ndata: 3\n\n"]);
        }
    }

    #[tokio::test]
    async fn websocket_text_rides_beside_the_sse_frame() {
        assert_eq!(
            &encode_json(Some(3), "{\"a\":1}")[..],
            b"{\"id\":3,\"data\":{\"a\":1}}"
        );
        assert_eq!(&encode_json(None, "\"x\"")[..], b"{\"data\":\"x\"}");
        let hub = hub(HubLimits {
            replay_messages: 1,
            ..HubLimits::default()
        });
        send(&hub, "1");
        send(&hub, "2");
        let mut ws = Box::pin(
            hub.subscribe_frames("/s", Some(0), vec![], Transport::WebSocket)
                .unwrap(),
        );
        assert_eq!(
            (hub.subscriber_count("/s"), hub.websocket_count("/s")),
            (1, 1)
        );
        let missed = ws.next().await.unwrap().unwrap();
        assert_eq!(
            &missed.json[..],
            b"{\"event\":\"missed\",\"data\":{\"lastEventId\":0,\"firstAvailableId\":2}}"
        );
        let frame = ws.next().await.unwrap().unwrap();
        assert_eq!(
            (&frame.json[..], &frame.bytes[..]),
            (&b"{\"id\":2,\"data\":2}"[..], &b"id: 2\ndata: 2\n\n"[..])
        );
        drop(ws);
        assert_eq!(hub.websocket_count("/s"), 0);
    }

    #[test]
    fn subscriber_caps() {
        let hub = hub(HubLimits {
            per_stream: 2,
            total: 3,
            ..HubLimits::default()
        });
        hub.ensure("/t");
        let _a = hub.subscribe("/s", None, vec![]).unwrap();
        let _b = hub.subscribe("/s", None, vec![]).unwrap();
        assert!(matches!(
            hub.subscribe("/s", None, vec![]),
            Err(SubscribeError::TooMany(_))
        ));
        let _c = hub.subscribe("/t", None, vec![]).unwrap();
        assert!(matches!(
            hub.subscribe("/t", None, vec![]),
            Err(SubscribeError::TooMany(_))
        ));
        assert!(matches!(
            hub.subscribe("/nope", None, vec![]),
            Err(SubscribeError::NoStream)
        ));
    }
}

#[cfg(test)]
mod cluster_tests {
    //! The hub's side of cluster mode: messages numbered elsewhere.
    use super::*;

    fn hub() -> Hub {
        let hub = Hub::new(HubLimits {
            replay_messages: 3,
            ..HubLimits::default()
        });
        hub.ensure("/s");
        hub
    }

    async fn next(s: &mut (impl Stream<Item = Bytes> + Unpin)) -> String {
        String::from_utf8(s.next().await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn delivered_messages_go_in_id_order_only() {
        let hub = hub();
        let mut live = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        assert_eq!(hub.deliver("/s", 1, "1", vec![]), Delivered::Done);
        assert_eq!(hub.deliver("/s", 1, "1", vec![]), Delivered::Skipped);
        assert_eq!(hub.deliver("/s", 3, "3", vec![]), Delivered::Gap(2));
        assert_eq!(hub.deliver("/s", 2, "2", vec![]), Delivered::Done);
        assert_eq!(hub.deliver("/nope", 9, "9", vec![]), Delivered::Done);
        assert_eq!(next(&mut live).await, "id: 1\ndata: 1\n\n");
        assert_eq!(next(&mut live).await, "id: 2\ndata: 2\n\n");
        assert_eq!(hub.next_id("/s"), Some(3));
    }

    struct Refuse;
    impl Publisher for Refuse {
        fn publish(
            &self,
            _: &str,
            _: &str,
            _: &Params,
            floor: u64,
            _: Settle,
        ) -> Result<(), String> {
            Err(format!("down (floor {floor})"))
        }
    }

    #[tokio::test]
    async fn catching_up_sends_news_to_fresh_subscribers_and_more_to_resuming_ones() {
        let hub = Hub::new(HubLimits::default());
        hub.use_publisher(Arc::new(Refuse));
        hub.ensure("/s");
        assert!(!hub.caught_up("/s"));
        // Subscribed before the node reached the cluster: one fresh, one resuming from 5.
        let mut fresh = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        let mut resuming = Box::pin(hub.subscribe("/s", Some(5), vec![]).unwrap());
        // The cluster's log holds 4..=8; 7 and 8 came after the stream was created here.
        assert!(hub.start_at("/s", 4, 7));
        assert!(!hub.start_at("/s", 1, 1), "once");
        for i in 4..=8 {
            assert_eq!(
                hub.deliver("/s", i, &i.to_string(), vec![]),
                Delivered::Done
            );
        }
        assert_eq!(
            next(&mut fresh).await,
            "id: 7\ndata: 7\n\n",
            "history is not news"
        );
        assert_eq!(next(&mut resuming).await, "id: 6\ndata: 6\n\n");
        assert_eq!(next(&mut resuming).await, "id: 7\ndata: 7\n\n");
        // A reconnect later is replayed from the buffer as usual.
        let mut again = Box::pin(hub.subscribe("/s", Some(6), vec![]).unwrap());
        assert_eq!(next(&mut again).await, "id: 7\ndata: 7\n\n");
        let mut late = Box::pin(hub.subscribe("/s", None, vec![]).unwrap());
        hub.deliver("/s", 9, "9", vec![]);
        assert_eq!(next(&mut late).await, "id: 9\ndata: 9\n\n");
    }

    #[tokio::test]
    async fn a_restart_makes_older_ids_missed() {
        let hub = hub();
        for i in 1..=4 {
            hub.deliver("/s", i, &i.to_string(), vec![]);
        }
        hub.restart_at("/s", 5);
        hub.deliver("/s", 5, "5", vec![]);
        let mut old = Box::pin(hub.subscribe("/s", Some(4), vec![]).unwrap());
        assert_eq!(
            next(&mut old).await,
            "event: missed\ndata: {\"lastEventId\":4,\"firstAvailableId\":5}\n\n"
        );
        assert_eq!(next(&mut old).await, "id: 5\ndata: 5\n\n");
    }

    #[test]
    fn a_publisher_numbers_instead_of_the_hub() {
        let hub = hub();
        hub.deliver("/s", 1, "1", vec![]);
        hub.use_publisher(Arc::new(Refuse));
        let settle = || -> Settle { Box::new(|_| {}) };
        assert_eq!(
            hub.send("/s", "x", vec![], settle).err().unwrap(),
            "down (floor 1)"
        );
        assert!(matches!(hub.send("/nope", "x", vec![], settle), Ok(None)));
        assert_eq!(hub.next_id("/s"), Some(2), "nothing numbered here");
    }
}
