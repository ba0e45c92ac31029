//! Prometheus metrics: every metric's name, help and labels in one place, the
//! one-line helpers the rest of the host calls, and the text exposition served
//! at `GET /_engine/metrics`.
//!
//! Each `App` has its own registry (so several engines in one process, as in
//! the tests, do not mix). Counters are bumped where things happen; gauges that
//! describe the current state (scripts by status, queue depth, subscribers) are
//! read from the app at scrape time instead of being kept in step. Every label
//! value is bounded: script file names, route patterns (never raw paths),
//! registered stream paths, and fixed sets of methods, kinds and outcomes.
//!
//! The crate is `prometheus` (tikv): per-instance registries, label lookups
//! without allocating, and the classic text format that `promtool check
//! metrics` reads (`prometheus-client` writes OpenMetrics, whose `_total`
//! sample names promtool 2.42 rejects; `metrics-exporter-prometheus` wants a
//! process-global recorder).

use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::limits::Limit;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label value for requests that matched no route (and engine pages that do not exist).
pub const UNMATCHED: &str = "_none";
/// The `script` label value of the engine's own pages (`/_engine/...`).
pub const ENGINE: &str = "_engine";

/// Request duration buckets, in seconds: 0.5 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Storage commit buckets, in seconds: 0.1 ms (in memory) to 2.5 s (a stalled disk).
const COMMIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
];

/// Methods kept as label values; anything else is counted as `OTHER`.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// Why a script's new version did or did not replace the old one.
#[derive(Clone, Copy, Debug)]
pub enum Reload {
    /// Loaded and serving.
    Ok,
    /// Failed to load (syntax error, exception or limit in its top level).
    Error,
    /// Loaded, but would have lost routes to another script; not installed.
    Rejected,
    /// The file was removed and the script unloaded.
    Removed,
}

impl Reload {
    fn label(self) -> &'static str {
        match self {
            Reload::Ok => "ok",
            Reload::Error => "error",
            Reload::Rejected => "rejected",
            Reload::Removed => "removed",
        }
    }
}

/// Every limit a call can trip, each counted under its `limit_kind`.
const LIMITS: [Limit; 4] = [Limit::Cpu, Limit::Time, Limit::Memory, Limit::Stack];

/// What a limit trip is called in the `kind` label.
pub fn limit_kind(limit: Limit) -> &'static str {
    match limit {
        Limit::Cpu => "cpu",
        Limit::Time => "time",
        Limit::Memory => "memory",
        Limit::Stack => "stack",
    }
}

/// The `status_class` label: "2xx", "4xx"...
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// A method as a bounded label value: a standard one, one the matched route
/// registered (`registered`), or `OTHER`.
pub fn method_label(method: &str, registered: bool) -> &str {
    if registered || METHODS.contains(&method) {
        method
    } else {
        "OTHER"
    }
}

/// Counter handles of one script, resolved once so its actor bumps plain atomics.
#[derive(Clone)]
pub struct ScriptMetrics {
    pub fuel: IntCounter,
    pub restarts: IntCounter,
    /// Calls stopped, by the limit that stopped them (every one of `LIMITS`).
    trips: [(Limit, IntCounter); LIMITS.len()],
    overload: IntCounter,
}

impl ScriptMetrics {
    /// A call of this script was stopped by `limit`.
    pub fn limit(&self, limit: Limit) {
        if let Some((_, trips)) = self.trips.iter().find(|(l, _)| *l == limit) {
            trips.inc();
        }
    }

    /// A request was refused because the script's queue was full.
    pub fn overload(&self) {
        self.overload.inc();
    }

    /// Fuel used by one call, when fuel is metered.
    pub fn fuel(&self, used: Option<u64>) {
        if let Some(used) = used {
            self.fuel.inc_by(used);
        }
    }
}

