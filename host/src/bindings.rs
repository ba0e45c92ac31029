//! The one `bindgen!` of `wit/aiwebengine.wit`.

wasmtime::component::bindgen!({
    world: "script",
    path: "../wit",
});

pub use aiwebengine::script::host::LogLevel;
pub use exports::aiwebengine::script::guest::{Request, Response, ScriptError};
