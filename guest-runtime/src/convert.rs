//! Crossing between WIT records and JS values.

use javy::quickjs::{Ctx, Error, Object, String as JsString, TypedArray, Value};

use crate::aiwebengine::script::types::{Request, Response, ScriptError};

fn pairs_to_object<'js>(cx: &Ctx<'js>, pairs: &[(String, String)]) -> Result<Object<'js>, Error> {
    let obj = Object::new(cx.clone())?;
    for (k, v) in pairs {
        obj.set(k.as_str(), v.as_str())?;
    }
    Ok(obj)
}

/// `request = { id, method, path, query, headers, body, params }`.
pub fn request_to_js<'js>(cx: &Ctx<'js>, req: &Request) -> Result<Object<'js>, Error> {
    let obj = Object::new(cx.clone())?;
    obj.set("id", req.id.as_str())?;
    obj.set("method", req.method.as_str())?;
    obj.set("path", req.path.as_str())?;
    obj.set("query", pairs_to_object(cx, &req.query)?)?;
    obj.set("headers", pairs_to_object(cx, &req.headers)?)?;
    obj.set("params", pairs_to_object(cx, &req.params)?)?;
    obj.set("body", req.body.as_str())?;
    Ok(obj)
}

/// A JS string as UTF-8; lone surrogates become U+FFFD rather than failing.
fn js_string<'js>(cx: &Ctx<'js>, s: &JsString<'js>) -> String {
    s.to_string()
        .unwrap_or_else(|e| javy::to_string_lossy(cx, s, e))
}

/// Reads the `{status, headers: [[name, value]], body}` that `toResponse` made.
pub fn response_from_js<'js>(cx: &Ctx<'js>, obj: Object<'js>) -> Result<Response, Error> {
    let status: u16 = obj.get("status")?;
    let mut headers = Vec::new();
    let list: Vec<Vec<JsString>> = obj.get("headers")?;
    for pair in list {
        if let [name, value] = pair.as_slice() {
            headers.push((js_string(cx, name), js_string(cx, value)));
        }
    }
    let body: Value = obj.get("body")?;
    let body = if let Some(s) = body.as_string() {
        js_string(cx, s).into_bytes()
    } else {
        let bytes = TypedArray::<u8>::from_value(body)?;
        bytes.as_bytes().map(<[u8]>::to_vec).unwrap_or_default()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The pending exception (or any other failure) as a script error.
pub fn script_error(cx: &Ctx<'_>, err: Error) -> ScriptError {
    if err.is_exception() {
        error_from_value(cx, cx.catch())
    } else {
        ScriptError {
            message: err.to_string(),
            stack: None,
        }
    }
}

/// A thrown or rejected value as a script error: an Error's name, message and
/// stack, or any other value shown as "Uncaught <value>".
pub fn error_from_value<'js>(cx: &Ctx<'js>, thrown: Value<'js>) -> ScriptError {
    if let Some(exception) = thrown.as_exception() {
        let name: Option<String> = exception.get("name").ok();
        let message = exception.message().unwrap_or_default();
        let message = match name {
            Some(name) if !name.is_empty() => format!("{name}: {message}"),
            _ => message,
        };
        let stack = exception.stack().filter(|s| !s.trim().is_empty());
        return ScriptError { message, stack };
    }
    let message = javy::val_to_string(cx, thrown)
        .unwrap_or_else(|_| "a value that cannot be shown".to_string());
    ScriptError {
        message: format!("Uncaught {message}"),
        stack: None,
    }
}
