//! Who may see `/_engine`: the route browser, the metrics and whatever else
//! lives there (the two health paths are always open).
//!
//! - With an admin token (`--admin-token`, env `AIWEBENGINE_ADMIN_TOKEN`),
//!   those paths need `Authorization: Bearer TOKEN` (401 otherwise).
//! - Without one, they are open when the server listens on a loopback address
//!   only, and closed (403, with a hint) when it listens on any other address,
//!   so a server exposed on a network never shows its scripts by accident.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};
use warp::http::{header, HeaderMap};

use crate::admin_token::AdminToken;

/// The policy for `/_engine`, fixed when the server starts.
#[derive(Clone, Debug)]
pub enum Access {
    /// Loopback listener, no token: open, as for local development.
    Open,
    /// A token is required.
    Token([u8; 32]),
    /// Non-loopback listener without a token: closed.
    Closed(SocketAddr),
}

/// What the gate decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// 401: no or wrong bearer token.
    Unauthorized,
    /// 403: closed; the hint says how to open it.
    Forbidden(String),
}

impl Access {
    pub fn new(token: Option<&AdminToken>, listening: SocketAddr) -> Access {
        match token {
            Some(token) => Access::Token(digest(token.secret().as_bytes())),
            None if listening.ip().is_loopback() => Access::Open,
            None => {
                tracing::warn!(
                    listen = %listening,
                    "listening on a non-loopback address without --admin-token: /_engine (routes, metrics) answers 403; set --admin-token or AIWEBENGINE_ADMIN_TOKEN to open it"
                );
                Access::Closed(listening)
            }
        }
    }

    /// The decision for a request to `path` with `headers`.
    pub fn check(&self, path: &str, headers: &HeaderMap) -> Verdict {
        if !is_protected(path) {
            return Verdict::Allow;
        }
        match self {
            Access::Open => Verdict::Allow,
            Access::Closed(addr) => Verdict::Forbidden(format!(
                "/_engine is closed: this server listens on {addr}, not a loopback address, and has no admin token. \
Start it with --admin-token TOKEN (or AIWEBENGINE_ADMIN_TOKEN=TOKEN) and send \"Authorization: Bearer TOKEN\".\n"
            )),
            Access::Token(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        let (scheme, token) = v.trim().split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                    });
                match given {
                    Some(token) if same(&digest(token.as_bytes()), expected) => Verdict::Allow,
                    _ => Verdict::Unauthorized,
                }
            }
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The health paths stay open: orchestrators probe them without credentials.
pub const HEALTH_PATHS: [&str; 2] = ["/_engine/health/live", "/_engine/health/ready"];

/// Is `path` (raw, as sent) one of the engine's guarded paths? Decoded and
/// with repeated slashes folded first, so `//%5Fengine/routes` is caught too.
pub fn is_protected(path: &str) -> bool {
    let decoded = super::convert::percent_decode(path);
    let mut folded = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if !(c == '/' && folded.ends_with('/')) {
            folded.push(c);
        }
    }
    let engine = folded == "/_engine" || folded.starts_with("/_engine/");
    engine && !HEALTH_PATHS.contains(&folded.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn engine_paths_but_health_are_protected() {
        for p in [
            "/_engine",
            "/_engine/",
            "/_engine/routes",
            "/_engine/metrics",
            "//_engine/routes",
            "/%5Fengine/routes",
            "/%5fengine",
        ] {
            assert!(is_protected(p), "{p}");
        }
        for p in [
            "/_engine/health/live",
            "/_engine/health/ready",
            "/",
            "/chat",
            "/_enginex",
        ] {
            assert!(!is_protected(p), "{p}");
        }
    }

    #[test]
    fn tokens_open_the_gate() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let none = HeaderMap::new();
        assert_eq!(
            Access::new(None, local).check("/_engine", &none),
            Verdict::Allow
        );
        assert!(matches!(
            Access::new(None, public).check("/_engine/routes", &none),
            Verdict::Forbidden(hint) if hint.contains("--admin-token")
        ));
        assert_eq!(
            Access::new(None, public).check("/_engine/health/ready", &none),
            Verdict::Allow
        );
        let token = AdminToken::new("s3cret");
        let gated = Access::new(token.as_ref(), public);
        assert_eq!(gated.check("/_engine/routes", &none), Verdict::Unauthorized);
        assert_eq!(
            gated.check("/_engine/routes", &bearer("wrong")),
            Verdict::Unauthorized
        );
        assert_eq!(
            gated.check("/_engine/routes", &bearer("s3cret")),
            Verdict::Allow
        );
        assert_eq!(gated.check("/chat", &none), Verdict::Allow);
        assert!(AdminToken::new("").is_none());
        assert_eq!(format!("{:?}", token), "Some(AdminToken(..))");
    }
}
