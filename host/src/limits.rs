//! Per-call limits on guest code — fuel (CPU), a wall-clock deadline (epochs)
//! and a memory cap per instance — and telling which one stopped a call.
//!
//! Guest calls run on tokio workers. At every epoch tick a running call
//! either yields to the worker (so the worker's other connections and scripts
//! get their turn) or, past its time limit, traps with `Trap::Interrupt`.

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};

/// How often the epoch ticker advances: the longest a call runs before it
/// yields its worker, and the precision of the per-call time limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The CPU budget per call, counted by QuickJS: one unit per 10,000
    /// jumps (loops, branches) and calls of JavaScript (its interrupt check); 0: none.
    /// Deterministic, and free: the interpreter counts them anyway.
    pub cpu_budget: u64,
    /// Fuel per call (roughly wasm instructions); 0 turns fuel metering off.
    /// A finer CPU budget that also counts the engine's native work, at a
    /// cost of about a quarter of the throughput; off by default.
    pub fuel: u64,
    /// Wall-clock time per call; zero turns the deadline off.
    pub timeout: Duration,
    /// Linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Timers (timeouts and intervals) alive at once per script.
    pub max_timers: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_budget: 20_000,
            fuel: 0,
            timeout: Duration::from_secs(5),
            memory_bytes: 128 << 20,
            max_timers: 1000,
        }
    }
}

/// The limit a call ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Cpu,
    Time,
    Memory,
    Stack,
}

impl Limit {
    /// The limit as messages name it: "exceeded its CPU budget".
    pub fn phrase(self) -> &'static str {
        match self {
            Limit::Cpu => "its CPU budget",
            Limit::Time => "its time limit",
            Limit::Memory => "its memory limit",
            Limit::Stack => "its stack limit",
        }
    }
}

/// The `ResourceLimiter` of one instance: refuses (and traps) growth past the cap
/// and remembers that it did, so the trap can be named.
pub struct MemoryCap {
    pub bytes: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// A store's data that knows when its running call started.
pub trait CallClock {
    fn call_started(&mut self) -> &mut Instant;
}

/// Installs the per-tick check on a new store: yield the worker, or trap once
/// the call has run for `limits.timeout` (wall-clock, time spent yielded
/// included; zero: never). Epochs are on even without a time limit: they are
/// what makes a long call share its worker.
pub fn watch<T: CallClock + Send + 'static>(store: &mut Store<T>, limits: &Limits) {
    let timeout = limits.timeout;
    store.epoch_deadline_callback(move |mut ctx| {
        let running = ctx.data_mut().call_started().elapsed();
        if !timeout.is_zero() && running >= timeout {
            Err(Trap::Interrupt.into())
        } else if running >= EPOCH_TICK {
            Ok(UpdateDeadline::Yield(1))
        } else {
            // A short call that a tick happened to land in runs on: yielding
            // it would only reschedule it (and maybe move it to another core).
            Ok(UpdateDeadline::Continue(1))
        }
    });
}

/// Arms `store` for one call: a fresh fuel budget and deadline.
pub fn arm<T: CallClock>(store: &mut Store<T>, limits: &Limits) {
    if limits.fuel > 0 {
        store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled in the engine");
    }
    *store.data_mut().call_started() = Instant::now();
    store.set_epoch_deadline(1);
}

/// Fuel the last call used, when fuel is on.
pub fn fuel_used<T>(store: &Store<T>, limits: &Limits) -> Option<u64> {
    (limits.fuel > 0).then(|| limits.fuel - store.get_fuel().unwrap_or(0))
}

/// What a store saw of the limits during the call that failed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tripped {
    /// The memory limiter refused a growth.
    pub memory: bool,
    /// The guest reported its CPU budget used.
    pub cpu_budget: bool,
}

/// Which limit, if any, caused `error`.
pub fn classify(error: &wasmtime::Error, tripped: Tripped) -> Option<Limit> {
    if tripped.memory {
        return Some(Limit::Memory);
    }
    if tripped.cpu_budget {
        return Some(Limit::Cpu);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Some(Limit::Cpu),
        Some(Trap::Interrupt) => Some(Limit::Time),
        Some(Trap::StackOverflow) => Some(Limit::Stack),
        _ => None,
    }
}
