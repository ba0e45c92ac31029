//! Sizing `--max-connections` from the process's file-descriptor limit: each
//! connection holds one descriptor, and the server needs a few more of its own
//! (the listener, the watcher, script files, the compiled-guest cache).

/// Descriptors kept back from connections for the server's own use.
const MARGIN: u64 = 256;
/// Used when the limit cannot be read.
const FALLBACK: usize = 1024;

/// The soft `RLIMIT_NOFILE` minus a margin (at least 32), or 1024 when the
/// limit is unknown or unlimited.
pub fn default_max_connections() -> usize {
    match soft_limit() {
        Some(limit) => usize::try_from(limit.saturating_sub(MARGIN).max(32)).unwrap_or(FALLBACK),
        None => FALLBACK,
    }
}

#[cfg(unix)]
fn soft_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(not(unix))]
fn soft_limit() -> Option<u64> {
    None
}
