//! A script's console output on its way to the host log. Scripts are not
//! trusted with the log: each line has its control characters escaped (no
//! forged log lines through `\n`, no terminal escapes), is cut at
//! `MAX_LINE_BYTES` with a marker, and each script has a byte budget that
//! refills at `RATE_BYTES_PER_SEC`; lines over it are dropped and counted, and
//! the count is logged once the script may write again.

use std::fmt::Write;
use std::time::Instant;

/// Longest console line kept, in bytes; the rest is replaced by a marker.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Console bytes per second a script may write, on average.
pub const RATE_BYTES_PER_SEC: f64 = 256.0 * 1024.0;
/// Console bytes a script may write in a burst.
pub const BURST_BYTES: f64 = 1024.0 * 1024.0;
/// What a line costs beyond its bytes (so empty lines are not free).
const LINE_COST: f64 = 64.0;

/// One script's console budget.
pub struct Console {
    budget: f64,
    refilled: Instant,
    dropped: u64,
}

/// What to log for one console call.
pub struct Line {
    pub text: String,
    /// Lines dropped for the rate limit since the last line logged.
    pub dropped_before: u64,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            budget: BURST_BYTES,
            refilled: Instant::now(),
            dropped: 0,
        }
    }
}

impl Console {
    /// The line to log for `message`, or `None` when the script is over its rate.
    pub fn line(&mut self, message: &str) -> Option<Line> {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * RATE_BYTES_PER_SEC;
        self.budget = (self.budget + earned).min(BURST_BYTES);
        self.refilled = now;
        let cost = message.len().min(MAX_LINE_BYTES) as f64 + LINE_COST;
        if self.budget < cost {
            self.dropped += 1;
            return None;
        }
        self.budget -= cost;
        Some(Line {
            text: sanitise(message),
            dropped_before: std::mem::take(&mut self.dropped),
        })
    }
}

/// `message` with control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`...)
/// and cut after `MAX_LINE_BYTES` of input.
pub fn sanitise(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_LINE_BYTES) + 16);
    let mut taken = 0;
    for c in message.chars() {
        taken += c.len_utf8();
        if taken > MAX_LINE_BYTES {
            let _ = write!(
                out,
                "… [truncated: {} more bytes]",
                message.len() - (taken - c.len_utf8())
            );
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Also the Unicode line and paragraph separators, which some viewers break on.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            sanitise("a\nERROR forged\r\x1b[31mred\ttab"),
            "a\\nERROR forged\\r\\u{1b}[31mred\\ttab"
        );
        assert_eq!(sanitise("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let line = sanitise(&long);
        assert!(line.len() < MAX_LINE_BYTES + 64);
        assert!(line.ends_with(&format!("[truncated: {} more bytes]", MAX_LINE_BYTES)));
    }

    #[test]
    fn a_flood_is_dropped_and_counted() {
        let mut console = Console::default();
        let line = "x".repeat(MAX_LINE_BYTES);
        let kept = (0..1000).filter(|_| console.line(&line).is_some()).count();
        assert!(kept < 100, "kept {kept}");
        assert!(console.dropped > 900);
    }
}
