//! Script APIs beyond the prelude, javy style: each one is `register(cx)`,
//! binding raw `__aiwe_*` host functions, plus a JS wrapper (`<name>.js`,
//! `include_str!`'d) that checks arguments, builds the user-facing objects and
//! deletes the raw global.

pub mod fetch;
pub mod storage;
pub mod websocket;

use javy::quickjs::{Ctx, Result};

/// Installs every API; runs once per instance, after the prelude.
pub fn register(cx: &Ctx<'_>) -> Result<()> {
    fetch::register(cx)?;
    storage::register(cx)?;
    websocket::register(cx)?;
    cx.eval::<(), _>(include_str!("websocket.js"))
}
