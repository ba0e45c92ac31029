//! The raw host functions, installed as `__aiwe_host` for `prelude.js` to wrap.
//! Each one calls a WIT import; a host-side refusal becomes a JS exception.

use std::cell::Cell;

use javy::quickjs::{
    prelude::{Func, Opt},
    Ctx, Exception, Function, Object, Result, Value,
};

use crate::convert;

use crate::aiwebengine::script::host::{self, LogLevel};

thread_local! {
    static LOADING: Cell<bool> = const { Cell::new(false) };
    /// The host's `--max-timers`, from `load`'s config.
    static MAX_TIMERS: Cell<u32> = const { Cell::new(1000) };
}

/// Applies the host's timer cap. The prelude reads it through the hidden
/// `maxTimers` host function; there is no setter a script could call.
pub fn set_max_timers(max: u32) {
    MAX_TIMERS.with(|m| m.set(max));
}

/// Routes and streams may only be registered while the script's top level runs.
pub fn set_loading(on: bool) {
    LOADING.with(|l| l.set(on));
}

pub(crate) fn only_while_loading(cx: &Ctx<'_>, what: &str) -> Result<()> {
    if LOADING.with(|l| l.get()) {
        Ok(())
    } else {
        Err(Exception::throw_message(
            cx,
            &format!("{what} can only be called while the script loads, not from a handler"),
        ))
    }
}

fn refused(cx: &Ctx<'_>, message: String) -> javy::quickjs::Error {
    Exception::throw_message(cx, &message)
}

pub fn register(cx: &Ctx<'_>) -> Result<()> {
    let raw = Object::new(cx.clone())?;
    raw.set(
        "log",
        Func::from(|level: String, message: String| {
            let level = match level.as_str() {
                "debug" => LogLevel::Debug,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                _ => LogLevel::Info,
            };
            host::log(level, &message);
        }),
    )?;
    raw.set(
        "registerRoute",
        Func::from(|cx: Ctx<'_>, method: String, path: String, id: u32| {
            only_while_loading(&cx, "routeRegistry.registerRoute")?;
            host::register_route(&method, &path, id).map_err(|m| refused(&cx, m))
        }),
    )?;
    raw.set(
        "registerStream",
        Func::from(|cx: Ctx<'_>, path: String| {
            only_while_loading(&cx, "routeRegistry.registerStreamRoute")?;
            host::register_stream(&path).map_err(|m| refused(&cx, m))
        }),
    )?;
    raw.set(
        "sendToOwnStreams",
        Func::from(|cx: Ctx<'_>, json: String| {
            host::send_stream_message(None, &json, &[]).map_err(|m| refused(&cx, m))
        }),
    )?;
    raw.set("sendToStream", Func::from(send_to_stream))?;
    raw.set("serialise", Func::from(serialise))?;
    raw.set(
        "setWakeup",
        Func::from(|delay: Option<f64>| {
            host::set_wakeup(delay.map(|d| d.clamp(0.0, u32::MAX as f64) as u32));
        }),
    )?;
    raw.set("maxTimers", Func::from(|| MAX_TIMERS.with(|m| m.get())))?;
    raw.set("completeResponse", Func::from(complete_response))?;
    raw.set("completeError", Func::from(complete_error))?;
    cx.globals().set("__aiwe_host", raw)
}

/// `JSON.stringify(data)`, or `"null"` (see `serialise.rs`).
pub fn serialise<'js>(cx: Ctx<'js>, data: Opt<Value<'js>>) -> Result<String> {
    let data = data.0.unwrap_or_else(|| Value::new_undefined(cx.clone()));
    crate::serialise::serialise(&cx, data)
}

/// `routeRegistry.sendStreamMessage(path, data, filter)`, whole: it runs
/// for every broadcast, so without a JS wrapper around it. What is rare (a
/// bad path, a filter) is the prelude's.
fn send_to_stream<'js>(
    cx: Ctx<'js>,
    path: Value<'js>,
    data: Opt<Value<'js>>,
    filter: Opt<Value<'js>>,
) -> Result<u32> {
    let path = match path.as_string().map(|s| convert::js_string(&cx, s)) {
        Some(path) if path.starts_with('/') => path,
        _ => {
            let check: Function = crate::runtime::api(&cx)?.get("checkPath")?;
            check.call::<_, ()>(("sendStreamMessage", path))?;
            // (checkPath throws for anything but a string starting with "/")
            return Err(Exception::throw_type(
                &cx,
                "sendStreamMessage: path must be a string starting with \"/\"",
            ));
        }
    };
    let json = serialise(cx.clone(), data)?;
    let filter = match filter.0 {
        Some(filter) if !filter.is_undefined() && !filter.is_null() => {
            let pairs: Function = crate::runtime::api(&cx)?.get("filterPairs")?;
            let pairs: Vec<Vec<String>> = pairs.call((filter,))?;
            pairs
                .into_iter()
                .filter_map(|pair| <[String; 2]>::try_from(pair).ok())
                .map(|[k, v]| (k, v))
                .collect()
        }
        _ => Vec::new(),
    };
    host::send_stream_message(Some(&path), &json, &filter).map_err(|m| refused(&cx, m))
}

/// A deferred handler's Promise resolved to `result`.
fn complete_response<'js>(cx: Ctx<'js>, id: f64, result: Value<'js>) {
    let result = crate::runtime::api(&cx)
        .and_then(|api| convert::respond(&cx, &api, result))
        .map_err(|e| convert::script_error(&cx, e));
    host::complete(id as u64, result.as_ref());
}

/// A deferred handler's Promise rejected with `error`.
fn complete_error<'js>(cx: Ctx<'js>, id: f64, error: Value<'js>) {
    host::complete(id as u64, Err(&convert::error_from_value(&cx, error)));
}
