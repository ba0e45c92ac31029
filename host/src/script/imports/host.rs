//! The host side of the WIT `host` interface: the guest's next timer, answers
//! of deferred requests, console lines, and registering and sending on routes
//! and streams.

use std::time::{Duration, Instant};

use crate::bindings::aiwebengine::script::host::Host;
use crate::bindings::{LogLevel, Response, ScriptError};
use crate::script::state::HostState;

impl Host for HostState {
    fn set_wakeup(&mut self, delay_ms: Option<u32>) {
        self.wakeup = delay_ms.map(|ms| Instant::now() + Duration::from_millis(ms.into()));
    }

    fn complete(&mut self, id: u64, outcome: Result<Response, ScriptError>) {
        self.completions.push((id, outcome));
    }

    fn cpu_budget_exhausted(&mut self) -> wasmtime::Result<()> {
        self.cpu_exhausted = true;
        wasmtime::bail!("the call used its CPU budget")
    }

    fn log(&mut self, level: LogLevel, message: String) {
        let script = &*self.script;
        let Some(line) = self.console.line(&message) else {
            return;
        };
        if line.dropped_before > 0 {
            tracing::warn!(target: "script", script, dropped = line.dropped_before, "console lines dropped: over the rate limit");
        }
        let message = line.text;
        match level {
            LogLevel::Debug => tracing::debug!(target: "script", script, "{message}"),
            LogLevel::Info => tracing::info!(target: "script", script, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "script", script, "{message}"),
            LogLevel::Error => tracing::error!(target: "script", script, "{message}"),
        }
    }

    fn register_route(&mut self, method: String, path: String, handler: u32) -> Result<(), String> {
        self.registrations.add_route(method, &path, handler)
    }

    fn register_stream(&mut self, path: String) -> Result<(), String> {
        let cap = self.hub.limits().streams_per_script;
        if self.registrations.add_stream(path.clone(), cap)? {
            self.hub.ensure(&path);
        }
        Ok(())
    }

    fn send_stream_message(
        &mut self,
        path: Option<String>,
        json: String,
        filter: Vec<(String, String)>,
    ) -> Result<u32, String> {
        let cap = self.hub.limits().message_bytes;
        if json.len() > cap {
            return Err(format!(
                "a stream message may be at most {cap} bytes of JSON (--max-message-bytes), \
                 this one is {}",
                json.len()
            ));
        }
        let named = path.is_some();
        let paths = match path {
            Some(path) => vec![path],
            None => self.registrations.streams.clone(),
        };
        let mut reached = 0usize;
        for p in &paths {
            let accepted = &self.accepted;
            let sent = self
                .hub
                .send(p, &json, filter.clone(), || accepted.settle())
                .map_err(|e| format!("sendStreamMessage({p:?}): {e}"))?;
            reached += match sent {
                Some(n) => n,
                None if named => {
                    return Err(format!("no stream is registered at {p:?}"));
                }
                None => 0,
            };
        }
        Ok(reached.try_into().unwrap_or(u32::MAX))
    }
}
