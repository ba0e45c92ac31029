//! The one `bindgen!` of `wit/aiwebengine.wit`.

wasmtime::component::bindgen!({
    world: "script",
    path: "../wit",
    // Guest calls run on the tokio worker that asked for them, yielding at
    // every epoch tick (see `script/actor.rs`); the imports stay synchronous.
    exports: { default: async },
    // The one import that stops the call.
    imports: { "aiwebengine:script/host.cpu-budget-exhausted": trappable },
});

pub use self::aiwebengine::script::host::LogLevel;
pub use self::aiwebengine::script::types::{Request, Response, ScriptError};
pub use self::aiwebengine::script::websocket::Client as WsClient;
pub use exports::aiwebengine::script::guest::{Config as GuestConfig, Guest, Handled};
pub use exports::aiwebengine::script::websocket_events::Event as WsEvent;
