//! Heartbeats: each node refreshes a key with a TTL every second and notes
//! itself in a sorted set scored by that key's expiry (Redis' clock), so any
//! node can list the live ones without scanning the keyspace. The heartbeat
//! is also the link's probe: `/_engine` and fail-fast sends learn from it
//! that Redis came back, or went away, even when no script sends anything.

use std::sync::Weak;
use std::time::Duration;

use super::{Cluster, PREFIX};

const EVERY: Duration = Duration::from_secs(1);
const TTL_MS: u64 = 3_000;

const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return redis.call('ZRANGE', KEYS[2], 0, -1)
";

pub(super) async fn heartbeat(cluster: Weak<Cluster>) {
    let beat = redis::Script::new(BEAT);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    loop {
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let node = cluster.node.clone();
        let key = format!("{PREFIX}node:{node}");
        let beat = &beat;
        let info = serde_json::json!({ "pid": std::process::id(), "started": started }).to_string();
        let result: redis::RedisResult<Vec<String>> = cluster
            .link
            .run(|mut c| async move {
                beat.key(&key)
                    .key(format!("{PREFIX}nodes"))
                    .arg(&node)
                    .arg(info)
                    .arg(TTL_MS)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        match result {
            Ok(mut nodes) => {
                nodes.sort();
                cluster.set_nodes(nodes)
            }
            Err(_) => cluster.set_nodes(Vec::new()),
        }
        drop(cluster);
        tokio::time::sleep(EVERY).await;
    }
}
