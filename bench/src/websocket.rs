//! The `websocket` section: fan-out of one broadcast to 1,000 and 10,000
//! WebSocket subscribers, and the round trip client → script → broadcast →
//! other client, against Node (`ws`) and Bun (its built-in `ws`).
//!
//! The clients are raw sockets speaking just enough RFC 6455 (the handshake,
//! masked text frames with a zero key, the server's unmasked frames), in the
//! client process of `clients.rs`, on the other core than the server.

use anyhow::{Context, Result};

use crate::clients::{self, Clients};
use crate::servers::{Kind, Server};
use crate::Bench;

const PATH: &str = "/wsroom";

fn contenders(b: &Bench) -> Vec<Kind> {
    // Pings every 15 s would go unanswered by these raw clients.
    let mut all = vec![b.engine("aiwebengine", &["--keep-alive-secs", "3600"])];
    all.extend(b.peers.iter().cloned());
    all.into_iter().map(|k| k.pinned()).collect()
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let sizes: &[usize] = if b.quick { &[1000] } else { &[1000, 10_000] };
    // Fan-out times on these machines vary by a third between rounds: a
    // median of 15 is steadier than of 5, and each round is short.
    let rounds = if b.quick { 3 } else { 15 };
    let (trips, trip_rounds) = if b.quick { (50, 1) } else { (200, 3) };
    b.say("\n## WebSocket: fan-out, and a round trip through the script\n");
    b.say(&format!(
        "Fan-out: POST /wsroom/send until the last WebSocket subscriber has the message, median of {rounds}. \
         Round trip: one client sends a frame, the script's onMessage broadcasts it, another client receives it \
         ({trips} sequential trips, one every 12 ms: under the default cap of 100 messages a second per client; \
         {trip_rounds} rounds, the servers taking turns, all trips pooled). \
         Clients are raw sockets; {}.\n",
        clients::placement()
    ));
    b.say("| server | subscribers | fan-out ms (median) | worst ms |");
    b.say("|---|---:|---:|---:|");
    for &n in sizes {
        for kind in contenders(b) {
            let server = Server::start(&kind, &b.seed).await?;
            let args = [
                "fanout",
                "ws",
                &server.addr,
                PATH,
                "/wsroom/send",
                "tok-{round}",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([n.to_string(), rounds.to_string()])
            .collect::<Vec<_>>();
            let mut c = Clients::spawn(&args).await?;
            c.ready()
                .await
                .with_context(|| format!("{}: {n} WebSocket subscribers", kind.name))?;
            let times = c
                .go()
                .await
                .with_context(|| format!("{}: fan-out", kind.name))?;
            b.say(&format!(
                "| {} | {n} | {:.1} | {:.1} |",
                kind.name,
                crate::median(times.clone()),
                crate::percentile(times, 1.0)
            ));
            server.stop().await;
        }
    }
    b.say("\n| server | round trip p50 ms | p99 ms |");
    b.say("|---|---:|---:|");
    // The servers take turns, a fresh start each round, and each one's
    // trips are pooled: a machine that speeds up or slows down over the
    // minutes this takes then weighs on all of them alike.
    let servers = contenders(b);
    let mut times = vec![Vec::new(); servers.len()];
    for _ in 0..trip_rounds {
        for (kind, times) in servers.iter().zip(&mut times) {
            times.extend(round_trips(kind, &b.seed, trips).await?);
        }
    }
    for (kind, times) in servers.iter().zip(times) {
        let (p50, p99) = (crate::median(times.clone()), crate::percentile(times, 0.99));
        b.say(&format!("| {} | {p50:.3} | {p99:.3} |", kind.name));
    }
    Ok(())
}

/// `trips` round trips through a fresh `kind` server, each in ms.
async fn round_trips(kind: &Kind, seed: &std::path::Path, trips: usize) -> Result<Vec<f64>> {
    let server = Server::start(kind, seed).await?;
    let args = ["roundtrip", &server.addr, PATH]
        .iter()
        .map(|s| s.to_string())
        .chain([trips.to_string()])
        .collect::<Vec<_>>();
    let mut c = Clients::spawn(&args).await?;
    c.ready().await?;
    let got = c
        .go()
        .await
        .with_context(|| format!("{}: round trip", kind.name))?;
    server.stop().await;
    if got.len() != trips {
        anyhow::bail!(
            "{}: {} round trips measured of {trips}",
            kind.name,
            got.len()
        );
    }
    Ok(got)
}
