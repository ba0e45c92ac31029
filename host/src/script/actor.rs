//! The task behind a script: it owns the script's long-lived wasm instance
//! (so JS globals persist between requests) and runs everything that touches
//! it — requests, timer callbacks, fetch completions, WebSocket events,
//! re-instantiation — one at a time, each call a "turn".
//!
//! It is a tokio task, and a guest call runs on the worker thread that polls
//! it: a request's connection task queues the job and awaits its reply, the
//! queue wakes this task on that same worker, and the reply wakes the
//! connection task there again — no thread hand-off per request. Guest code
//! may run long (up to its limits); wasmtime calls it on a fiber that yields
//! the worker at every epoch tick (`limits::watch`), so a busy script shares
//! its worker instead of holding it, and different scripts run in parallel on
//! different workers.
//!
//! The loop waits for the next job, finished fetch or deadline: the guest's
//! earliest timer, a deferred request's time limit, or the end of a restart
//! backoff. A due timer runs one callback per turn, so a burst of timers and
//! a queue of requests take turns instead of one starving the other.

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tokio::sync::oneshot;
use tracing::Instrument as _;
use wasmtime::Store;

use super::error::CallError;
use super::instance::{log_guest_output, Instance, Recipe};
use super::state::HostState;
use crate::accepted::Accepted;
use crate::bindings::{Handled, Request, Response, Script, WsClient, WsEvent};
use crate::fetch;
use crate::limits::{self, Limit};
use crate::sleep::sleep_until;
use crate::storage::Turn;
use crate::streams::Sink;

/// Consecutive failures after which restarts are spaced out.
const BACKOFF_AFTER: u32 = 3;
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a pending handler may wait when the per-call time limit is off.
const UNLIMITED_WAIT: Duration = Duration::from_secs(300);

pub type Reply = oneshot::Sender<Result<Response, CallError>>;

/// What the actor is queued to do, each as a turn of its own.
pub enum Job {
    Handle {
        request: Request,
        reply: Reply,
    },
    /// A WebSocket connection opened, sent a message or closed (no reply).
    WebSocket {
        /// The connection's number (`ws_clients::Client::number`).
        connection: u64,
        /// Shared with the connection: one copy of its id, path and query.
        client: Arc<WsClient>,
        /// What the connection's frames go out through.
        sink: Arc<Sink>,
        event: WsEvent,
    },
}

/// A request whose handler returned a still-pending Promise.
struct Deferred {
    reply: Reply,
    deadline: Instant,
}

