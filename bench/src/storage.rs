//! The `storage` section: durable writes with group commit, against the same
//! route writing nothing, and the cost of `storage.get` / `storage.list`
//! inside a handler. aiwebengine only (the baselines have no durable storage).

use anyhow::{Context, Result};

use crate::servers::Server;
use crate::{http, median, wrk, Bench};

const SCRIPT: &str = r#"
let n = 0;
routeRegistry.registerRoute("POST", "/s/write", () => {
  n++;
  storage.set("w" + (n % 10000), { n });
  return { body: { n } };
});
routeRegistry.registerRoute("POST", "/s/nowrite", () => {
  n++;
  return { body: { n } };
});
routeRegistry.registerRoute("POST", "/s/fill", () => {
  for (let i = 0; i < 1000; i++) storage.set("r" + String(i).padStart(4, "0"), { i, text: "some value" });
  return { body: "ok" };
});
// Per-operation cost in microseconds, measured inside one handler call.
routeRegistry.registerRoute("GET", "/s/cost", (req) => {
  const ops = Number(req.query.ops || 2000);
  let t0 = performance.now();
  for (let i = 0; i < ops; i++) storage.get("r" + String(i % 1000).padStart(4, "0"));
  const get = ((performance.now() - t0) * 1000) / ops;
  t0 = performance.now();
  for (let i = 0; i < ops; i++) String(i % 1000).padStart(4, "0");
  const base = ((performance.now() - t0) * 1000) / ops;
  const lists = Math.max(1, ops / 20);
  t0 = performance.now();
  for (let i = 0; i < lists; i++) storage.list({ prefix: "r", limit: 100 });
  const list = ((performance.now() - t0) * 1000) / lists;
  return { body: { get: get - base, list } };
});
"#;

pub async fn run(b: &mut Bench) -> Result<()> {
    let dir = b.work.join("storage-scripts");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("bench_storage.js"), SCRIPT)?;
    let kind = b.engine("aiwebengine", &[]);
    let server = Server::start(&kind, &dir).await?;
    let secs = if b.quick { 2 } else { 5 };
    let rounds = if b.quick { 1 } else { 3 };

    b.say("\n## Storage\n");
    b.say(&format!(
        "One script; data dir on the local disk; every write fsync'd before its response \
         (group commit). wrk -t2 -c64, {rounds} rounds of {secs} s, alternating; medians. \
         The 2-core machine was shared with other work while this ran.\n"
    ));
    b.say("| route | req/s | p50 ms | p99 ms |");
    b.say("|---|---:|---:|---:|");
    let routes = [
        ("POST /s/write (one durable key)", "/s/write"),
        ("POST /s/nowrite (same, no write)", "/s/nowrite"),
    ];
    let mut results = vec![Vec::new(); routes.len()];
    for round in 0..rounds {
        for i in 0..routes.len() {
            let k = (i + round) % routes.len();
            let path = routes[k].1;
            let _ = wrk(b, &server.addr, path, Some("{}"), 1).await;
            results[k].push(wrk(b, &server.addr, path, Some("{}"), secs).await?);
        }
    }
    for (k, (label, _)) in routes.iter().enumerate() {
        let rps = median(results[k].iter().map(|l| l.rps).collect());
        let p50 = median(results[k].iter().map(|l| l.p50_ms).collect());
        let p99 = median(results[k].iter().map(|l| l.p99_ms).collect());
        b.say(&format!("| {label} | {rps:.0} | {p50:.2} | {p99:.2} |"));
    }

    let mut conn = http::Conn::open(&server.addr).await?;
    let (status, _) = conn.request("POST", "/s/fill", "").await?;
    anyhow::ensure!(status == 200, "filling failed: {status}");
    let mut gets = Vec::new();
    let mut lists = Vec::new();
    for _ in 0..if b.quick { 3 } else { 9 } {
        let (status, body) = conn.request("GET", "/s/cost?ops=5000", "").await?;
        anyhow::ensure!(status == 200, "cost route failed: {status} {body}");
        gets.push(number(&body, "get").context("no get cost")?);
        lists.push(number(&body, "list").context("no list cost")?);
    }
    b.say("");
    b.say("| inside a handler (1,000 keys stored) | µs per call, median |");
    b.say("|---|---:|");
    b.say(&format!("| `storage.get(key)` | {:.2} |", median(gets)));
    b.say(&format!(
        "| `storage.list({{prefix, limit: 100}})` | {:.1} |",
        median(lists)
    ));
    server.stop().await;
    Ok(())
}

/// The number after `"name":` in a flat JSON object.
fn number(body: &str, name: &str) -> Option<f64> {
    let rest = body.split(&format!("\"{name}\":")).nth(1)?;
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest.get(..end)?.trim().parse().ok()
}