/// Counter handles of one stream, resolved when the hub creates it.
#[derive(Clone)]
pub struct StreamMetrics {
    pub messages: IntCounter,
    pub bytes: IntCounter,
    pub lagged: IntCounter,
    pub replays: IntCounter,
    pub missed: IntCounter,
}

impl StreamMetrics {
    /// One message broadcast: `frame_bytes` long, handed to `reached` subscribers.
    pub fn sent(&self, frame_bytes: usize, reached: usize) {
        self.messages.inc();
        self.bytes
            .inc_by((frame_bytes as u64).saturating_mul(reached as u64));
    }
}

/// A storage call a script made, as the `op` label names it.
#[derive(Clone, Copy, Debug)]
pub enum StorageOp {
    Get,
    Set,
    Delete,
    List,
    Clear,
}

/// Why a storage call threw, as the `kind` label names it (a `TypeError`, a
/// `RangeError`, or a failure: quota, I/O, backend down).
#[derive(Clone, Copy, Debug)]
pub enum StorageFailure {
    Type,
    Range,
    Failed,
}

/// Counter handles of one storage namespace, resolved when it is opened.
#[derive(Clone)]
pub struct StorageMetrics {
    get: IntCounter,
    set: IntCounter,
    delete: IntCounter,
    list: IntCounter,
    clear: IntCounter,
    type_errors: IntCounter,
    range_errors: IntCounter,
    failures: IntCounter,
    committed: IntCounter,
    commit_failed: IntCounter,
    discarded: IntCounter,
    commit_seconds: Histogram,
}

impl StorageMetrics {
    /// Handles registered nowhere: for storage opened without an engine
    /// (`aiwebengine storage` on a stopped data dir, unit tests).
    pub fn detached() -> StorageMetrics {
        let c = || IntCounter::new("detached", "detached").expect("a valid counter");
        StorageMetrics {
            get: c(),
            set: c(),
            delete: c(),
            list: c(),
            clear: c(),
            type_errors: c(),
            range_errors: c(),
            failures: c(),
            committed: c(),
            commit_failed: c(),
            discarded: c(),
            commit_seconds: Histogram::with_opts(HistogramOpts::new("detached", "detached"))
                .expect("a valid histogram"),
        }
    }

    /// One call of the script API.
    pub fn op(&self, op: StorageOp) {
        match op {
            StorageOp::Get => &self.get,
            StorageOp::Set => &self.set,
            StorageOp::Delete => &self.delete,
            StorageOp::List => &self.list,
            StorageOp::Clear => &self.clear,
        }
        .inc();
    }

    /// A call refused with a `TypeError`, a `RangeError`, or failed (quota, I/O).
    pub fn error(&self, failure: impl Into<StorageFailure>) {
        match failure.into() {
            StorageFailure::Type => &self.type_errors,
            StorageFailure::Range => &self.range_errors,
            StorageFailure::Failed => &self.failures,
        }
        .inc();
    }

