//! TypeScript scripts: `*.ts` files have their types removed on load, in the
//! host, before the JavaScript goes into the sandbox.
//!
//! `swc_ts_fast_strip` in strip-only mode replaces every type annotation,
//! interface and `declare` with whitespace of the same length, so each line and
//! column of the JavaScript is the one of the `.ts` source: a stack trace saying
//! `hello.ts:12:5` points into the file the author wrote, with no source map.
//! Syntax that would need code generated (`enum`, `namespace`, parameter
//! properties, `<T>x` casts) is refused with a load error located the same way.

use std::sync::{Arc, Mutex};

use swc_common::errors::{DiagnosticBuilder, Emitter, Handler};
use swc_common::sync::Lrc;
use swc_common::{SourceMap, GLOBALS};
use swc_ts_fast_strip::{operate, Options};

use crate::script::LoadError;

/// Whether a script file name is TypeScript.
pub fn is_typescript(name: &str) -> bool {
    name.ends_with(".ts")
}

/// The JavaScript of the TypeScript `source` of script `name`: the same text
/// with every type replaced by spaces. A syntax error, or syntax that cannot be
/// stripped, is a load error naming `name:line:column`.
pub fn strip(name: &str, source: String) -> Result<String, LoadError> {
    let cm: Lrc<SourceMap> = Default::default();
    let found = Diagnostics::default();
    let handler = Handler::with_emitter(false, false, Box::new(found.clone()));
    let options = Options {
        // A script is evaluated as a classic script, not a module.
        module: Some(false),
        filename: Some(name.to_string()),
        ..Default::default()
    };
    let result = GLOBALS.set(&Default::default(), || {
        operate(&cm, &handler, source, options)
    });
    match result {
        Ok(output) => Ok(output.code),
        Err(error) => {
            let diagnostics = found.take();
            let Some((first, span)) = diagnostics.first() else {
                return Err(LoadError {
                    message: format!("TypeScript: {error}"),
                    detail: None,
                });
            };
            let place = span.map(|lo| {
                let loc = cm.lookup_char_pos(lo);
                format!("{name}:{}:{}", loc.line, loc.col.0 + 1)
            });
            let kind = if first.contains("not supported in strip-only mode") {
                "TypeError" // like QuickJS's messages: a kind, then what happened
            } else {
                "SyntaxError"
            };
            let mut message = format!("{kind}: {first}");
            if kind == "TypeError" {
                message.push_str(
                    "; aiwebengine only removes types from .ts files (use a union of \
                     string literals or a plain object instead of an enum or namespace)",
                );
            }
            if let Some(place) = place {
                message.push_str(&format!(" (at {place})"));
            }
            let detail = (diagnostics.len() > 1).then(|| {
                diagnostics
                    .iter()
                    .map(|(text, span)| match span {
                        Some(lo) => {
                            let loc = cm.lookup_char_pos(*lo);
                            format!("{name}:{}:{}: {text}", loc.line, loc.col.0 + 1)
                        }
                        None => format!("{name}: {text}"),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Err(LoadError { message, detail })
        }
    }
}

/// One message of the stripper, and where its span starts.
type Diagnostic = (String, Option<swc_common::BytePos>);

/// Collects what the stripper reports.
#[derive(Clone, Default)]
struct Diagnostics(Arc<Mutex<Vec<Diagnostic>>>);

impl Diagnostics {
    fn take(&self) -> Vec<Diagnostic> {
        self.0
            .lock()
            .map(|mut found| std::mem::take(&mut *found))
            .unwrap_or_default()
    }
}

impl Emitter for Diagnostics {
    fn emit(&mut self, db: &mut DiagnosticBuilder<'_>) {
        let span = db.span.primary_span().map(|s| s.lo);
        if let Ok(mut found) = self.0.lock() {
            found.push((db.message(), span));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_become_spaces_and_lines_stay() {
        let ts = "interface P { x: number }\nconst a: number = 1;\nfunction f(p: P): string { return String(p.x); }\n";
        let js = strip("t.ts", ts.to_string()).unwrap();
        assert_eq!(js.len(), ts.len());
        assert_eq!(js.lines().count(), ts.lines().count());
        assert!(js.contains("const a         = 1;"), "{js}");
        assert!(!js.contains("number"), "{js}");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = strip("bad.ts", "const ok = 1;\nlet x: = 2;\n".into()).unwrap_err();
        assert!(e.message.starts_with("SyntaxError: "), "{}", e.message);
        assert!(e.message.ends_with("(at bad.ts:2:8)"), "{}", e.message);
    }

    #[test]
    fn enum_is_a_clear_error() {
        let e = strip("e.ts", "\n  enum Color { Red }\n".into()).unwrap_err();
        assert!(e.message.contains("enum is not supported"), "{}", e.message);
        assert!(e.message.ends_with("(at e.ts:2:3)"), "{}", e.message);
    }

    #[test]
    fn plain_javascript_passes_unchanged() {
        let js = "routeRegistry.registerRoute('GET', '/x', (r) => ({ body: r.path }));\n";
        assert_eq!(strip("p.ts", js.into()).unwrap(), js);
    }
}
