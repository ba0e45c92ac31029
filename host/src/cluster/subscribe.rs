//! Every node's one subscription to the cluster's stream messages.
//!
//! Messages arrive on one channel in the order Redis numbered them and go to
//! the hub with `deliver`, which takes them only in id order. Whenever this
//! node may have missed some — a gap in the ids, a new or re-registered
//! stream, a lost subscription, a Redis that was away — it reads them from
//! the stream's Redis Stream (the same log every node replays from) before
//! going on, so subscribers get each message once, in order, and catch up on
//! whatever other nodes published while this one was cut off.
//!
//! A stream this node has delivered nothing on yet (it just started, or the
//! script was just loaded) is *seeded*: the log's recent history fills its
//! replay buffer without being sent to anyone, so a client reconnecting here
//! with a `Last-Event-ID` from another node is replayed exactly.
//!
//! Each message carries its stream's epoch; a new epoch means Redis lost the
//! history (it restarted empty), and clients with older ids get `missed`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::streams::{StreamId, StreamRangeReply};
use redis::RedisResult;
use tokio::sync::mpsc::UnboundedReceiver;

use super::link::{Link, CONNECT_TIMEOUT};
use super::{channel, stream_keys};
use crate::streams::{Delivered, Hub, Params};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often streams that could not catch up try again.
const RETRY: Duration = Duration::from_millis(250);

/// One stream message, from the channel or the log.
struct Message {
    path: String,
    id: u64,
    epoch: String,
    filter: Params,
    json: String,
    /// When Redis logged it (ms since the Unix epoch); 0 from the channel.
    at_ms: u64,
}

/// The channel's payload: `path \n id \n epoch \n filter \n json`.
fn parse(payload: &[u8]) -> Option<Message> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(5, '\n');
    Some(Message {
        path: parts.next()?.to_string(),
        id: parts.next()?.parse().ok()?,
        epoch: parts.next()?.to_string(),
        filter: decode_filter(parts.next()?)?,
        json: parts.next()?.to_string(),
        at_ms: 0,
    })
}

fn decode_filter(text: &str) -> Option<Params> {
    match text.is_empty() {
        true => Some(Vec::new()),
        false => serde_json::from_str(text).ok(),
    }
}

/// A log entry (`<id>-0` with fields d, f, e) of the stream at `path`.
fn entry(path: &str, e: &StreamId) -> Option<Message> {
    let (id, _) = e.id.split_once('-')?;
    Some(Message {
        path: path.to_string(),
        id: id.parse().ok()?,
        epoch: e.get("e")?,
        filter: decode_filter(&e.get::<String>("f")?)?,
        json: e.get("d")?,
        at_ms: e.get("t").unwrap_or(0),
    })
}

struct Follower {
    link: Arc<Link>,
    /// Each stream's epoch as last seen.
    epochs: HashMap<String, String>,
    /// Streams that may have missed messages and must read the log.
    behind: HashSet<String>,
    replay_messages: usize,
}

pub(super) async fn run(link: Arc<Link>, hub: Weak<Hub>, mut added: UnboundedReceiver<String>) {
    let Some(replay_messages) = hub.upgrade().map(|h| h.limits().replay_messages.max(1)) else {
        return;
    };
    let mut follower = Follower {
        link: link.clone(),
        epochs: HashMap::new(),
        behind: HashSet::new(),
        replay_messages,
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(paths) = hub.upgrade().map(|h| h.paths()) else {
            return;
        };
        let pubsub = match subscribe(&link).await {
            Ok(pubsub) => pubsub,
            Err(e) => {
                tracing::debug!("cluster subscription failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        // Whatever was published while we were not subscribed is in the logs.
        follower.behind.extend(paths);
        let mut messages = pubsub.into_on_message();
        let mut retry = tokio::time::interval(RETRY);
        loop {
            let Some(hub) = hub.upgrade() else {
                return;
            };
            follower.catch_up_behind(&hub).await;
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => match parse(message.get_payload_bytes()) {
                        Some(message) => follower.take(&hub, message).await,
                        None => tracing::warn!("ignoring a malformed cluster stream message"),
                    },
                    None => {
                        tracing::warn!("lost the cluster's stream subscription; reconnecting");
                        break;
                    }
                },
                path = added.recv() => match path {
                    Some(path) => { follower.behind.insert(path); }
                    None => return,
                },
                _ = retry.tick() => {}
            }
        }
    }
}

async fn subscribe(link: &Link) -> RedisResult<redis::aio::PubSub> {
    let connect = link.client().get_async_pubsub();
    let mut pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(pubsub) => pubsub?,
        Err(_) => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
    };
    pubsub.subscribe(channel()).await?;
    Ok(pubsub)
}

impl Follower {
    async fn catch_up_behind(&mut self, hub: &Hub) {
        let behind: Vec<String> = self.behind.iter().cloned().collect();
        for path in behind {
            if self.catch_up(hub, &path, None).await.is_ok() {
                self.behind.remove(&path);
            }
        }
    }

    /// A message from the channel.
    async fn take(&mut self, hub: &Hub, message: Message) {
        if hub.next_id(&message.path).is_none() {
            return; // no such stream here
        }
        if self.behind.contains(&message.path) || !hub.caught_up(&message.path) {
            // Read the log up to this message first (seeding a new stream).
            if self
                .catch_up(hub, &message.path, Some(message.id))
                .await
                .is_err()
            {
                self.behind.insert(message.path);
                return;
            }
            self.behind.remove(&message.path);
        }
        if let Err(e) = self.apply(hub, message).await {
            tracing::warn!("cluster stream catch-up failed: {e}; retrying");
        }
    }

