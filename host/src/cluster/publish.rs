//! Publishing a stream message through Redis.
//!
//! One Lua call per message does everything atomically: take the stream's
//! next id (`HINCRBY`), append the message to the stream's Redis Stream with
//! that id (`XADD … MAXLEN ~ replay-messages`, the history any node replays
//! from), and `PUBLISH` it to every node. Redis runs scripts one at a time,
//! so ids are handed out in publish order, cluster-wide.
//!
//! If the stream's counter is gone (a Redis that lost its data), the script
//! starts a new *epoch*: numbering resumes above the highest id the
//! publishing node has seen (its `floor`), so ids keep growing, and the epoch
//! lets every node see that the history before it is lost.
//!
//! Each log entry also notes Redis' clock (`t`, ms): a node catching up on a
//! stream for the first time tells the messages published before it created
//! the stream (history) from those after (news for its subscribers).
//!
//! Sends are queued to one task that writes them as a pipeline: a script can
//! publish many messages without waiting for a round trip each, while its
//! turn's answers wait for them to be accepted (`accepted.rs`).

use std::sync::Arc;

use redis::RedisResult;
use tokio::sync::mpsc;

use super::link::{unreachable, Link};
use super::{channel, stream_keys};
use crate::metrics::Metrics;
use crate::streams::{Outgoing, Params, Publisher, Settle};

/// Messages written in one pipeline at most.
const BATCH: usize = 512;

const PUBLISH: &str = r"
local t = redis.call('TIME')
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = t[1] .. '.' .. t[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', ARGV[6])
end
local id = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local ms = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], id .. '-0', 'd', ARGV[3], 'f', ARGV[4], 'e', epoch, 't', ms)
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\n' .. id .. '\n' .. epoch .. '\n' .. ARGV[4] .. '\n' .. ARGV[3])
return id
";

struct Job {
    path: String,
    json: String,
    filter: String,
    floor: u64,
    settle: Settle,
}

/// The hub's `Publisher` in cluster mode.
struct RedisPublisher {
    link: Arc<Link>,
    queue: mpsc::UnboundedSender<Job>,
    metrics: Arc<Metrics>,
}

/// Starts the publishing task; messages keep `replay_messages` of history.
pub(super) fn start(
    link: Arc<Link>,
    replay_messages: usize,
    metrics: Arc<Metrics>,
) -> Arc<dyn Publisher> {
    let (queue, jobs) = mpsc::unbounded_channel();
    tokio::spawn(run(
        link.clone(),
        jobs,
        replay_messages.max(1),
        metrics.clone(),
    ));
    Arc::new(RedisPublisher {
        link,
        queue,
        metrics,
    })
}

impl Publisher for RedisPublisher {
    fn publish(&self, message: Outgoing<'_>, settle: Settle) -> Result<(), String> {
        if !self.link.is_up() {
            self.metrics.cluster_messages("refused", 1);
            return Err(format!(
                "Redis at {} is unreachable; the message was not sent",
                self.link.display
            ));
        }
        let job = Job {
            path: message.path.to_string(),
            json: message.json.to_string(),
            filter: encode_filter(message.filter),
            floor: message.floor,
            settle,
        };
        self.queue
            .send(job)
            .map_err(|_| "the cluster publisher stopped".to_string())
    }
}

/// A filter as the Redis Stream and the channel carry it: `""` for none,
/// else a JSON array of pairs.
pub(super) fn encode_filter(filter: &Params) -> String {
    match filter.is_empty() {
        true => String::new(),
        false => serde_json::to_string(filter).unwrap_or_default(),
    }
}

async fn run(
    link: Arc<Link>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    replay_messages: usize,
    metrics: Arc<Metrics>,
) {
    let script = redis::Script::new(PUBLISH);
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let pipe = pipeline(&script, &batch, replay_messages);
        let mut result = send(&link, pipe.clone()).await;
        if let Err(e) = &result {
            // A Redis that restarted has forgotten the script: no call ran.
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) {
                let loaded = link
                    .run(|mut c| {
                        let script = script.clone();
                        async move { script.load_async(&mut c).await }
                    })
                    .await;
                if loaded.is_ok() {
                    result = send(&link, pipe).await;
                }
            }
        }
        let outcome = result
            .map(|_| ())
            .map_err(|e| unreachable(&link.display, &e));
        let label = if outcome.is_ok() {
            "published"
        } else {
            "failed"
        };
        metrics.cluster_messages(label, batch.len() as u64);
        if let Err(why) = &outcome {
            tracing::error!(
                messages = batch.len(),
                "stream messages not published: {why}"
            );
        }
        for job in batch {
            (job.settle)(outcome.clone());
        }
    }
}

/// One `EVALSHA` of the publish script per message, as one pipeline.
fn pipeline(script: &redis::Script, batch: &[Job], replay_messages: usize) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for job in batch {
        let (meta, log) = stream_keys(&job.path);
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(2)
            .arg(meta)
            .arg(log)
            .arg(channel())
            .arg(&job.path)
            .arg(&job.json)
            .arg(&job.filter)
            .arg(replay_messages)
            .arg(job.floor);
    }
    pipe
}

async fn send(link: &Link, pipe: redis::Pipeline) -> RedisResult<Vec<u64>> {
    link.run(|mut c| async move { pipe.query_async(&mut c).await })
        .await
}