    /// A turn's writes reached the backend's acknowledgement after `elapsed`.
    pub fn commit(&self, ok: bool, elapsed: Duration) {
        match ok {
            true => self.committed.inc(),
            false => self.commit_failed.inc(),
        }
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    /// A turn that wrote something failed, and its writes were dropped.
    pub fn discarded(&self) {
        self.discarded.inc();
    }
}

/// The state gauges, read at scrape time.
pub struct Snapshot {
    /// (status, scripts): "ok", "error", "conflict".
    pub scripts_by_status: Vec<(&'static str, i64)>,
    /// (script, requests waiting in its queue).
    pub queue_depths: Vec<(String, i64)>,
    /// (stream path, subscribers).
    pub subscribers: Vec<(String, i64)>,
    /// (storage namespace, keys, bytes), durable data.
    pub storage: Vec<(String, i64, i64)>,
    /// Cluster mode: (Redis reachable, nodes alive); `None` on a single node.
    pub cluster: Option<(bool, i64)>,
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    limit_trips: IntCounterVec,
    restarts: IntCounterVec,
    fuel: IntCounterVec,
    reloads: IntCounterVec,
    stream_messages: IntCounterVec,
    stream_bytes: IntCounterVec,
    lag_disconnects: IntCounterVec,
    replays: IntCounterVec,
    missed: IntCounterVec,
    write_stalls: IntCounter,
    queue_depth: IntGaugeVec,
    scripts: IntGaugeVec,
    subscribers: IntGaugeVec,
    storage_ops: IntCounterVec,
    storage_errors: IntCounterVec,
    storage_commits: IntCounterVec,
    storage_commit_seconds: HistogramVec,
    storage_keys: IntGaugeVec,
    storage_bytes: IntGaugeVec,
    cluster_up: IntGaugeVec,
    cluster_nodes: IntGaugeVec,
    cluster_messages: IntCounterVec,
    /// One scrape at a time: state gauges are reset and refilled for each.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds and registers a metric; the names and labels below are constants,
/// so a failure is a bug in this file (caught by its tests).
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("a valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(format!("aiwebengine_{name}"), help), labels),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(format!("aiwebengine_{name}"), help), labels),
    )
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let build_info = gauge(
            &r,
            "build_info",
            "Always 1; the version label says which aiwebengine this is.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            requests: counter(
                &r,
                "http_requests_total",
                "HTTP requests answered, by script, route pattern, method and status class.",
                &["script", "route", "method", "status_class"],
            ),
            request_seconds: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "aiwebengine_http_request_duration_seconds",
                        "Time from request to response head, by script and route pattern.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["script", "route"],
                ),
            ),
            limit_trips: counter(
                &r,
                "script_limit_trips_total",
                "Calls stopped by a limit (cpu, time, memory, stack) or requests refused because the script's queue was full (overload).",
                &["script", "kind"],
            ),
            restarts: counter(
                &r,
                "script_restarts_total",
                "Script instances re-created after a trap threw the previous one away.",
                &["script"],
            ),
            fuel: counter(
                &r,
                "script_fuel_consumed_total",
                "Fuel (about one unit per wasm instruction) used by a script's calls.",
                &["script"],
            ),
            reloads: counter(
                &r,
                "script_reloads_total",
                "Script (re)loads by outcome: ok, error, rejected (would lose routes), removed.",
                &["outcome"],
            ),
            stream_messages: counter(
                &r,
                "stream_messages_total",
                "Messages broadcast on a stream.",
                &["stream"],
            ),
            stream_bytes: counter(
                &r,
                "stream_sent_bytes_total",
                "Bytes of SSE frames handed to a stream's subscribers (frame size times subscribers reached).",
                &["stream"],
            ),
            lag_disconnects: counter(
                &r,
                "stream_lag_disconnects_total",
                "Subscribers disconnected for falling too far behind.",
                &["stream"],
            ),
            replays: counter(
                &r,
                "stream_replays_total",
                "Subscriptions resumed with Last-Event-ID (replayed from the buffer).",
                &["stream"],
            ),
            missed: counter(
                &r,
                "stream_missed_total",
                "`missed` events sent: a resuming subscriber's id was older than the buffer or unknown.",
                &["stream"],
            ),
            write_stalls: register(
                &r,
                IntCounter::new(
                    "aiwebengine_connection_write_stalls_total",
                    "Connections closed because the peer took no data for the write-stall limit.",
                ),
            ),
            queue_depth: gauge(
                &r,
                "script_queue_depth",
                "Requests waiting in a script's queue.",
                &["script"],
            ),
            scripts: gauge(
                &r,
                "scripts",
                "Script files known to the engine, by status (ok, error, conflict).",
                &["status"],
            ),
            subscribers: gauge(
                &r,
                "stream_subscribers",
                "Subscribers connected to a stream.",
                &["stream"],
            ),
            storage_ops: counter(
                &r,
                "storage_operations_total",
                "Storage calls by scripts, by namespace and op (get, set, delete, list, clear; increment is a get and a set).",
                &["namespace", "op"],
            ),
            storage_errors: counter(
                &r,
                "storage_errors_total",
                "Storage calls that threw: kind type (TypeError), range (RangeError) or failed (quota, I/O, backend down).",
                &["namespace", "kind"],
            ),
            storage_commits: counter(
                &r,
                "storage_commits_total",
                "Turns with writes, by outcome: ok (durable), failed (the backend refused or failed), discarded (the turn failed; nothing written).",
                &["namespace", "outcome"],
            ),
            storage_commit_seconds: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "aiwebengine_storage_commit_duration_seconds",
                        "Time from a turn's end to its writes being durable (what its responses wait for).",
                    )
                    .buckets(COMMIT_BUCKETS.to_vec()),
                    &["namespace"],
                ),
            ),
            storage_keys: gauge(
                &r,
                "storage_keys",
                "Durable keys in a storage namespace.",
                &["namespace"],
            ),
            storage_bytes: gauge(
                &r,
                "storage_bytes",
                "Durable bytes (keys plus values) in a storage namespace, what the quota counts.",
                &["namespace"],
            ),
            cluster_up: gauge(
                &r,
                "cluster_redis_up",
                "Cluster mode: 1 while this node reaches the cluster's Redis, else 0.",
                &[],
            ),
            cluster_nodes: gauge(
                &r,
                "cluster_nodes",
                "Cluster mode: nodes alive at the last heartbeat, this one included.",
                &[],
            ),
            cluster_messages: counter(
                &r,
                "cluster_messages_total",
                "Cluster mode: stream messages this node sent through Redis, by outcome: published, failed (lost after queueing; the turn's clients got 503), refused (Redis known down; the send threw).",
                &["outcome"],
            ),
            registry: r,
            scrape: Mutex::new(()),
        }
    }

    /// One answered HTTP request: `script` and `route` (pattern) are bounded
    /// label values (or [`UNMATCHED`]), `method` comes from [`method_label`].
    /// `elapsed` is left out when the duration means nothing (a subscription).
    pub fn request(
        &self,
        script: &str,
        route: &str,
        method: &str,
        status: u16,
        elapsed: Option<Duration>,
    ) {
        self.requests
            .with_label_values(&[script, route, method, status_class(status)])
            .inc();
        if let Some(elapsed) = elapsed {
            self.request_seconds
                .with_label_values(&[script, route])
                .observe(elapsed.as_secs_f64());
        }
    }

    /// The counters of one script, for its actor and queue.
    pub fn script(&self, name: &str) -> ScriptMetrics {
        let trips = |kind: &str| self.limit_trips.with_label_values(&[name, kind]);
        ScriptMetrics {
            fuel: self.fuel.with_label_values(&[name]),
            restarts: self.restarts.with_label_values(&[name]),
            trips: LIMITS.map(|limit| (limit, trips(limit_kind(limit)))),
            overload: trips("overload"),
        }
    }

    /// The counters of one stream.
    pub fn stream(&self, path: &str) -> StreamMetrics {
        StreamMetrics {
            messages: self.stream_messages.with_label_values(&[path]),
            bytes: self.stream_bytes.with_label_values(&[path]),
            lagged: self.lag_disconnects.with_label_values(&[path]),
            replays: self.replays.with_label_values(&[path]),
            missed: self.missed.with_label_values(&[path]),
        }
    }

    /// The handles of one storage namespace.
    pub fn storage(&self, namespace: &str) -> StorageMetrics {
        let op = |op: &str| self.storage_ops.with_label_values(&[namespace, op]);
        let error = |kind: &str| self.storage_errors.with_label_values(&[namespace, kind]);
        let commit = |outcome: &str| {
            self.storage_commits
                .with_label_values(&[namespace, outcome])
        };
        StorageMetrics {
            get: op("get"),
            set: op("set"),
            delete: op("delete"),
            list: op("list"),
            clear: op("clear"),
            type_errors: error("type"),
            range_errors: error("range"),
            failures: error("failed"),
            committed: commit("ok"),
            commit_failed: commit("failed"),
            discarded: commit("discarded"),
            commit_seconds: self.storage_commit_seconds.with_label_values(&[namespace]),
        }
    }

    pub fn reload(&self, outcome: Reload) {
        self.reloads.with_label_values(&[outcome.label()]).inc();
    }

    /// Counts cluster stream messages by outcome (`published`, `failed`, `refused`).
    pub fn cluster_messages(&self, outcome: &str, n: u64) {
        self.cluster_messages
            .with_label_values(&[outcome])
            .inc_by(n);
    }

    /// The counter of connections closed for a stalled peer.
    pub fn write_stalls(&self) -> IntCounter {
        self.write_stalls.clone()
    }

    /// The text exposition, with the state gauges set from `snapshot`.
    pub fn render(&self, snapshot: Snapshot) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.scripts.reset();
        for status in ["ok", "error", "conflict"] {
            self.scripts.with_label_values(&[status]).set(0);
        }
        for (status, n) in snapshot.scripts_by_status {
            self.scripts.with_label_values(&[status]).add(n);
        }
        set_all(&self.queue_depth, snapshot.queue_depths);
        set_all(&self.subscribers, snapshot.subscribers);
        self.storage_keys.reset();
        self.storage_bytes.reset();
        if let Some((up, nodes)) = snapshot.cluster {
            self.cluster_up
                .with_label_values::<&str>(&[])
                .set(i64::from(up));
            self.cluster_nodes.with_label_values::<&str>(&[]).set(nodes);
        }
        for (namespace, keys, bytes) in snapshot.storage {
            self.storage_keys.with_label_values(&[&namespace]).set(keys);
            self.storage_bytes
                .with_label_values(&[&namespace])
                .set(bytes);
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| {
                tracing::error!("encoding the metrics failed: {e}");
                String::new()
            })
    }
}

