//! `aiwebengine storage dump|restore`: a namespace as JSON lines of
//! `{"key": ..., "value": ...}`.
//!
//! On a stopped server the command opens the data dir's database itself. A
//! running server holds the database's lock; the command reads the server's
//! URL and token from `<data-dir>/server.json` (see `admin.rs`) and goes
//! through its `/_engine/storage/SCRIPT` endpoint with that token instead.
//!
//! With `--redis URL` (cluster mode) the command works on the Redis directly,
//! whether or not nodes are running: a restore takes the namespace's lease
//! like any turn, so it lands between two turns of the running nodes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::admin::SERVER_FILE;
use super::redb_store::{OpenError, RedbStore};
use super::{check_key, namespace_of, Storage, StorageLimits};

/// A namespace's pairs as JSON lines (values are stored as JSON text).
pub fn to_lines(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        out.extend_from_slice(b"{\"key\":");
        out.extend_from_slice(serde_json::to_string(key).unwrap_or_default().as_bytes());
        out.extend_from_slice(b",\"value\":");
        out.extend_from_slice(value);
        out.extend_from_slice(b"}\n");
    }
    out
}

/// Parses and checks JSON lines of `{key, value}` against `limits`; a later
/// line for the same key wins.
pub fn from_lines(text: &str, limits: StorageLimits) -> Result<Vec<(String, Vec<u8>)>> {
    let mut pairs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("line {}", n + 1);
        let parsed: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let Some(key) = parsed.get("key").and_then(|k| k.as_str()) else {
            bail!("{}: expected {{\"key\": string, \"value\": ...}}", at());
        };
        let Some(value) = parsed.get("value") else {
            bail!("{}: no \"value\"", at());
        };
        check_key(key).map_err(|e| anyhow!("{}: {}", at(), e.into_message()))?;
        let json = value.to_string().into_bytes();
        if json.len() > limits.max_value_bytes {
            bail!(
                "{}: the value is {} bytes; the most is {}",
                at(),
                json.len(),
                limits.max_value_bytes
            );
        }
        pairs.insert(key.to_string(), json);
    }
    let bytes: u64 = pairs.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    if bytes > limits.quota_bytes {
        bail!(
            "the data is {bytes} bytes, over the storage quota of {} MB",
            limits.quota_bytes >> 20
        );
    }
    Ok(pairs.into_iter().collect())
}

/// Where `storage dump|restore` finds the namespace.
enum Target {
    Offline(Storage),
    Server { url: String, token: String },
}

fn target(data_dir: &Path, limits: StorageLimits) -> Result<Target> {
    match RedbStore::open(data_dir) {
        Ok(store) => Ok(Target::Offline(Storage::from_store(
            std::sync::Arc::new(store),
            limits,
        ))),
        Err(OpenError::Locked(path)) => {
            let file = data_dir.join(SERVER_FILE);
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "{} is locked by a running server, but {} cannot be read",
                    path.display(),
                    file.display()
                )
            })?;
            let info: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let field = |name: &str| {
                info.get(name)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("{} has no {name:?}", file.display()))
            };
            Ok(Target::Server {
                url: field("url")?,
                token: field("token")?,
            })
        }
        Err(OpenError::Other(e)) => Err(e),
    }
}

/// Storage in the Redis at `url`, for one command: a runtime of its own,
/// kept alive as long as the storage is used.
fn redis_target(url: &str, limits: StorageLimits) -> Result<(tokio::runtime::Runtime, Storage)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting a runtime for Redis")?;
    let link = {
        let _entered = runtime.enter();
        crate::cluster::Link::new(url)?
    };
    Ok((runtime, Storage::redis(link, limits)))
}

/// `aiwebengine storage dump SCRIPT --redis URL`.
pub fn dump_redis(
    url: &str,
    script: &str,
    limits: StorageLimits,
    out: &mut dyn Write,
) -> Result<()> {
    let (_runtime, storage) = redis_target(url, limits)?;
    out.write_all(&to_lines(&storage.dump(namespace_of(script))?))?;
    out.flush()?;
    Ok(())
}

/// `aiwebengine storage restore SCRIPT FILE --redis URL`; how many keys it now holds.
pub fn restore_redis(url: &str, script: &str, text: &str, limits: StorageLimits) -> Result<usize> {
    let pairs = from_lines(text, limits)?;
    let count = pairs.len();
    let (_runtime, storage) = redis_target(url, limits)?;
    storage.restore(namespace_of(script), pairs)?;
    Ok(count)
}

/// `aiwebengine storage dump SCRIPT`: JSON lines to `out`.
pub fn dump(
    data_dir: &Path,
    script: &str,
    limits: StorageLimits,
    out: &mut dyn Write,
) -> Result<()> {
    let name = namespace_of(script);
    let lines = match target(data_dir, limits)? {
        Target::Offline(storage) => to_lines(&storage.dump(name)?),
        Target::Server { url, token } => http(
            &url,
            &token,
            "GET",
            &format!("/_engine/storage/{}", encode(name)),
            &[],
        )?,
    };
    out.write_all(&lines)?;
    out.flush()?;
    Ok(())
}

/// `aiwebengine storage restore SCRIPT FILE`: replaces the namespace atomically.
/// Returns how many keys it now holds.
pub fn restore(data_dir: &Path, script: &str, text: &str, limits: StorageLimits) -> Result<usize> {
    let name = namespace_of(script);
    let pairs = from_lines(text, limits)?;
    let count = pairs.len();
    match target(data_dir, limits)? {
        Target::Offline(storage) => storage.restore(name, pairs)?,
        Target::Server { url, token } => {
            http(
                &url,
                &token,
                "PUT",
                &format!("/_engine/storage/{}", encode(name)),
                &to_lines(&pairs),
            )?;
        }
    }
    Ok(count)
}

fn encode(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// One HTTP/1.1 request to the running server; the body of a 2xx answer.
fn http(url: &str, token: &str, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>> {
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the server's URL {url:?} is not http://"))?;
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("the server's address {authority:?}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to the running server at {url}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer from {url}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("the server at {url} sent no HTTP answer"))?;
    let (head, rest) = answer.split_at(split);
    let body = rest.get(4..).unwrap_or_default().to_vec();
    let head = String::from_utf8_lossy(head);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("the server at {url} sent a malformed answer"))?;
    if !(200..300).contains(&status) {
        bail!(
            "the running server at {url} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(body)
}

/// Runs `aiwebengine storage ...`.
pub fn run(command: crate::cli::StorageCommand) -> Result<()> {
    use crate::cli::StorageCommand;
    match command {
        StorageCommand::Dump {
            script,
            storage,
            redis,
        } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match redis {
                Some(url) => dump_redis(&url, &script, storage.limits(), &mut out),
                None => dump(&storage.data_dir, &script, storage.limits(), &mut out),
            }
        }
        StorageCommand::Restore {
            script,
            file,
            storage,
            redis,
        } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading standard input")?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let count = match redis {
                Some(url) => restore_redis(&url, &script, &text, storage.limits())?,
                None => restore(&storage.data_dir, &script, &text, storage.limits())?,
            };
            eprintln!(
                "restored {count} keys into {}'s storage",
                namespace_of(&script)
            );
            Ok(())
        }
    }
}
