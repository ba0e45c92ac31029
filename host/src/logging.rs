//! Log output: human-readable text (the default) or, with `--log-format json`
//! (env `AIWEBENGINE_LOG_FORMAT`), one JSON object per line for log pipelines:
//!
//! ```json
//! {"timestamp":"2026-01-02T03:04:05.123456Z","level":"INFO","target":"script","message":"hi","request_id":"4f1c…","script":"chat.js"}
//! ```
//!
//! `timestamp`, `level`, `target` and `message` come first; then the fields of
//! the spans the event happened in, outermost first (the request span gives
//! `request_id`), then the event's own fields (`script`, `route`, `status`,
//! `duration_ms`, `limit`...), all at the top level. `RUST_LOG` filters both
//! formats (default `info`).

use std::io::Write;
use std::time::SystemTime;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global logger writing to stdout in `format`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(JsonLines::new(std::io::stdout))
            .init(),
    }
}

/// Installs the global logger of the report commands (`check`, `routes`):
/// off unless `RUST_LOG` asks for it (the report is the output), to stderr.
pub fn init_for_reports() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
}

/// A layer writing each event as one JSON line to `W`.
pub struct JsonLines<W> {
    writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(writer: W) -> Self {
        JsonLines { writer }
    }
}

/// Recorded fields, in the order they came; kept in span extensions too.
#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.set(field.name(), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<Fields>() {
                    for (name, value) in &span_fields.0 {
                        fields.set(name, value.clone());
                    }
                }
            }
        }
        event.record(&mut fields);
        let meta = event.metadata();
        let mut target = Value::from(meta.target());
        let mut message = Value::from("");
        let mut rest = Vec::with_capacity(fields.0.len());
        for (name, value) in fields.0 {
            match name {
                "message" => message = value,
                // Events from the `log` crate: its target, not "log".
                "log.target" => target = value,
                n if n.starts_with("log.") => {}
                _ => rest.push((name, value)),
            }
        }
        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":");
        push_json(
            &mut line,
            &Value::from(humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
        );
        line.push_str(",\"level\":");
        push_json(&mut line, &Value::from(meta.level().as_str()));
        line.push_str(",\"target\":");
        push_json(&mut line, &target);
        line.push_str(",\"message\":");
        push_json(&mut line, &message);
        for (name, value) in rest {
            if matches!(name, "timestamp" | "level" | "target") {
                continue; // never shadow the line's own keys
            }
            line.push(',');
            push_json(&mut line, &Value::from(name));
            line.push(':');
            push_json(&mut line, &value);
        }
        line.push_str("}\n");
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

fn push_json(out: &mut String, value: &Value) {
    // Serialising a `Value` to a string cannot fail.
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn each_event_is_one_json_object_with_span_fields_flattened() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "r-1");
            let _in = span.enter();
            tracing::info!(target: "script", script = "a.js", "hello \"{}\"\nthere", 1);
            tracing::warn!(status = 503u16, duration_ms = 1.5, level = "spoof", "done");
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["target"], "script");
        assert_eq!(lines[0]["message"], "hello \"1\"\nthere");
        assert_eq!(lines[0]["script"], "a.js");
        assert_eq!(lines[0]["request_id"], "r-1");
        assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["status"], 503);
        assert_eq!(lines[1]["duration_ms"], 1.5);
        assert_eq!(lines[1]["request_id"], "r-1");
        assert!(out.starts_with("{\"timestamp\":"));
    }
}
