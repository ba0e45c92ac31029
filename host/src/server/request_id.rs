//! Request ids: a client's `X-Request-Id` is kept when it is 1 to 128 visible
//! ASCII characters; otherwise the server makes one (32 hex digits, random per
//! process, unique per request). The id is echoed on the response, carried by
//! every log line of the request (a tracing span), and given to the handler as
//! `request.id`.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use warp::http::{HeaderMap, HeaderValue};

pub const HEADER: &str = "x-request-id";

/// Longest client id kept.
pub const MAX_LEN: usize = 128;

/// Is `id` an id we keep as it is?
pub fn is_valid(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A fresh id: 32 hex digits.
pub fn generate() -> String {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(Default::default);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = keys.build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// The id of a request with these headers: the client's, when valid, else a new one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    match headers.get(HEADER) {
        Some(v) if is_valid(v.as_bytes()) => v.clone(),
        _ => HeaderValue::from_str(&generate()).unwrap_or(HeaderValue::from_static("-")),
    }
}

/// Keeps or replaces the request's `X-Request-Id` (so the handler sees the id
/// in its headers too) and returns it.
pub fn assign(headers: &mut HeaderMap) -> HeaderValue {
    let id = of(headers);
    headers.insert(HEADER, id.clone());
    id
}

/// The id `assign` put on a request, as text.
pub fn get(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or_else(generate, str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_short_and_visible_ascii() {
        assert!(is_valid(b"abc-123"));
        assert!(is_valid("x".repeat(128).as_bytes()));
        assert!(!is_valid("x".repeat(129).as_bytes()));
        assert!(!is_valid(b""));
        assert!(!is_valid(b"has space"));
        assert!(!is_valid("caf\u{e9}".as_bytes()));
        assert!(!is_valid(b"tab\there"));
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(is_valid(a.as_bytes()));
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("mine"));
        assert_eq!(assign(&mut h), "mine");
        h.insert(HEADER, HeaderValue::from_static("not mine"));
        let given = assign(&mut h);
        assert_ne!(given, "not mine");
        assert_eq!(h.get(HEADER), Some(&given));
    }
}