    /// Delivers `message` in order, reading any messages missing before it
    /// from the log first.
    async fn apply(&mut self, hub: &Hub, message: Message) -> RedisResult<()> {
        let path = message.path.clone();
        self.check_epoch(hub, &message).await?;
        if let Delivered::Gap(expected) = self.deliver(hub, &message) {
            if let Err(e) = self.fill(hub, &path, expected, Some(message.id)).await {
                self.behind.insert(path);
                return Err(e);
            }
            // Still a gap: the messages before it are gone from the log too.
            self.deliver_past_gap(hub, &message);
        }
        Ok(())
    }

    fn deliver(&self, hub: &Hub, m: &Message) -> Delivered {
        hub.deliver(&m.path, m.id, &m.json, m.filter.clone())
    }

    /// Delivers `m`; if messages before it are missing for good (trimmed from
    /// the log, or lost with Redis' data), the stream restarts at it.
    fn deliver_past_gap(&self, hub: &Hub, m: &Message) {
        if let Delivered::Gap(_) = self.deliver(hub, m) {
            hub.restart_at(&m.path, m.id);
            self.deliver(hub, m);
        }
    }

    /// The entries of `path`'s log that `XRANGE`/`XREVRANGE` `args` name, as sent.
    async fn read_log(
        &self,
        path: &str,
        command: &'static str,
        args: Vec<String>,
    ) -> RedisResult<Vec<Message>> {
        let (_, log) = stream_keys(path);
        let reply: StreamRangeReply = self
            .link
            .run(|mut c| async move {
                redis::cmd(command)
                    .arg(log)
                    .arg(args)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.ids.iter().filter_map(|e| entry(path, e)).collect())
    }

    /// A message of a new epoch: Redis lost the stream's history, and
    /// numbering went on from the publisher's highest id. Restart the stream
    /// at the new epoch's first message.
    async fn check_epoch(&mut self, hub: &Hub, m: &Message) -> RedisResult<()> {
        match self.epochs.get(&m.path) {
            None => {
                self.epochs.insert(m.path.clone(), m.epoch.clone());
            }
            Some(epoch) if *epoch != m.epoch => {
                let first = self
                    .read_log(
                        &m.path,
                        "XRANGE",
                        ["-", "+", "COUNT", "1"].map(String::from).to_vec(),
                    )
                    .await?
                    .into_iter()
                    .find(|e| e.epoch == m.epoch)
                    .map_or(m.id, |e| e.id.min(m.id));
                hub.restart_at(&m.path, first);
                self.epochs.insert(m.path.clone(), m.epoch.clone());
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Brings `path` up to date with its log, up to (not including) `before`.
    async fn catch_up(&mut self, hub: &Hub, path: &str, before: Option<u64>) -> RedisResult<()> {
        let (Some(next), Some(registered_ms)) = (hub.next_id(path), hub.registered_ms(path)) else {
            return Ok(());
        };
        if hub.caught_up(path) {
            return self.fill(hub, path, next, before).await;
        }
        // First contact: the log's recent messages fill the replay buffer;
        // those logged after this node created the stream are news.
        let end = match before {
            Some(0 | 1) => None,
            Some(before) => Some(format!("{}-0", before - 1)),
            None => Some("+".to_string()),
        };
        let mut recent: Vec<Message> = Vec::new();
        if let Some(end) = end {
            let count = self.replay_messages.to_string();
            let range = vec![end, "-".into(), "COUNT".into(), count];
            recent = self.read_log(path, "XREVRANGE", range).await?;
            recent.reverse();
        }
        // Only the newest epoch's messages are history still.
        if let Some(newest) = recent.last().map(|m| m.epoch.clone()) {
            recent.retain(|m| m.epoch == newest);
            self.epochs.insert(path.to_string(), newest);
        }
        let after_recent = recent.last().map(|m| m.id + 1);
        let first = recent.first().map(|m| m.id).or(before).unwrap_or(1);
        let live_from = recent
            .iter()
            .find(|m| m.at_ms >= registered_ms)
            .map(|m| m.id)
            .or(after_recent)
            .unwrap_or(first);
        hub.start_at(path, first, live_from);
        for message in recent {
            self.deliver_past_gap(hub, &message);
        }
        Ok(())
    }

    /// Delivers the logged messages of `path` from `from` to (not including)
    /// `before`, in order.
    async fn fill(
        &mut self,
        hub: &Hub,
        path: &str,
        from: u64,
        before: Option<u64>,
    ) -> RedisResult<()> {
        let end = match before {
            Some(before) if before <= from => return Ok(()),
            Some(before) => format!("{}-0", before - 1),
            None => "+".to_string(),
        };
        let missing = self
            .read_log(path, "XRANGE", vec![format!("{from}-0"), end])
            .await?;
        for message in missing {
            if self.epochs.get(path).is_some_and(|e| *e != message.epoch) {
                hub.restart_at(path, message.id);
            }
            self.epochs.insert(path.to_string(), message.epoch.clone());
            // A gap here: older messages were trimmed from the log.
            self.deliver_past_gap(hub, &message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages_keep_newlines_in_the_data() {
        let m = parse(b"/chat\n42\n1700.5\n[[\"room\",\"1\"]]\n{\"a\":\"x\ny\"}").unwrap();
        assert_eq!(
            (m.path.as_str(), m.id, m.epoch.as_str()),
            ("/chat", 42, "1700.5")
        );
        assert_eq!(m.filter, vec![("room".to_string(), "1".to_string())]);
        assert_eq!(m.json, "{\"a\":\"x\ny\"}");
        assert!(parse(b"/chat\nnot-a-number\ne\n\n1").is_none());
        assert!(parse(b"/chat\n1\ne\n").is_none(), "no data field");
    }
}
