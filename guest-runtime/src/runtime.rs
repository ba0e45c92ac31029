//! The single QuickJS runtime of this instance. It is created on first use and
//! lives as long as the instance, so a script's globals persist between calls.

use std::cell::{Cell, OnceCell};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use javy::quickjs::{prelude::Func, Ctx, Object, Persistent};
use javy::{Config, Runtime};

/// Start collecting garbage after this many bytes were allocated since the last
/// collection. javy's default (never) suits one-shot programs, not a server.
const GC_THRESHOLD: usize = 1 << 20;

thread_local! {
    static RUNTIME: OnceCell<Runtime> = const { OnceCell::new() };
    /// The prelude's internal API (dispatch, describe, checkHandlers, checkPath,
    /// filterPairs, runTimer, defer). Held here, not in a global: no script can call,
    /// replace or inspect what the host relies on.
    static API: OnceCell<Persistent<Object<'static>>> = const { OnceCell::new() };
    /// The host's CPU budget per call (`Config::cpu-budget`), 0 for none, and
    /// what is left of it in the running call.
    static CPU_BUDGET: Cell<u64> = const { Cell::new(0) };
    static CPU_LEFT: Cell<u64> = const { Cell::new(0) };
}

/// Sets the CPU budget every later call starts with.
pub fn set_cpu_budget(budget: u64) {
    CPU_BUDGET.with(|b| b.set(budget));
}

/// A call from the host begins: a full CPU budget. Every export runs this first.
pub fn start_call() {
    CPU_LEFT.with(|left| left.set(CPU_BUDGET.with(Cell::get)));
}

/// QuickJS's interrupt check, every 10,000 jumps (loops, branches) and calls: one unit
/// of the budget. With none left, the host stops the call (it never returns).
fn interrupt_check() -> bool {
    if CPU_BUDGET.with(Cell::get) == 0 {
        return false;
    }
    let left = CPU_LEFT.with(Cell::get);
    if left == 0 {
        crate::aiwebengine::script::host::cpu_budget_exhausted();
        return true; // not reached: the host traps
    }
    CPU_LEFT.with(|l| l.set(left - 1));
    false
}

fn build() -> Runtime {
    let mut config = Config::default();
    config
        .text_encoding(true)
        .performance(true)
        .javy_stream_io(false)
        .gc_threshold(GC_THRESHOLD);
    let runtime = Runtime::new(config).expect("the QuickJS runtime to start");
    runtime
        .context()
        .runtime()
        .set_interrupt_handler(Some(Box::new(interrupt_check)));
    runtime.context().with(|cx| {
        crate::host::register(&cx).expect("host functions to register");
        let api: Object = cx
            .eval(include_str!("prelude.js"))
            .expect("the prelude to evaluate to its API");
        let _ = API.with(|cell| cell.set(Persistent::save(&cx, api)));
        crate::serialise::remember_builtin(&cx).expect("JSON.stringify to exist");
        crate::apis::register(&cx).expect("the script APIs to register");
    });
    runtime
}

/// What must differ between instances made from one snapshot (see the WIT's
/// `wizer-initialize`): `Math.random`'s seed, and `performance`'s time origin,
/// which QuickJS read from the clocks of the build. Runs first in `load`.
pub fn fresh_instance() {
    let mut seed = [0u8; 8];
    // SAFETY: `seed` is valid for writes of its length; getentropy takes at most 256.
    if unsafe { libc::getentropy(seed.as_mut_ptr().cast(), seed.len()) } == 0 {
        fastrand::seed(u64::from_le_bytes(seed));
    }
    let origin = Instant::now();
    with(|cx| -> javy::quickjs::Result<()> {
        // QuickJS's own `performance.now` is read-only; the global is not.
        let performance = Object::new(cx.clone())?;
        performance.set(
            "now",
            Func::from(move || origin.elapsed().as_secs_f64() * 1000.0),
        )?;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        performance.set("timeOrigin", wall)?;
        cx.globals().set("performance", performance)
    })
    .expect("performance to be set up");
}

/// Runs `f` inside the runtime's context.
pub fn with<R>(f: impl FnOnce(Ctx<'_>) -> R) -> R {
    RUNTIME.with(|cell| cell.get_or_init(build).context().with(f))
}

/// The prelude's internal API, in `cx` (only valid inside `with`).
pub fn api<'js>(cx: &Ctx<'js>) -> javy::quickjs::Result<Object<'js>> {
    API.with(|cell| cell.get().cloned())
        .expect("the prelude ran when the runtime was built")
        .restore(cx)
}

/// Runs queued Promise jobs until none are left. A job that throws leaves an
/// exception pending; it is taken and dropped, as an unhandled rejection would be.
pub fn run_jobs(cx: &Ctx<'_>) {
    while cx.execute_pending_job() {
        if cx.has_exception() {
            let _ = cx.catch();
        }
    }
}
