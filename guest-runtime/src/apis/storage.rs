//! `storage` and `sharedStorage`: the raw `__aiwe_storage` functions over the
//! WIT `storage` interface; `storage.js` builds the API on them. A host-side
//! refusal becomes the JS error class it names.

use javy::quickjs::{prelude::Func, Ctx, Exception, Object, Result};

use crate::aiwebengine::script::storage::{self, StorageError};

fn throw(cx: &Ctx<'_>, error: StorageError) -> javy::quickjs::Error {
    match error {
        StorageError::TypeError(m) => Exception::throw_type(cx, &m),
        StorageError::RangeError(m) => Exception::throw_range(cx, &m),
        StorageError::Failed(m) => Exception::throw_message(cx, &m),
    }
}

pub fn register(cx: &Ctx<'_>) -> Result<()> {
    let raw = Object::new(cx.clone())?;
    raw.set(
        "get",
        Func::from(|cx: Ctx<'_>, key: String| storage::get(&key).map_err(|e| throw(&cx, e))),
    )?;
    raw.set(
        "set",
        Func::from(|cx: Ctx<'_>, key: String, json: String| {
            storage::set(&key, &json).map_err(|e| throw(&cx, e))
        }),
    )?;
    raw.set(
        "remove",
        Func::from(|cx: Ctx<'_>, key: String| storage::remove(&key).map_err(|e| throw(&cx, e))),
    )?;
    raw.set(
        "scan",
        Func::from(
            |cx: Ctx<'_>, prefix: String, after: Option<String>, limit: u32| {
                storage::scan(&prefix, after.as_deref(), limit)
                    .map(|pairs| {
                        pairs
                            .into_iter()
                            .map(|(k, v)| vec![k, v])
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| throw(&cx, e))
            },
        ),
    )?;
    raw.set(
        "clear",
        Func::from(|cx: Ctx<'_>| storage::clear().map_err(|e| throw(&cx, e))),
    )?;
    cx.globals().set("__aiwe_storage", raw)?;
    cx.eval::<(), _>(include_str!("storage.js"))
}

/// The current turn failed inside the guest (a timer callback threw): tell the
/// host not to commit its writes.
pub fn discard_turn() {
    storage::discard_turn();
}
