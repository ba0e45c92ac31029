//! The guest side of aiwebengine: QuickJS (through `javy`) inside a Wasm
//! component that implements `wit/aiwebengine.wit`.
//!
//! Layout:
//! - `lib.rs`     the WIT exports: `load` a script, `handle` a request
//! - `runtime.rs` the one QuickJS runtime of this instance and its configuration
//! - `host.rs`    the raw `__aiwe_host` functions that call the WIT imports
//! - `convert.rs` request record -> JS object, JS result -> response record, errors
//! - `serialise.rs` a value's JSON text for the host (`JSON.stringify`, a string quoted in Rust)
//! - `prelude.js` the user-facing script API built on `__aiwe_host`
//! - `apis/`      further APIs, one per WIT interface, javy style (`fetch`, `websocket`, `storage`)

mod apis;
mod convert;
mod host;
mod runtime;
mod serialise;

wit_bindgen::generate!({
    world: "script",
    path: "../wit",
});

use aiwebengine::script::types::{Request, ScriptError};
use exports::aiwebengine::script::guest::{Config, Handled};
use javy::quickjs::{context::EvalOptions, promise::PromiseState, Function, Value};

struct Component;

impl exports::aiwebengine::script::guest::Guest for Component {
    fn load(name: String, source: String, config: Config) -> Result<(), ScriptError> {
        runtime::set_cpu_budget(config.cpu_budget);
        runtime::start_call();
        runtime::fresh_instance();
        runtime::with(|cx| {
            // Kept on the Rust side: nothing a script can reach can change it.
            host::set_max_timers(config.max_timers);
            host::set_loading(true);
            let mut options = EvalOptions::default();
            options.global = true;
            options.strict = false;
            options.filename = Some(name);
            let result = cx
                .eval_with_options::<Value, _>(source, options)
                .and_then(|_| {
                    let api = runtime::api(&cx)?;
                    let check: Function = api.get("checkHandlers")?;
                    check.call::<_, ()>(())
                });
            host::set_loading(false);
            result.map_err(|e| convert::script_error(&cx, e))?;
            runtime::run_jobs(&cx);
            Ok(())
        })
    }

    fn handle(id: u64, req: Request) -> Handled {
        runtime::start_call();
        runtime::with(|cx| {
            let outcome = (|| {
                let api = runtime::api(&cx)?;
                let dispatch: Function = api.get("dispatch")?;
                let js_req = convert::request_to_js(&cx, &req)?;
                let result: Value = dispatch.call((req.handler, js_req))?;
                runtime::run_jobs(&cx);
                let result = match result.as_promise() {
                    None => result,
                    Some(promise) => match promise.state() {
                        PromiseState::Resolved | PromiseState::Rejected => {
                            promise.finish::<Value>()?
                        }
                        PromiseState::Pending => {
                            let defer: Function = api.get("defer")?;
                            defer.call::<_, ()>((id as f64, promise.clone()))?;
                            return Ok(None);
                        }
                    },
                };
                convert::respond(&cx, &api, result).map(Some)
            })();
            match outcome {
                Ok(Some(response)) => Handled::Done(response),
                Ok(None) => Handled::Pending,
                Err(e) => Handled::Failed(convert::script_error(&cx, e)),
            }
        })
    }

    fn run_timer() {
        runtime::start_call();
        runtime::with(|cx| {
            let run = (|| {
                let api = runtime::api(&cx)?;
                let run_timer: Function = api.get("runTimer")?;
                run_timer.call::<_, bool>(())
            })();
            // A callback that threw fails its turn: its storage writes are discarded.
            if run.as_ref().is_ok_and(|threw| *threw) {
                apis::storage::discard_turn();
            }
            if let Err(e) = run {
                let e = convert::script_error(&cx, e);
                aiwebengine::script::host::log(
                    aiwebengine::script::host::LogLevel::Error,
                    &format!("timer failed: {}", e.message),
                );
            }
            runtime::run_jobs(&cx);
        })
    }
}

/// Builds the runtime ahead of any script, for the build's snapshot.
impl Guest for Component {
    fn wizer_initialize() {
        runtime::with(|_| ());
    }
}

impl exports::aiwebengine::script::fetch_events::Guest for Component {
    fn done(id: u64, outcome: Result<aiwebengine::script::fetch::FetchResponse, String>) {
        runtime::start_call();
        apis::fetch::done(id, outcome)
    }
}

export!(Component);
