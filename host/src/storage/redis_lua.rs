//! The Redis storage layout and the Lua scripts that change it.
//!
//! A namespace `NS` is four Redis keys, all with the hash tag `{NS}` (so one
//! script may touch them all, even on Redis Cluster):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `aiwe:{NS}:data`  | hash   | key → the value's JSON bytes |
//! | `aiwe:{NS}:keys`  | zset   | every key, score 0: `ZRANGEBYLEX` walks them in byte (UTF-8) order |
//! | `aiwe:{NS}:usage` | hash   | `keys`, `bytes` (keys plus values), kept by the commit scripts |
//! | `aiwe:{NS}:lease` | string | the token of the turn holding the namespace, with a TTL |
//!
//! Each script runs atomically in Redis. The commit scripts apply a turn's
//! writes only while its lease still holds, update usage in the same step,
//! and give the lease back.

use redis::Script;

/// The four Redis keys of a namespace.
pub struct Keys {
    pub data: String,
    pub keys: String,
    pub usage: String,
    pub lease: String,
}

impl Keys {
    pub fn of(namespace: &str) -> Keys {
        let key = |what: &str| format!("aiwe:{{{namespace}}}:{what}");
        Keys {
            data: key("data"),
            keys: key("keys"),
            usage: key("usage"),
            lease: key("lease"),
        }
    }
}

/// What a commit script answers when the turn no longer holds the lease.
pub const LEASE_LOST: &str = "AIWE_LEASE_LOST";

/// KEYS: lease, usage. ARGV: token, ttl ms, a token of this node known dead
/// (or ""). Takes the lease if free (or held by the dead token): `{1, keys,
/// bytes}`; else `{0, ms left}`.
pub fn acquire() -> Script {
    Script::new(
        r"
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[3] then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local u = redis.call('HMGET', KEYS[2], 'keys', 'bytes')
return {1, tonumber(u[1]) or 0, tonumber(u[2]) or 0}
",
    )
}

/// KEYS: lease. ARGV: token. Deletes the lease if it is still the token's.
pub fn release() -> Script {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
}

/// KEYS: data, keys, usage, lease. ARGV: token, then per write the key, `1`
/// and the value for a put or `0` and `""` for a delete. Answers the usage
/// after it, `{keys, bytes}`.
pub fn write() -> Script {
    Script::new(
        r"
if redis.call('GET', KEYS[4]) ~= ARGV[1] then
  return redis.error_reply('AIWE_LEASE_LOST')
end
local dk, db = 0, 0
for i = 2, #ARGV, 3 do
  local k, put, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HSTRLEN', KEYS[1], k)
  if old > 0 or redis.call('HEXISTS', KEYS[1], k) == 1 then
    dk = dk - 1
    db = db - #k - old
  end
  if put == '1' then
    redis.call('HSET', KEYS[1], k, v)
    redis.call('ZADD', KEYS[2], 0, k)
    dk = dk + 1
    db = db + #k + #v
  else
    redis.call('HDEL', KEYS[1], k)
    redis.call('ZREM', KEYS[2], k)
  end
end
local keys = redis.call('HINCRBY', KEYS[3], 'keys', dk)
local bytes = redis.call('HINCRBY', KEYS[3], 'bytes', db)
if keys <= 0 then
  redis.call('DEL', KEYS[3])
end
redis.call('DEL', KEYS[4])
return {keys, bytes}
",
    )
}

/// KEYS: data, keys, usage, lease. ARGV: token, then key, value pairs
/// (distinct keys). Replaces the namespace; answers `{keys, bytes}`.
pub fn replace() -> Script {
    Script::new(
        r"
if redis.call('GET', KEYS[4]) ~= ARGV[1] then
  return redis.error_reply('AIWE_LEASE_LOST')
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local n, b = 0, 0
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], 0, ARGV[i])
  n = n + 1
  b = b + #ARGV[i] + #ARGV[i + 1]
end
if n > 0 then
  redis.call('HSET', KEYS[3], 'keys', n, 'bytes', b)
end
redis.call('DEL', KEYS[4])
return {n, b}
",
    )
}

/// KEYS: data, keys. ARGV: `ZRANGEBYLEX` min and max, limit. Answers key,
/// value, key, value… in key order, from one consistent state.
pub fn scan() -> Script {
    Script::new(
        r"
local ks = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, k in ipairs(ks) do
  local v = redis.call('HGET', KEYS[1], k)
  if v then
    out[#out + 1] = k
    out[#out + 1] = v
  end
end
return out
",
    )
}

/// The `ZRANGEBYLEX` bounds of keys starting with `prefix`, strictly after
/// `after`. No UTF-8 string holds the byte 0xFF, so every key with the prefix
/// sorts below `prefix` + 0xFF, and every key between `prefix` and that has it.
pub fn scan_bounds(prefix: &str, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let min = match after {
        Some(after) if after >= prefix => [b"(", after.as_bytes()].concat(),
        _ => [b"[", prefix.as_bytes()].concat(),
    };
    let max = if prefix.is_empty() {
        b"+".to_vec()
    } else {
        [b"(", prefix.as_bytes(), &[0xFF]].concat()
    };
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_namespace_hash_tag() {
        let keys = Keys::of("chat");
        assert_eq!(keys.data, "aiwe:{chat}:data");
        assert_eq!(keys.lease, "aiwe:{chat}:lease");
    }

    #[test]
    fn bounds_cover_the_prefix_after_the_cursor() {
        assert_eq!(scan_bounds("", None), (b"[".to_vec(), b"+".to_vec()));
        assert_eq!(
            scan_bounds("a", Some("ab")),
            (b"(ab".to_vec(), b"(a\xff".to_vec())
        );
        // A cursor before the prefix starts at the prefix.
        assert_eq!(scan_bounds("m", Some("a")).0, b"[m".to_vec());
    }
}