/// One guest call.
enum Call<'a> {
    Handle(u64, &'a Request),
    Timer,
    Fetched(&'a fetch::Done),
    WebSocket(u64, &'a Arc<WsClient>, &'a WsEvent),
}

impl Call<'_> {
    async fn run(
        &self,
        script: &Script,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Handled> {
        match *self {
            Call::Handle(id, request) => {
                script
                    .aiwebengine_script_guest()
                    .call_handle(store, id, request)
                    .await
            }
            Call::Timer => script
                .aiwebengine_script_guest()
                .call_run_timer(store)
                .await
                .map(|()| Handled::Pending),
            Call::Fetched(done) => script
                .aiwebengine_script_fetch_events()
                .call_done(
                    store,
                    done.id,
                    done.outcome.as_ref().map_err(String::as_str),
                )
                .await
                .map(|()| Handled::Pending),
            Call::WebSocket(connection, client, event) => {
                // For `websocket.current-client`, during this call only.
                store.data_mut().ws_client = Some(client.clone());
                let called = script
                    .aiwebengine_script_websocket_events()
                    .call_on_event(&mut *store, connection, event)
                    .await;
                store.data_mut().ws_client = None;
                called.map(|()| Handled::Pending)
            }
        }
    }
}

/// A turn's worth of work, as `guarded` runs it.
enum Work {
    Handle(Request, Reply),
    WebSocket(u64, Arc<WsClient>, WsEvent),
    Fetched(fetch::Done),
    Timer,
}

/// What woke the actor.
enum Next {
    Job(Job),
    Fetched(fetch::Done),
    /// A deadline passed (or nothing did: the checks after it are cheap).
    Tick,
}

/// The actor task's state.
pub struct Actor {
    recipe: Recipe,
    /// None after a trap, until it is re-created.
    instance: Option<Instance>,
    failures: u32,
    retry_at: Option<Instant>,
    deferred: HashMap<u64, Deferred>,
    next_request_id: u64,
    /// The request the next call runs for (see `fetch::Inflight::owner`).
    owner: Option<u64>,
}

impl Actor {
    pub fn new(recipe: Recipe, instance: Instance) -> Self {
        Actor {
            recipe,
            instance: Some(instance),
            failures: 0,
            retry_at: None,
            deferred: HashMap::new(),
            next_request_id: 1,
            owner: None,
        }
    }

    /// Serves jobs and timers until every sender is gone (the script version was
    /// replaced or removed); its timers die with it.
    pub async fn run(mut self, mut jobs: Receiver<Job>) {
        let mut fetches = self.recipe.services.fetch.take_done();
        loop {
            let deadline = self.next_deadline();
            let next = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => Next::Job(job),
                    None => break,
                },
                Some(done) = next_fetch(&mut fetches) => Next::Fetched(done),
                () = sleep_until(deadline) => Next::Tick,
            };
            match next {
                Next::Job(Job::Handle { request, reply }) => {
                    let route = format!("{} {}", request.method, request.path);
                    // The turn's log lines (the script's console included) carry the request id.
                    let span = tracing::info_span!("request", request_id = %request.id);
                    self.guarded(&route, Work::Handle(request, reply))
                        .instrument(span)
                        .await
                }
                Next::Job(Job::WebSocket {
                    connection,
                    client,
                    sink,
                    event,
                }) => {
                    // What the turn sends this connection goes out after the
                    // others' copies, when the turn ends (`Sink::cork`).
                    let _corked = (!matches!(event, WsEvent::Close)).then(|| sink.cork());
                    let what = OnStream(client.clone());
                    self.guarded(&what, Work::WebSocket(connection, client, event))
                        .await
                }
                Next::Fetched(done) => self.guarded(&"fetch completion", Work::Fetched(done)).await,
                Next::Tick => {}
            }
            self.expire_deferred();
            self.guarded(&"a timer", Work::Timer).await;
        }
        tracing::debug!(script = %self.recipe.name, "script actor finished");
    }

    /// Does `work`; a panic inside it (a host bug: the guest's own failures
    /// are traps, not panics) is logged, the instance is thrown away as after
    /// a trap, and the task lives on to serve the next job. A panic while
    /// handling a request drops its reply: the client gets a 5xx.
    async fn guarded(&mut self, what: &(dyn Display + Sync), work: Work) {
        let outcome = AssertUnwindSafe(self.perform(what, work))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            self.recover(what, panic);
        }
    }

    async fn perform(&mut self, what: &(dyn Display + Sync), work: Work) {
        match work {
            Work::Handle(request, reply) => self.handle(what, request, reply).await,
            Work::WebSocket(connection, client, event) => {
                self.call(what, None, Call::WebSocket(connection, &client, &event))
                    .await
            }
            Work::Fetched(done) => self.fetch_done(done).await,
            Work::Timer => self.run_due_timer().await,
        }
    }

    fn recover(&mut self, what: &(dyn Display + Sync), panic: Box<dyn std::any::Any + Send>) {
        let panic = crate::panics::panic_message(panic.as_ref());
        tracing::error!(script = %self.recipe.name, route = %what, panic, "internal error in the script's task; restarting the script");
        self.instance = None;
        for (_, d) in self.deferred.drain() {
            let _ = d
                .reply
                .send(Err(CallError::Trap("the script was restarted".into())));
        }
        self.failed();
    }

    fn next_deadline(&self) -> Option<Instant> {
        let wakeup = match &self.instance {
            Some(instance) => instance.store.data().wakeup,
            // Without an instance, restart eagerly (after any backoff) so timers resume.
            None => Some(self.retry_at.unwrap_or_else(Instant::now)),
        };
        let deferred = self.deferred.values().map(|d| d.deadline).min();
        [wakeup, deferred].into_iter().flatten().min()
    }

    async fn handle(&mut self, route: &(dyn Display + Sync), request: Request, reply: Reply) {
        if reply.is_closed() {
            return; // the client went away while this waited in the queue
        }
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.owner = Some(id);
        self.call(route, Some((id, reply)), Call::Handle(id, &request))
            .await
    }

    /// How long request `id`'s Promise may still take: the per-call time limit
    /// from now, or longer while a fetch it awaits is running (see `fetch`).
    fn wait_deadline(&self, id: u64) -> Instant {
        let limit = self.recipe.guest.wasm.limits.timeout;
        let wait = if limit.is_zero() {
            UNLIMITED_WAIT
        } else {
            limit
        };
        let fetching = self
            .instance
            .as_ref()
            .and_then(|i| i.store.data().fetch.deadline_for(id));
        (Instant::now() + wait).max(fetching.unwrap_or_else(Instant::now))
    }

    /// A fetch finished: the guest settles its Promise in a turn of its own.
    /// A fetch of an instance since thrown away is ignored.
    async fn fetch_done(&mut self, done: fetch::Done) {
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        let Some(owner) = instance.store.data_mut().fetch.finish(done.id) else {
            return;
        };
        self.owner = owner;
        self.call(&"fetch completion", None, Call::Fetched(&done))
            .await;
        if let Some(id) = owner {
            let deadline = self.wait_deadline(id);
            if let Some(d) = self.deferred.get_mut(&id) {
                d.deadline = deadline;
            }
        }
    }

    /// Runs one due timer callback, re-creating the instance first if needed.
    async fn run_due_timer(&mut self) {
        let due = match &self.instance {
            Some(instance) => instance
                .store
                .data()
                .wakeup
                .is_some_and(|at| at <= Instant::now()),
            None => self.retry_at.is_none_or(|at| at <= Instant::now()),
        };
        if !due {
            return;
        }
        if self.instance.is_some() {
            if let Some(instance) = self.instance.as_mut() {
                instance.store.data_mut().wakeup = None; // the guest sets the next one
            }
            self.call(&"timer callback", None, Call::Timer).await;
        } else {
            let _ = self.instance().await;
        }
    }

    /// Requests whose Promise did not settle within the time limit get a 504.
    fn expire_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<u64> = self
            .deferred
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(d) = self.deferred.remove(&id) {
                tracing::warn!(script = %self.recipe.name, limit = crate::metrics::limit_kind(Limit::Time), "a handler's Promise did not settle within its time limit");
                self.recipe.services.metrics.limit(Limit::Time);
                let _ = d.reply.send(Err(CallError::Limit(Limit::Time)));
            }
        }
    }

    /// The live instance, re-created from the source if a trap threw it away;
    /// after repeated failures, not before the backoff has passed.
    async fn instance(&mut self) -> Result<&mut Instance, CallError> {
        if self.instance.is_none() {
            if let Some(wait) = self
                .retry_at
                .and_then(|at| at.checked_duration_since(Instant::now()))
            {
                return Err(CallError::Restarting(wait));
            }
            tracing::info!(script = %self.recipe.name, "re-instantiating the script (its globals start fresh)");
            self.recipe.services.metrics.restarts.inc();
            match self.recipe.instantiate().await {
                Ok(instance) => self.instance = Some(instance),
                Err(e) => {
                    tracing::error!(script = %self.recipe.name, "could not restart the script: {e}");
                    self.failed();
                    return Err(CallError::Trap(format!(
                        "could not restart the script: {e}"
                    )));
                }
            }
        }
        Ok(self.instance.as_mut().expect("instance exists"))
    }

    fn failed(&mut self) {
        self.failures += 1;
        if self.failures >= BACKOFF_AFTER {
            let wait = Duration::from_millis(100 << (self.failures - BACKOFF_AFTER).min(6))
                .min(BACKOFF_MAX);
            tracing::warn!(script = %self.recipe.name, failures = self.failures, "failing repeatedly; next restart in {wait:?}");
            self.retry_at = Some(Instant::now() + wait);
        }
    }

    /// Runs one guest call — a turn — under the limits: the handler for
    /// `request` (its id and reply), a timer callback, a fetch completion or a
    /// WebSocket event. The turn's answers (the request's, and those of deferred
    /// requests it settled) are sent once its storage writes are durable; when
    /// anything in it failed, its writes are discarded instead. A trap — a
    /// tripped limit or a crash — also throws the instance away (it may be
    /// corrupt mid-call), and with it the requests still waiting on it.
    async fn call(
        &mut self,
        // The route ("GET /chat"), "timer callback"..., for the log.
        what: &(dyn Display + Sync),
        request: Option<(u64, Reply)>,
        call: Call<'_>,
    ) {
        let limits = self.recipe.guest.wasm.limits;
        let owner = self.owner.take();
        if let Err(e) = self.instance().await {
            if let Some((_, reply)) = request {
                let _ = reply.send(Err(e));
            }
            return;
        }
        let instance = self.instance.as_mut().expect("instance exists");
        instance.store.data_mut().fetch.owner = owner;
        let namespace = instance.store.data().storage.clone();
        let turn = namespace.begin().await;
        limits::arm(&mut instance.store, &limits);
        let result = call.run(&instance.bindings, &mut instance.store).await;
        let fuel_used = limits::fuel_used(&instance.store, &limits);
        self.recipe.services.metrics.fuel(fuel_used);
        let mut answers = Vec::new();
        let mut trapped = false;
        let accepted = std::mem::take(&mut instance.store.data_mut().accepted);
        let completions = std::mem::take(&mut instance.store.data_mut().completions);
        for (id, outcome) in completions {
            if let Some(d) = self.deferred.remove(&id) {
                answers.push((d.reply, outcome.map_err(CallError::Exception)));
            }
        }
        match result {
            Ok(handled) => {
                self.failures = 0;
                self.retry_at = None;
                match (handled, request) {
                    (Handled::Done(response), Some((_, reply))) => {
                        answers.push((reply, Ok(response)))
                    }
                    (Handled::Failed(error), Some((_, reply))) => {
                        answers.push((reply, Err(CallError::Exception(error))))
                    }
                    (Handled::Pending, Some((id, reply))) => {
                        let deadline = self.wait_deadline(id);
                        self.deferred.insert(id, Deferred { reply, deadline });
                    }
                    (_, None) => {}
                }
            }
            Err(trap) => {
                log_guest_output(&instance.store);
                let limit = limits::classify(&trap, instance.store.data().tripped());
                let script = &*self.recipe.name;
                let error = match limit {
                    Some(limit) => {
                        tracing::warn!(
                            script,
                            route = %what,
                            limit = crate::metrics::limit_kind(limit),
                            fuel_used,
                            "call stopped: exceeded {}",
                            limit.phrase()
                        );
                        self.recipe.services.metrics.limit(limit);
                        CallError::Limit(limit)
                    }
                    None => {
                        tracing::error!(
                            script,
                            route = %what,
                            fuel_used,
                            "script trapped: {trap:?}"
                        );
                        CallError::Trap(trap.root_cause().to_string())
                    }
                };
                self.instance = None;
                if let Some((_, reply)) = request {
                    answers.push((reply, Err(error)));
                }
                for (_, d) in self.deferred.drain() {
                    answers.push((
                        d.reply,
                        Err(CallError::Trap("the script was restarted".into())),
                    ));
                }
                self.failed();
                trapped = true;
            }
        }
        end_turn(turn, trapped, answers, accepted);
    }
}

