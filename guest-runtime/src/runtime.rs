//! The single QuickJS runtime of this instance. It is created on first use and
//! lives as long as the instance, so a script's globals persist between calls.

use std::cell::OnceCell;

use javy::quickjs::{promise::PromiseState, Ctx, Error, Value};
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
    });
    runtime
}

/// Runs `f` inside the runtime's context.
pub fn with<R>(f: impl FnOnce(Ctx<'_>) -> R) -> R {
    RUNTIME.with(|cell| cell.get_or_init(build).context().with(f))
}

/// Runs queued Promise jobs until none are left.
pub fn run_jobs(cx: &Ctx<'_>) -> Result<(), Error> {
    while cx.execute_pending_job() {}
    Ok(())
}

/// Drives the job queue until `value` (a Promise or a plain value) is settled and
/// returns what it settled to. A rejected Promise comes back as the exception.
pub fn settle<'js>(cx: &Ctx<'js>, value: Value<'js>) -> Result<Value<'js>, Error> {
    let Some(promise) = value.as_promise().cloned() else {
        run_jobs(cx)?;
        return Ok(value);
    };
    let settled = promise.finish::<Value>();
    // Whatever the handler queued besides its own Promise runs before we answer.
    run_jobs(cx)?;
    match settled {
        Err(Error::WouldBlock) if promise.state() == PromiseState::Pending => Err(
            javy::quickjs::Exception::throw_message(cx, "the handler's Promise never settled"),
        ),
        other => other,
    }
}
