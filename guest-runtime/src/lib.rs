//! The guest side of aiwebengine: QuickJS (through `javy`) inside a Wasm
//! component that implements `wit/aiwebengine.wit`.
//!
//! Layout:
//! - `lib.rs`     the WIT exports: `load` a script, `handle` a request
//! - `runtime.rs` the one QuickJS runtime of this instance and its configuration
//! - `host.rs`    the raw `__aiwe_host` functions that call the WIT imports
//! - `convert.rs` request record -> JS object, JS result -> response record, errors
//! - `prelude.js` the user-facing script API built on `__aiwe_host`

mod convert;
mod host;
mod runtime;

wit_bindgen::generate!({
    world: "script",
    path: "../wit",
});

use exports::aiwebengine::script::guest::{Guest, Request, Response, ScriptError};
use javy::quickjs::{context::EvalOptions, Function, Object, Value};

struct Component;

impl Guest for Component {
    fn load(name: String, source: String) -> Result<(), ScriptError> {
        runtime::with(|cx| {
            host::set_loading(true);
            let mut options = EvalOptions::default();
            options.global = true;
            options.strict = false;
            options.filename = Some(name);
            let result = cx
                .eval_with_options::<Value, _>(source, options)
                .and_then(|_| {
                    let api: Object = cx.globals().get("__aiwe")?;
                    let check: Function = api.get("checkHandlers")?;
                    check.call::<_, ()>(())
                });
            host::set_loading(false);
            result.map_err(|e| convert::script_error(&cx, e))?;
            runtime::run_jobs(&cx).map_err(|e| convert::script_error(&cx, e))
        })
    }

    fn handle(req: Request) -> Result<Response, ScriptError> {
        runtime::with(|cx| {
            let outcome = (|| {
                let api: Object = cx.globals().get("__aiwe")?;
                let dispatch: Function = api.get("dispatch")?;
                let to_response: Function = api.get("toResponse")?;
                let js_req = convert::request_to_js(&cx, &req)?;
                let result: Value = dispatch.call((req.handler, js_req))?;
                let result = runtime::settle(&cx, result)?;
                let normalised: Object = to_response.call((result,))?;
                convert::response_from_js(&cx, normalised)
            })();
            outcome.map_err(|e| convert::script_error(&cx, e))
        })
    }
}

export!(Component);
