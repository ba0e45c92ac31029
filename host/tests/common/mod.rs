//! What several test binaries share: `serve --help`, temp script folders,
//! signals, waiting with a deadline, and checking that a command succeeded.
#![allow(dead_code)] // each test binary uses its own share of these

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

/// `aiwebengine serve --help`; asserts it succeeds.
pub fn serve_help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aiwebengine"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// A temp folder holding `files` (name, source).
pub fn scripts(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    dir
}

/// Writes `files` (name, source) into `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, source) in files {
        std::fs::write(dir.join(name), source).unwrap();
    }
}

/// Sends `signal` (`-TERM`, `-INT`, `-KILL`) to `child` with `kill`.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
}

/// Calls `attempt` every `every` until it gives `Some`; `None` once `timeout`
/// has passed without.
pub fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(done) = attempt() {
            return Some(done);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// `child`'s exit status, if it exits within `timeout`.
pub fn exit_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll(timeout, Duration::from_millis(20), || {
        child.try_wait().unwrap()
    })
}

/// The stdout of a command that finished; asserts it succeeded (showing its
/// stderr when not).
pub fn succeeded(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
