//! WebSocket clients of stream routes (`wit/websocket.wit`): the raw
//! `__aiwe_ws_host` functions `websocket.js` wraps, and the `on-event` export
//! that runs a stream's `onOpen` / `onMessage` / `onClose` handler.

use std::cell::OnceCell;

use javy::quickjs::{prelude::Func, Ctx, Function, Object, Persistent, Result, TypedArray, Value};

use crate::aiwebengine::script::host::{log, LogLevel};
use crate::aiwebengine::script::websocket;
use crate::exports::aiwebengine::script::websocket_events::{Event, Guest};
use crate::{convert, host, runtime};

/// Installs the raw functions; `websocket.js` takes them and deletes the global.
pub fn register(cx: &Ctx<'_>) -> Result<()> {
    let raw = Object::new(cx.clone())?;
    raw.set(
        "listen",
        Func::from(
            |cx: Ctx<'_>, path: String, open: bool, message: bool, close: bool| {
                host::only_while_loading(&cx, "routeRegistry.registerStreamRoute")?;
                websocket::listen(&path, open, message, close)
                    .map_err(|m| javy::quickjs::Exception::throw_message(&cx, &m))
            },
        ),
    )?;
    raw.set(
        "send",
        Func::from(|client: String, json: String| websocket::send(&client, &json)),
    )?;
    raw.set("client", Func::from(current_client))?;
    raw.set("serialise", Func::from(host::serialise))?;
    cx.globals().set("__aiwe_ws_host", raw)
}

thread_local! {
    /// `websocket.js`'s `dispatch`, looked up once.
    static DISPATCH: OnceCell<Persistent<Function<'static>>> = const { OnceCell::new() };
}

/// `websocket.js`'s `dispatch`, in `cx`.
fn dispatch<'js>(cx: &Ctx<'js>) -> Result<Function<'js>> {
    if let Some(saved) = DISPATCH.with(|cell| cell.get().cloned()) {
        return saved.restore(cx);
    }
    let api: Object = cx.globals().get("__aiwe_websocket")?;
    let dispatch: Function = api.get("dispatch")?;
    let _ = DISPATCH.with(|cell| cell.set(Persistent::save(cx, dispatch.clone())));
    Ok(dispatch)
}

/// The connection the running event is about, as `{id, path, params}`:
/// `websocket.js` asks the first time it hears of a connection.
fn current_client<'js>(cx: Ctx<'js>) -> Result<Object<'js>> {
    let client = websocket::current_client();
    let params = Object::new(cx.clone())?;
    for (k, v) in &client.params {
        params.set(k.as_str(), v.as_str())?;
    }
    let object = Object::new(cx)?;
    object.set("id", client.id)?;
    object.set("path", client.path)?;
    object.set("params", params)?;
    Ok(object)
}

/// `dispatch`'s first argument (numbers: no string to make per event).
const OPEN: u8 = 0;
const MESSAGE: u8 = 1;
const CLOSE: u8 = 2;

impl Guest for crate::Component {
    fn on_event(connection: u64, event: Event) {
        runtime::start_call();
        runtime::with(|cx| {
            let run = (|| {
                let dispatch = dispatch(&cx)?;
                let (kind, message): (u8, Value) = match &event {
                    Event::Open => (OPEN, Value::new_undefined(cx.clone())),
                    Event::Close => (CLOSE, Value::new_undefined(cx.clone())),
                    Event::Text(text) => (
                        MESSAGE,
                        javy::quickjs::String::from_str(cx.clone(), text)?.into_value(),
                    ),
                    Event::Binary(bytes) => (
                        MESSAGE,
                        TypedArray::<u8>::new(cx.clone(), bytes.as_slice())?.into_value(),
                    ),
                };
                // Connection numbers stay far below 2^53: exact as a JS number.
                dispatch.call::<_, ()>((kind, connection as f64, message))
            })();
            if let Err(e) = run {
                let e = convert::script_error(&cx, e);
                let stack = e.stack.map(|s| format!("\n{s}")).unwrap_or_default();
                let path = websocket::current_client().path;
                log(
                    LogLevel::Error,
                    &format!("WebSocket handler on {path} threw: {}{stack}", e.message),
                );
            }
            runtime::run_jobs(&cx);
        })
    }
}
