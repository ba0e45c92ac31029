//! The single QuickJS runtime of this instance. It is created on first use and
//! lives as long as the instance, so a script's globals persist between calls.

use std::cell::OnceCell;

use javy::quickjs::Ctx;
use javy::{Config, Runtime};

/// Start collecting garbage after this many bytes were allocated since the last
/// collection. javy's default (never) suits one-shot programs, not a server.
const GC_THRESHOLD: usize = 1 << 20;

thread_local! {
    static RUNTIME: OnceCell<Runtime> = const { OnceCell::new() };
}

fn build() -> Runtime {
    let mut config = Config::default();
    config
        .text_encoding(true)
        .performance(true)
        .javy_stream_io(false)
        .gc_threshold(GC_THRESHOLD);
    let runtime = Runtime::new(config).expect("the QuickJS runtime to start");
    runtime.context().with(|cx| {
        crate::host::register(&cx).expect("host functions to register");
        cx.eval::<(), _>(include_str!("prelude.js"))
            .expect("the prelude to evaluate");
        crate::apis::register(&cx).expect("the script APIs to register");
    });
    runtime
}

/// Runs `f` inside the runtime's context.
pub fn with<R>(f: impl FnOnce(Ctx<'_>) -> R) -> R {
    RUNTIME.with(|cell| cell.get_or_init(build).context().with(f))
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
