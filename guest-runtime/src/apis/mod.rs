//! Script APIs beyond the core one in `prelude.js`, each in javy's style: a Rust
//! file installing raw `__aiwe_*` functions that call one WIT interface, and a
//! JS wrapper (`include_str!`'d) that checks arguments, builds the user-facing
//! object and hides the raw functions.

pub mod storage;

use javy::quickjs::{Ctx, Result};

/// Installs every API; runs once per instance, after the prelude.
pub fn register(cx: &Ctx<'_>) -> Result<()> {
    storage::register(cx)
}