/// Commits or discards a turn and sends its answers. Any failure in the turn
/// (a thrown handler, a rejected Promise, a timer callback that threw, a trap)
/// discards all of its writes; otherwise the answers wait for the commit to be
/// durable and for the cluster to accept the stream messages the turn sent;
/// a commit or a message that fails turns them into errors.
fn end_turn(
    turn: Turn<'_>,
    trapped: bool,
    answers: Vec<(Reply, Result<Response, CallError>)>,
    accepted: Accepted,
) {
    let failed = trapped || turn.discarded_by_guest() || answers.iter().any(|(_, a)| a.is_err());
    if failed {
        let rolled_back = turn.discard();
        for (reply, answer) in answers {
            let answer = match answer {
                Ok(_) if rolled_back => Err(CallError::RolledBack),
                other => other,
            };
            let _ = reply.send(answer);
        }
        return;
    }
    let send = move |outcome: Result<(), CallError>| {
        for (reply, answer) in answers {
            let answer = match &outcome {
                Ok(()) => answer,
                Err(e) => Err(e.clone()),
            };
            let _ = reply.send(answer);
        }
    };
    turn.commit(Box::new(move |stored| match stored {
        Err(e) => send(Err(CallError::Storage(e))),
        Ok(()) if accepted.any() => {
            accepted.then(move |published| send(published.map_err(CallError::Cluster)))
        }
        Ok(()) => send(Ok(())),
    }));
}

/// The next finished fetch; never, once the receiver is gone.
async fn next_fetch(fetches: &mut Option<UnboundedReceiver<fetch::Done>>) -> Option<fetch::Done> {
    match fetches {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A WebSocket event's turn, for the log ("websocket /room"): formatted only
/// if something is logged.
struct OnStream(Arc<WsClient>);

impl Display for OnStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket {}", self.0.path)
    }
}
