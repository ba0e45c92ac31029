//! WebSocket clients of stream routes (`wit/websocket.wit`): the raw
//! `__aiwe_ws_host` functions `websocket.js` wraps, and the `on-event` export
//! that runs a stream's `onOpen` / `onMessage` / `onClose` handler.

use std::cell::OnceCell;

use javy::quickjs::{prelude::Func, Ctx, Function, Object, Persistent, Result, TypedArray, Value};

use crate::aiwebengine::script::host::{log, LogLevel};
use crate::aiwebengine::script::websocket;
use crate::exports::aiwebengine::script::websocket_events::{Client, Event, Guest};
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

impl Guest for crate::Component {
    fn on_event(client: Client, event: Event) {
        runtime::start_call();
        runtime::with(|cx| {
            let run = (|| {
                let dispatch = dispatch(&cx)?;
                let params = Object::new(cx.clone())?;
                for (k, v) in &client.params {
                    params.set(k.as_str(), v.as_str())?;
                }
                let (kind, message): (&str, Value) = match &event {
                    Event::Open => ("open", Value::new_undefined(cx.clone())),
                    Event::Close => ("close", Value::new_undefined(cx.clone())),
                    Event::Text(text) => (
                        "message",
                        javy::quickjs::String::from_str(cx.clone(), text)?.into_value(),
                    ),
                    Event::Binary(bytes) => (
                        "message",
                        TypedArray::<u8>::new(cx.clone(), bytes.as_slice())?.into_value(),
                    ),
                };
                dispatch.call::<_, ()>((
                    kind,
                    client.id.as_str(),
                    client.path.as_str(),
                    params,
                    message,
                ))
            })();
            if let Err(e) = run {
                let e = convert::script_error(&cx, e);
                let stack = e.stack.map(|s| format!("\n{s}")).unwrap_or_default();
                log(
                    LogLevel::Error,
                    &format!(
                        "WebSocket handler on {} threw: {}{stack}",
                        client.path, e.message
                    ),
                );
            }
            runtime::run_jobs(&cx);
        })
    }
}
