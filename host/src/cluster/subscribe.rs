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
        let Some(next) = hub.next_id(&message.path) else {
            return; // no such stream here
        };
        if self.behind.contains(&message.path) || next == 1 {
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
            if let Delivered::Gap(_) = self.deliver(hub, &message) {
                // The messages before it are gone from the log too.
                hub.restart_at(&path, message.id);
                self.deliver(hub, &message);
            }
        }
        Ok(())
    }

    fn deliver(&self, hub: &Hub, m: &Message) -> Delivered {
        hub.deliver(&m.path, m.id, &m.json, m.filter.clone())
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
                let (_, log) = stream_keys(&m.path);
                let first: StreamRangeReply = self
                    .link
                    .run(|mut c| async move {
                        redis::cmd("XRANGE")
                            .arg(log)
                            .arg("-")
                            .arg("+")
                            .arg("COUNT")
                            .arg(1)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                let first = first
                    .ids
                    .iter()
                    .filter_map(|e| entry(&m.path, e))
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
        let Some(next) = hub.next_id(path) else {
            return Ok(());
        };
        if next > 1 {
            return self.fill(hub, path, next, before).await;
        }
        // Nothing delivered here yet: the recent history becomes replay.
        let (_, log) = stream_keys(path);
        let end = match before {
            Some(0 | 1) => return Ok(()),
            Some(before) => format!("{}-0", before - 1),
            None => "+".to_string(),
        };
        let count = self.replay_messages;
        let recent: StreamRangeReply = self
            .link
            .run(|mut c| async move {
                redis::cmd("XREVRANGE")
                    .arg(log)
                    .arg(end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut history: Vec<Message> = recent.ids.iter().filter_map(|e| entry(path, e)).collect();
        history.reverse();
        // Only the newest epoch's messages are history still.
        if let Some(newest) = history.last().map(|m| m.epoch.clone()) {
            history.retain(|m| m.epoch == newest);
            self.epochs.insert(path.to_string(), newest);
        }
        let history = history
            .into_iter()
            .map(|m| (m.id, m.json, m.filter))
            .collect();
        hub.seed(path, history);
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
        let (_, log) = stream_keys(path);
        let end = match before {
            Some(before) if before <= from => return Ok(()),
            Some(before) => format!("{}-0", before - 1),
            None => "+".to_string(),
        };
        let start = format!("{from}-0");
        let missing: StreamRangeReply = self
            .link
            .run(|mut c| async move {
                redis::cmd("XRANGE")
                    .arg(log)
                    .arg(start)
                    .arg(end)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        for message in missing.ids.iter().filter_map(|e| entry(path, e)) {
            if self.epochs.get(path).is_some_and(|e| *e != message.epoch) {
                hub.restart_at(path, message.id);
            }
            self.epochs.insert(path.to_string(), message.epoch.clone());
            if let Delivered::Gap(_) = self.deliver(hub, &message) {
                // Older messages were trimmed from the log: they are lost here.
                hub.restart_at(path, message.id);
                self.deliver(hub, &message);
            }
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
