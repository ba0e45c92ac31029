//! `fetch`: the raw `__aiwe_fetch` functions for `fetch.js`, and the
//! `fetch-events.done` export that settles a fetch's Promise.

use std::cell::RefCell;

use javy::quickjs::{
    prelude::Func, Array, Ctx, Exception, Function, Object, Persistent, Result, TypedArray, Value,
};

use crate::aiwebengine::script::fetch::{self, FetchRequest, FetchResponse};
use crate::aiwebengine::script::host::{self, LogLevel};
use crate::{convert, runtime};

thread_local! {
    /// `fetch.js`'s settle function, out of reach of the script.
    static SETTLE: RefCell<Option<Persistent<Function<'static>>>> = const { RefCell::new(None) };
}

pub fn register(cx: &Ctx<'_>) -> Result<()> {
    let raw = Object::new(cx.clone())?;
    raw.set("start", Func::from(start))?;
    raw.set("onDone", Func::from(on_done))?;
    cx.globals().set("__aiwe_fetch", raw)?;
    cx.eval::<(), _>(include_str!("fetch.js"))
}

/// Keeps `fetch.js`'s settle function for `done`.
fn on_done<'js>(cx: Ctx<'js>, settle: Function<'js>) {
    let saved = Persistent::save(&cx, settle);
    SETTLE.with(|s| *s.borrow_mut() = Some(saved));
}

/// Starts a fetch; returns its id, or throws a `TypeError` saying why not.
fn start<'js>(
    cx: Ctx<'js>,
    url: String,
    method: String,
    headers: Vec<Vec<String>>,
    body: Value<'js>,
    timeout_ms: f64,
) -> Result<f64> {
    let headers = headers
        .into_iter()
        .filter_map(|pair| <[String; 2]>::try_from(pair).ok())
        .map(|[k, v]| (k, v))
        .collect();
    let body = if let Some(s) = body.as_string() {
        s.to_string()?.into_bytes()
    } else if body.is_undefined() || body.is_null() {
        Vec::new()
    } else {
        let bytes = TypedArray::<u8>::from_value(body)?;
        bytes.as_bytes().map(<[u8]>::to_vec).unwrap_or_default()
    };
    let req = FetchRequest {
        url,
        method,
        headers,
        body,
        timeout_ms: timeout_ms.clamp(1.0, u32::MAX as f64) as u32,
    };
    match fetch::start(&req) {
        Ok(id) => Ok(id as f64),
        Err(why) => Err(Exception::throw_type(&cx, &format!("fetch failed: {why}"))),
    }
}

/// The response as `{status, statusText, url, headers: [[name, value]], body}`.
fn response_to_js<'js>(cx: &Ctx<'js>, res: FetchResponse) -> Result<Object<'js>> {
    let obj = Object::new(cx.clone())?;
    obj.set("status", res.status)?;
    obj.set("statusText", res.status_text)?;
    obj.set("url", res.url)?;
    obj.set("redirected", res.redirected)?;
    let headers = Array::new(cx.clone())?;
    for (i, (name, value)) in res.headers.into_iter().enumerate() {
        let pair = Array::new(cx.clone())?;
        pair.set(0, name)?;
        pair.set(1, value)?;
        headers.set(i, pair)?;
    }
    obj.set("headers", headers)?;
    obj.set("body", TypedArray::<u8>::new_copy(cx.clone(), &res.body)?)?;
    Ok(obj)
}

/// The host finished fetch `id`: settle its Promise, then run what that wakes.
pub fn done(id: u64, outcome: std::result::Result<FetchResponse, String>) {
    runtime::with(|cx| {
        let Some(settle) = SETTLE.with(|s| s.borrow().clone()) else {
            return;
        };
        let settled = (|| {
            let settle = settle.restore(&cx)?;
            match outcome {
                Ok(res) => {
                    let res = response_to_js(&cx, res)?;
                    settle.call::<_, ()>((id as f64, Value::new_undefined(cx.clone()), res))
                }
                Err(why) => settle.call::<_, ()>((id as f64, why)),
            }
        })();
        if let Err(e) = settled {
            let e = convert::script_error(&cx, e);
            host::log(
                LogLevel::Error,
                &format!("settling a fetch failed: {}", e.message),
            );
        }
        runtime::run_jobs(&cx);
    })
}
