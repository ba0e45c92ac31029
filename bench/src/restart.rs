//! The `restart` section: what a limit trip costs the next request. A trap
//! throws the script's instance away; the next call re-instantiates the
//! script (from the pre-initialised snapshot, then its source). Here a
//! `GET /bomb` trips the memory limit, and the `GET /ok` right after it pays
//! for the re-instantiation; compared with `GET /ok` on a live instance.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http::{self, Conn};
use crate::servers::Server;
use crate::{median, percentile, Bench};

const SCRIPT: &str = "restart.js";
const MEMORY_MB: &str = "16";

/// A route that answers at once and one that allocates until the memory
/// limit stops it (as tests/fixtures/hostile/alloc_bomb.js).
const SOURCE: &str = r#"// The restart section's script: /bomb trips the memory limit, /ok is the next call.
const hoard = [];
routeRegistry.registerRoute("GET", "/bomb", () => {
  while (true) hoard.push(new Uint8Array(1 << 20).fill(hoard.length & 255));
});
routeRegistry.registerRoute("GET", "/ok", () => ({ body: { ok: true } }));
"#;

/// Longest any one request may take before the section fails.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// One timed request on the keep-alive connection: status, body, milliseconds.
async fn timed(conn: &mut Conn, path: &str) -> Result<(u16, String, f64)> {
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(REQUEST_LIMIT, conn.request("GET", path, ""))
        .await
        .with_context(|| format!("GET {path}: no answer within {REQUEST_LIMIT:?}"))??;
    Ok((status, body, started.elapsed().as_secs_f64() * 1000.0))
}

/// `GET /ok`, which must answer 200 with its JSON body.
async fn ok(conn: &mut Conn, when: &str) -> Result<f64> {
    let (status, body, ms) = timed(conn, "/ok").await?;
    if status != 200 || !body.contains("\"ok\":true") {
        bail!("restart: GET /ok {when} answered {status}, not 200 with {{\"ok\":true}}: {body:?}");
    }
    Ok(ms)
}

/// `GET /bomb`, which must answer 503 because the memory limit stopped it
/// (not because the engine is backing off restarts, also a 503).
async fn bomb(conn: &mut Conn) -> Result<f64> {
    let (status, body, ms) = timed(conn, "/bomb").await?;
    if status != 503 || !body.contains("exceeded its memory limit") {
        bail!("restart: GET /bomb answered {status}, not 503 for the memory limit: {body:?}");
    }
    Ok(ms)
}

/// A counter of `restart.js` from `/_engine/metrics`: the sample of `metric`
/// whose labels include `labels` (0 before its first increment).
async fn counter(server: &Server, metric: &str, labels: &[&str]) -> Result<f64> {
    let (status, text) = http::once(&server.addr, "GET", "/_engine/metrics", "").await?;
    if status != 200 {
        bail!("restart: /_engine/metrics answered {status}");
    }
    let prefix = format!("{metric}{{");
    Ok(text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0))
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let rounds = if b.quick { 20 } else { 100 };
    let dir = b.work.join("restart");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(SCRIPT), SOURCE)?;
    let kind = b.engine(
        &format!("aiwebengine --memory-mb {MEMORY_MB}"),
        &["--memory-mb", MEMORY_MB],
    );
    let server = Server::start(&kind, &dir).await?;
    http::wait_for(&server.addr, "/ok", "\"ok\":true", Duration::from_secs(30)).await?;
    let script = format!("script=\"{SCRIPT}\"");
    let mut conn = Conn::open(&server.addr).await?;

    // Warm-up: the connection, the route, and two trips.
    for _ in 0..10 {
        ok(&mut conn, "in the warm-up").await?;
    }
    for _ in 0..2 {
        bomb(&mut conn).await?;
        ok(&mut conn, "after a trip in the warm-up").await?;
    }

    let restarts_before = counter(&server, "aiwebengine_script_restarts_total", &[&script]).await?;
    let trips_before = counter(
        &server,
        "aiwebengine_script_limit_trips_total",
        &[&script, "kind=\"memory\""],
    )
    .await?;
    let (mut normal, mut after, mut bombs) = (Vec::new(), Vec::new(), Vec::new());
    // Alternating: a trip is always followed by a successful call, which resets
    // the engine's count of consecutive failures (3 in a row back restarts off).
    for _ in 0..rounds {
        ok(&mut conn, "on a live instance").await?;
        normal.push(ok(&mut conn, "on a live instance").await?);
        bombs.push(bomb(&mut conn).await?);
        after.push(ok(&mut conn, "right after a trip").await?);
    }
    let restarts =
        counter(&server, "aiwebengine_script_restarts_total", &[&script]).await? - restarts_before;
    let trips = counter(
        &server,
        "aiwebengine_script_limit_trips_total",
        &[&script, "kind=\"memory\""],
    )
    .await?
        - trips_before;
    server.stop().await;
    if restarts != rounds as f64 || trips != rounds as f64 {
        bail!(
            "restart: {rounds} rounds, but the server counted {trips} memory trips and {restarts} restarts"
        );
    }

    b.say(&format!(
        "\n## Restart: re-instantiation after a limit trip (`--memory-mb {MEMORY_MB}`)\n"
    ));
    b.say(&format!(
        "One script with `GET /ok` (a small JSON body) and `GET /bomb` (allocates 1 MiB \
         arrays until the {MEMORY_MB} MiB memory limit stops it: 503, and the instance is \
         thrown away), on one keep-alive connection, {rounds} rounds of: `/ok`, `/ok` timed \
         (\"no trip\"), `/bomb`, `/ok` timed (\"right after a trip\": this call re-instantiates \
         the script). Every `/ok` answered 200, every `/bomb` 503 for the memory limit, and the \
         server's `aiwebengine_script_restarts_total` and memory `limit_trips_total` each grew by \
         exactly {rounds}. A success between trips keeps the engine from backing off restarts \
         (it does after 3 failures in a row). aiwebengine only: Node and Bun run every script \
         in one process, with no per-script sandbox to throw away and re-create.\n"
    ));
    b.say("| GET | median ms | p90 ms | calls |");
    b.say("|---|---:|---:|---:|");
    let (n50, n90) = (median(normal.clone()), percentile(normal, 0.9));
    let (a50, a90) = (median(after.clone()), percentile(after, 0.9));
    b.say(&format!(
        "| `/ok`, no trip | {n50:.3} | {n90:.3} | {rounds} |"
    ));
    b.say(&format!(
        "| `/ok` right after a trip (re-instantiates) | {a50:.3} | {a90:.3} | {rounds} |"
    ));
    b.say(&format!(
        "| re-instantiation ≈ after − no trip | {:.3} | {:.3} | |",
        a50 - n50,
        a90 - n90
    ));
    b.say(&format!(
        "| `/bomb` (fills {MEMORY_MB} MiB, trips, 503) | {:.3} | {:.3} | {rounds} |",
        median(bombs.clone()),
        percentile(bombs, 0.9)
    ));
    Ok(())
}
