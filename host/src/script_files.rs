//! Reading script files for a reload, always on a blocking thread (never on
//! the async workers that serve requests), with the folder's rules:
//!
//! - a file whose size, modification time and inode are what they were at the
//!   last look is not read again, unless that time was too recent to trust (a
//!   write within the clock's granularity keeps the mtime: git calls such an
//!   entry "racily clean" and checks its content, and so do we);
//! - a file over `--max-script-bytes` is a load error, and is never read whole;
//! - a symbolic link is followed only to a file inside the scripts folder;
//! - error messages name the file, never quote its content.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, Metadata};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::script::LoadError;
use crate::script_names::is_script_name;

/// An mtime younger than this (at the time it is seen) is not trusted to
/// reveal a later write: file times advance in coarse ticks.
const SETTLE: Duration = Duration::from_secs(2);

/// What a file looked like when it was last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    /// The mtime was old enough, when seen, that an equal stamp means an equal file.
    settled: bool,
}

impl Stamp {
    fn of(meta: &Metadata, trust: bool) -> Stamp {
        let modified = meta.modified().ok();
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        let settled = trust
            && modified
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= SETTLE);
        Stamp {
            len: meta.len(),
            modified,
            inode,
            settled,
        }
    }

    fn unchanged_since(&self, before: &Stamp) -> bool {
        before.settled
            && (self.len, self.modified, self.inode) == (before.len, before.modified, before.inode)
    }
}

/// One file's state as a reload sees it.
pub enum Found {
    /// No such script file (any more).
    Gone,
    /// Same stamp as at the last read: nothing to do.
    Unchanged,
    /// Read (or refused), with the stamp to remember.
    Read {
        stamp: Option<Stamp>,
        source: Result<String, LoadError>,
    },
}

/// Looks at the files `names` of `dir` (with `None`: every file there and every
/// name in `known`). `known` holds the stamps of the last reads; `reads` counts
/// the files actually read.
pub fn scan(
    dir: &Path,
    names: Option<BTreeSet<String>>,
    known: &BTreeMap<String, Option<Stamp>>,
    max_bytes: u64,
    reads: &AtomicU64,
) -> Vec<(String, Found)> {
    let names = names.unwrap_or_else(|| {
        let mut names: BTreeSet<String> = known.keys().cloned().collect();
        match fs::read_dir(dir) {
            Ok(entries) => {
                names.extend(entries.filter_map(|e| e.ok()?.file_name().into_string().ok()))
            }
            Err(e) => tracing::error!(dir = %dir.display(), "cannot list the scripts folder: {e}"),
        }
        names
    });
    let folder = fs::canonicalize(dir).ok();
    names
        .into_iter()
        .filter(|name| is_script_name(name))
        .map(|name| {
            let before = known.get(&name).and_then(Option::as_ref);
            let found = look(folder.as_deref(), dir, &name, before, max_bytes, reads);
            (name, found)
        })
        .collect()
}

fn refused(message: String) -> Found {
    Found::Read {
        stamp: None,
        source: Err(LoadError {
            message,
            detail: None,
        }),
    }
}

fn look(
    folder: Option<&Path>,
    dir: &Path,
    name: &str,
    before: Option<&Stamp>,
    max_bytes: u64,
    reads: &AtomicU64,
) -> Found {
    let path = dir.join(name);
    let Ok(link) = fs::symlink_metadata(&path) else {
        return Found::Gone;
    };
    let is_link = link.file_type().is_symlink();
    if is_link {
        match fs::canonicalize(&path) {
            Err(_) => return Found::Gone, // dangling
            Ok(target) if folder.is_some_and(|f| target.starts_with(f)) => {}
            Ok(_) => {
                return refused(format!(
                    "{name} is a symbolic link to a file outside the scripts folder; \
                     it is not loaded"
                ))
            }
        }
    }
    let meta = match fs::metadata(&path) {
        Ok(meta) if meta.is_file() => meta,
        _ => return Found::Gone, // a folder, a FIFO...: not a script
    };
    // A link's own times do not change when its target does: never trust them.
    let stamp = Stamp::of(&meta, !is_link);
    if before.is_some_and(|b| stamp.unchanged_since(b)) {
        return Found::Unchanged;
    }
    let too_big = || {
        format!("{name} is larger than the --max-script-bytes limit ({max_bytes} bytes); it is not loaded")
    };
    if meta.len() > max_bytes {
        return Found::Read {
            stamp: Some(stamp),
            source: Err(LoadError {
                message: too_big(),
                detail: None,
            }),
        };
    }
    reads.fetch_add(1, Ordering::Relaxed);
    // Bounded even if the file grows between the size check and the read.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    let read = fs::File::open(&path).and_then(|file| {
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
    });
    let source = match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Gone,
        Err(e) => Err(format!("cannot read {name}: {e}")),
        Ok(n) if n as u64 > max_bytes => Err(too_big()),
        Ok(_) => String::from_utf8(bytes).map_err(|e| {
            format!(
                "{name} is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            )
        }),
    };
    Found::Read {
        stamp: Some(stamp),
        source: source.map_err(|message| LoadError {
            message,
            detail: None,
        }),
    }
}