/// Replaces every series of `gauge` with `values` (series of gone scripts or
/// streams disappear).
fn set_all(gauge: &IntGaugeVec, values: Vec<(String, i64)>) {
    gauge.reset();
    for (label, value) in values {
        gauge.with_label_values(&[label.as_str()]).set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
    }

    #[test]
    fn requests_are_labelled_by_route_pattern_and_status_class() {
        let m = Metrics::new();
        let ms = Some(Duration::from_millis(3));
        m.request("a.js", "/items/:id", method_label("GET", true), 200, ms);
        m.request("a.js", "/items/:id", method_label("GET", false), 204, ms);
        m.request(UNMATCHED, UNMATCHED, method_label("BREW", false), 404, None);
        assert_eq!(method_label("BREW", true), "BREW");
        let text = m.render(Snapshot {
            scripts_by_status: vec![("ok", 1)],
            queue_depths: vec![("a.js".into(), 0)],
            subscribers: vec![],
            storage: vec![],
            cluster: None,
        });
        assert_eq!(
            sample(
                &text,
                r#"aiwebengine_http_requests_total{method="GET",route="/items/:id",script="a.js",status_class="2xx"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"aiwebengine_http_requests_total{method="OTHER",route="_none",script="_none",status_class="4xx"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"aiwebengine_http_request_duration_seconds_count{route="/items/:id",script="a.js"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"aiwebengine_scripts{status="error"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn cluster_gauges_and_messages() {
        let m = Metrics::new();
        m.cluster_messages("published", 2);
        m.cluster_messages("refused", 1);
        let text = m.render(Snapshot {
            scripts_by_status: vec![],
            queue_depths: vec![],
            subscribers: vec![],
            storage: vec![],
            cluster: Some((true, 3)),
        });
        assert_eq!(
            sample(&text, "aiwebengine_cluster_redis_up "),
            Some(1.0),
            "{text}"
        );
        assert_eq!(sample(&text, "aiwebengine_cluster_nodes "), Some(3.0));
        assert_eq!(
            sample(
                &text,
                r#"aiwebengine_cluster_messages_total{outcome="published"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"aiwebengine_cluster_messages_total{outcome="refused"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn gauges_of_gone_scripts_disappear() {
        let m = Metrics::new();
        let snap = |names: &[&str]| Snapshot {
            scripts_by_status: vec![],
            queue_depths: names.iter().map(|n| (n.to_string(), 0)).collect(),
            subscribers: vec![],
            storage: vec![],
            cluster: None,
        };
        assert!(m.render(snap(&["a.js"])).contains(r#"script="a.js""#));
        assert!(!m.render(snap(&["b.js"])).contains(r#"script="a.js""#));
    }

    #[test]
    fn script_and_stream_handles_count() {
        let m = Metrics::new();
        let s = m.script("a.js");
        s.limit(Limit::Cpu);
        s.overload();
        s.fuel(Some(10));
        s.fuel(None);
        let st = m.stream("/feed");
        st.sent(20, 3);
        m.reload(Reload::Ok);
        let text = m.render(Snapshot {
            scripts_by_status: vec![],
            queue_depths: vec![],
            subscribers: vec![],
            storage: vec![],
            cluster: None,
        });
        for (line, value) in [
            (
                r#"aiwebengine_script_limit_trips_total{kind="cpu",script="a.js"}"#,
                1.0,
            ),
            (
                r#"aiwebengine_script_limit_trips_total{kind="overload",script="a.js"}"#,
                1.0,
            ),
            (
                r#"aiwebengine_script_fuel_consumed_total{script="a.js"}"#,
                10.0,
            ),
            (
                r#"aiwebengine_stream_sent_bytes_total{stream="/feed"}"#,
                60.0,
            ),
            (r#"aiwebengine_script_reloads_total{outcome="ok"}"#, 1.0),
        ] {
            assert_eq!(sample(&text, line), Some(value), "{line} in\n{text}");
        }
    }

    #[test]
    fn storage_handles_count_ops_errors_and_commits() {
        let m = Metrics::new();
        let s = m.storage("chat");
        s.op(StorageOp::Get);
        s.op(StorageOp::Get);
        s.op(StorageOp::Set);
        s.error(&crate::storage::StorageError::Range("too big".into()));
        s.commit(true, Duration::from_micros(300));
        s.commit(false, Duration::from_millis(2));
        s.discarded();
        let text = m.render(Snapshot {
            scripts_by_status: vec![],
            queue_depths: vec![],
            subscribers: vec![],
            storage: vec![("chat".into(), 3, 120)],
            cluster: None,
        });
        for (name, labels, value) in [
            ("operations_total", r#"namespace="chat",op="get""#, 2.0),
            ("operations_total", r#"namespace="chat",op="set""#, 1.0),
            ("errors_total", r#"kind="range",namespace="chat""#, 1.0),
            ("commits_total", r#"namespace="chat",outcome="ok""#, 1.0),
            ("commits_total", r#"namespace="chat",outcome="failed""#, 1.0),
            (
                "commits_total",
                r#"namespace="chat",outcome="discarded""#,
                1.0,
            ),
            ("commit_duration_seconds_count", r#"namespace="chat""#, 2.0),
            ("keys", r#"namespace="chat""#, 3.0),
            ("bytes", r#"namespace="chat""#, 120.0),
        ] {
            let line = format!("aiwebengine_storage_{name}{{{labels}}}");
            assert_eq!(sample(&text, &line), Some(value), "{line} in\n{text}");
        }
        // Detached handles count without a registry behind them.
        StorageMetrics::detached().op(StorageOp::Clear);
    }
}
