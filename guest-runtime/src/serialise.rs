//! A value as the JSON text the host's wire carries: what `JSON.stringify`
//! gives, and `null` for what it leaves undefined (a function, `undefined`).
//!
//! QuickJS's `JSON.stringify` builds a holder object, a stack array and a
//! buffer on every call: for the string a relayed WebSocket message usually
//! is, that was a quarter of the guest's time. So a string is quoted here
//! while `JSON.stringify` is still the built-in one; a script that replaced
//! it gets its own function called, as before.

use std::cell::OnceCell;

use javy::quickjs::{
    atom::PredefinedAtom, function::This, Ctx, Exception, Function, Object, Persistent, Result,
    Value,
};

thread_local! {
    /// The built-in `JSON.stringify`, saved before any script runs.
    static BUILTIN: OnceCell<Persistent<Function<'static>>> = const { OnceCell::new() };
}

/// Saves the built-in `JSON.stringify`. Runs when the runtime is built.
pub fn remember_builtin(cx: &Ctx<'_>) -> Result<()> {
    let json: Object = cx.globals().get("JSON")?;
    let stringify: Function = json.get("stringify")?;
    let _ = BUILTIN.with(|cell| cell.set(Persistent::save(cx, stringify)));
    Ok(())
}

/// `JSON.stringify(value)` as the script's global `JSON` has it now, or
/// `"null"` when that gives `undefined`.
pub fn serialise<'js>(cx: &Ctx<'js>, value: Value<'js>) -> Result<String> {
    // (A predefined atom: no lookup of the name by its text.)
    let json: Object = cx.globals().get(PredefinedAtom::JSON)?;
    let stringify: Function = json.get("stringify")?;
    let builtin = BUILTIN
        .with(|cell| cell.get().cloned())
        .map(|saved| saved.restore(cx))
        .transpose()?;
    let is_builtin = builtin.is_some_and(|b| b.as_value() == stringify.as_value());
    if is_builtin {
        // `to_string` refuses lone surrogates: those go the long way.
        if let Some(text) = value.as_string().and_then(|s| s.to_string().ok()) {
            return Ok(quote(&text));
        }
    }
    let out: Value = stringify.call((This(json), value))?;
    if out.is_undefined() {
        return Ok("null".into());
    }
    match out.as_string() {
        Some(s) => Ok(s
            .to_string()
            .unwrap_or_else(|e| javy::to_string_lossy(cx, s, e))),
        None => Err(Exception::throw_type(
            cx,
            &format!(
                "JSON.stringify returned a {}, not a string",
                out.type_name()
            ),
        )),
    }
}

/// `text` as a JSON string, escaped exactly as `JSON.stringify` does
/// (ECMA-262 QuoteJSONString): `"`, `\` and the controls below U+0020, the
/// common ones by their short names, the rest as `\u00xx`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
