//! How a running server lets `aiwebengine storage` in: it holds the data
//! dir's database lock, so it advertises itself in `<data-dir>/server.json`
//! (its URL and a random token, readable only by the data dir's owner), and
//! its `/_engine/storage/SCRIPT` endpoint takes that token as a bearer.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The file a running server advertises itself in.
pub const SERVER_FILE: &str = "server.json";

/// How a running server lets `aiwebengine storage` in.
pub struct Admin {
    pub dir: PathBuf,
    pub token: String,
}

impl Admin {
    pub fn new(dir: &Path) -> Admin {
        Admin {
            dir: dir.to_path_buf(),
            token: random_token(),
        }
    }

    /// Writes `server.json` for the server listening on `addr`.
    pub fn advertise(&self, addr: SocketAddr) -> Result<()> {
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let body = serde_json::json!({
            "url": format!("http://{addr}"),
            "token": self.token,
            "pid": std::process::id(),
        });
        let path = self.dir.join(SERVER_FILE);
        let tmp = self.dir.join(format!(".{SERVER_FILE}.tmp"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(body.to_string().as_bytes())?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// True when `header` is `Bearer <this server's token>`.
    pub fn authorised(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        // Compare in constant time with respect to the token's content.
        given.len() == self.token.len()
            && given
                .bytes()
                .zip(self.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// 24 random bytes as hex: from `/dev/urandom`, else hashed from the time and pid.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 24];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: fall back to hashing time and process id.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.write_u32(std::process::id());
            for (b, v) in chunk.iter_mut().zip(h.finish().to_le_bytes()) {
                *b = v;
            }
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
