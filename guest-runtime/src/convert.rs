//! Crossing between WIT records and JS values.

use javy::quickjs::{
    ArrayBuffer, Ctx, Error, Exception, Function, Object, String as JsString, Value,
};

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
pub fn js_string<'js>(cx: &Ctx<'js>, s: &JsString<'js>) -> String {
    s.to_string()
        .unwrap_or_else(|e| javy::to_string_lossy(cx, s, e))
}

/// Turns whatever a handler returned (or its Promise resolved to) into a
/// response, as the README's "Response" section says: `status` (default 200, an
/// integer from 100 to 999, numeric strings accepted), `headers` (an array
/// value gives one header per item, each made a string), and `body`: a string
/// (`text/plain; charset=utf-8` unless a content-type is given), bytes (an
/// `ArrayBuffer` or any view of one, as they are), nothing (empty), or any
/// other value as JSON (`application/json` unless given). In Rust, not in the
/// prelude: it runs once per request. A wrong shape throws the same
/// TypeError/RangeError a script would see from JavaScript.
pub fn respond<'js>(
    cx: &Ctx<'js>,
    api: &Object<'js>,
    result: Value<'js>,
) -> Result<Response, Error> {
    if result.is_undefined() || result.is_null() {
        return Err(Exception::throw_type(
            cx,
            "handler returned nothing; return {status, headers, body}",
        ));
    }
    let obj = match result.as_object() {
        Some(obj) if !result.is_function() => obj.clone(),
        _ => {
            let got = describe(api, result)?;
            return Err(Exception::throw_type(
                cx,
                &format!("handler must return an object {{status, headers, body}}, got {got}"),
            ));
        }
    };
    let status = status(cx, api, &obj)?;
    let mut headers = Vec::new();
    let mut has_content_type = false;
    let given: Value = obj.get("headers")?;
    if !given.is_undefined() && !given.is_null() {
        let globals = cx.globals();
        let object: Function = globals.get("Object")?;
        let given: Object = object.call((given,))?;
        let keys: Function = object.get("keys")?;
        let names: Vec<String> = keys.call((given.clone(),))?;
        for name in names {
            let value: Value = given.get(name.as_str())?;
            if value.is_undefined() || value.is_null() {
                continue;
            }
            has_content_type |= name.eq_ignore_ascii_case("content-type");
            match value.as_array() {
                Some(items) => {
                    for one in items.iter::<Value>() {
                        headers.push((name.clone(), text(cx, one?)?));
                    }
                }
                None => headers.push((name.clone(), text(cx, value)?)),
            }
        }
    }
    let body: Value = obj.get("body")?;
    let body = if body.is_undefined() || body.is_null() {
        Vec::new()
    } else if let Some(s) = body.as_string() {
        let s = js_string(cx, s);
        if !has_content_type && !s.is_empty() {
            headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
        }
        s.into_bytes()
    } else if let Some(bytes) = view_bytes(cx, &body)? {
        bytes
    } else {
        let json = crate::serialise::serialise(cx, body)?;
        if !has_content_type {
            headers.push(("content-type".into(), "application/json".into()));
        }
        json.into_bytes()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `result.status`: 200 when absent, else `Number(status)`, which must be an
/// integer from 100 to 999.
fn status<'js>(cx: &Ctx<'js>, api: &Object<'js>, obj: &Object<'js>) -> Result<u16, Error> {
    let raw: Value = obj.get("status")?;
    let number = if raw.is_undefined() {
        200.0
    } else if let Some(n) = raw.as_number() {
        n
    } else {
        let coerce: Function = cx.globals().get("Number")?;
        coerce.call((raw,))?
    };
    if number.fract() == 0.0 && (100.0..=999.0).contains(&number) {
        return Ok(number as u16);
    }
    let got = describe(api, obj.get("status")?)?;
    Err(Exception::throw_range(
        cx,
        &format!("response status must be an integer from 100 to 999, got {got}"),
    ))
}

/// `String(value)`.
fn text<'js>(cx: &Ctx<'js>, value: Value<'js>) -> Result<String, Error> {
    if let Some(s) = value.as_string() {
        return Ok(js_string(cx, s));
    }
    let coerce: Function = cx.globals().get("String")?;
    let s: JsString = coerce.call((value,))?;
    Ok(js_string(cx, &s))
}

/// The prelude's `describe(value)`, for error messages.
fn describe<'js>(api: &Object<'js>, value: Value<'js>) -> Result<String, Error> {
    let describe: Function = api.get("describe")?;
    describe.call((value,))
}

/// The bytes of an `ArrayBuffer` or of the part of one a view (a typed array
/// or a `DataView`) shows; `None` for anything else.
fn view_bytes<'js>(cx: &Ctx<'js>, body: &Value<'js>) -> Result<Option<Vec<u8>>, Error> {
    if let Some(buffer) = ArrayBuffer::from_value(body.clone()) {
        return Ok(Some(
            buffer.as_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
        ));
    }
    let Some(view) = body.as_object() else {
        return Ok(None);
    };
    let array_buffer: Object = cx.globals().get("ArrayBuffer")?;
    let is_view: Function = array_buffer.get("isView")?;
    if !is_view.call::<_, bool>((body.clone(),))? {
        return Ok(None);
    }
    let buffer: ArrayBuffer = view.get("buffer")?;
    let offset: usize = view.get("byteOffset")?;
    let length: usize = view.get("byteLength")?;
    let bytes = buffer.as_bytes().unwrap_or_default();
    Ok(Some(
        bytes
            .get(offset..offset.saturating_add(length))
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
    ))
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
