//! WebSocket clients of stream routes (`wit/websocket.wit`): the raw
//! `__aiwe_ws_host` functions `websocket.js` wraps, and the `on-event` export
//! that runs a stream's `onOpen` / `onMessage` / `onClose` handler.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use javy::quickjs::{
    atom::PredefinedAtom, prelude::Func, Ctx, Function, Object, Persistent, Result, TypedArray,
    Value,
};

use crate::aiwebengine::script::host::{log, LogLevel};
use crate::aiwebengine::script::websocket;
use crate::exports::aiwebengine::script::websocket_events::{Event, Guest};
use crate::{convert, host, runtime};

/// A stream's client handlers, as `registerStreamRoute` got them.
#[derive(Default)]
struct Handlers {
    open: Option<Persistent<Function<'static>>>,
    message: Option<Persistent<Function<'static>>>,
    close: Option<Persistent<Function<'static>>>,
}

/// A connection this instance has heard of: its client object and its
/// stream's handlers, until it closes.
struct Known {
    client: Persistent<Object<'static>>,
    path: Rc<str>,
    handlers: Rc<Handlers>,
}

thread_local! {
    /// Handlers by stream path, from `load`.
    static STREAMS: RefCell<HashMap<String, Rc<Handlers>>> = RefCell::default();
    /// Connections by number.
    static CONNECTIONS: RefCell<HashMap<u64, Rc<Known>>> = RefCell::default();
    /// `websocket.js`'s internal API (`introduce`, `watch`).
    static API: OnceCell<Persistent<Object<'static>>> = const { OnceCell::new() };
}

/// Installs the raw functions; `websocket.js` takes them and deletes the global.
pub fn register(cx: &Ctx<'_>) -> Result<()> {
    let raw = Object::new(cx.clone())?;
    raw.set("listen", Func::from(listen))?;
    raw.set(
        "send",
        Func::from(|client: String, json: String| websocket::send(&client, &json)),
    )?;
    raw.set("serialise", Func::from(host::serialise))?;
    cx.globals().set("__aiwe_ws_host", raw)
}

/// `registerStreamRoute(path, {onOpen, onMessage, onClose})`: keeps the
/// handlers and tells the host which there are.
fn listen<'js>(
    cx: Ctx<'js>,
    path: String,
    open: Option<Function<'js>>,
    message: Option<Function<'js>>,
    close: Option<Function<'js>>,
) -> Result<()> {
    host::only_while_loading(&cx, "routeRegistry.registerStreamRoute")?;
    websocket::listen(&path, open.is_some(), message.is_some(), close.is_some())
        .map_err(|m| javy::quickjs::Exception::throw_message(&cx, &m))?;
    let save = |f: Option<Function<'js>>| f.map(|f| Persistent::save(&cx, f));
    let handlers = Handlers {
        open: save(open),
        message: save(message),
        close: save(close),
    };
    STREAMS.with(|s| s.borrow_mut().insert(path, Rc::new(handlers)));
    Ok(())
}

/// `websocket.js`'s internal API, in `cx`.
fn api<'js>(cx: &Ctx<'js>) -> Result<Object<'js>> {
    if let Some(saved) = API.with(|cell| cell.get().cloned()) {
        return saved.restore(cx);
    }
    let api: Object = cx.globals().get("__aiwe_websocket")?;
    let _ = API.with(|cell| cell.set(Persistent::save(cx, api.clone())));
    Ok(api)
}

/// Connection `connection`, met for the first time in this instance: the
/// host says who it is, `websocket.js` makes its client object.
fn introduce(cx: &Ctx<'_>, connection: u64) -> Result<Rc<Known>> {
    let client = websocket::current_client();
    let params = Object::new(cx.clone())?;
    for (k, v) in &client.params {
        params.set(k.as_str(), v.as_str())?;
    }
    let introduce: Function = api(cx)?.get("introduce")?;
    let object: Object = introduce.call((client.id, params))?;
    let handlers = STREAMS.with(|s| s.borrow().get(&client.path).cloned());
    let known = Rc::new(Known {
        client: Persistent::save(cx, object),
        path: client.path.into(),
        handlers: handlers.unwrap_or_default(),
    });
    CONNECTIONS.with(|c| c.borrow_mut().insert(connection, known.clone()));
    Ok(known)
}

/// Runs the handler for `event` of `known`'s connection; a Promise it gives
/// is watched for a rejection.
fn run<'js>(cx: &Ctx<'js>, known: &Known, event: &Event) -> Result<()> {
    let handlers = &known.handlers;
    let handler = match event {
        Event::Open => &handlers.open,
        Event::Text(_) | Event::Binary(_) => &handlers.message,
        Event::Close => &handlers.close,
    };
    let Some(handler) = handler.clone() else {
        return Ok(());
    };
    let handler = handler.restore(cx)?;
    let client = known.client.clone().restore(cx)?;
    let result: Value = match event {
        Event::Text(text) => {
            let message = javy::quickjs::String::from_str(cx.clone(), text)?;
            handler.call((client, message))?
        }
        Event::Binary(bytes) => {
            let message = TypedArray::<u8>::new(cx.clone(), bytes.as_slice())?;
            handler.call((client, message))?
        }
        Event::Open | Event::Close => handler.call((client,))?,
    };
    if let Some(then) = result
        .as_object()
        .map(|r| r.get::<_, Value>(PredefinedAtom::Then))
        .transpose()?
    {
        if then.is_function() {
            let watch: Function = api(cx)?.get("watch")?;
            watch.call::<_, ()>((result, &*known.path))?;
        }
    }
    Ok(())
}

impl Guest for crate::Component {
    fn on_event(connection: u64, event: Event) {
        runtime::start_call();
        runtime::with(|cx| {
            let known = CONNECTIONS.with(|c| c.borrow().get(&connection).cloned());
            let known = match known {
                Some(known) => Ok(known),
                None => introduce(&cx, connection),
            };
            if matches!(event, Event::Close) {
                CONNECTIONS.with(|c| c.borrow_mut().remove(&connection));
            }
            let run = known.and_then(|known| run(&cx, &known, &event));
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
