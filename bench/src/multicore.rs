//! The `multicore` section: the same wrk load on a server pinned to one core
//! and to two, over a route spread across five scripts. aiwebengine runs
//! scripts' calls on its worker threads (one per core), different scripts in
//! parallel, so five scripts can use more than one core; Node and Bun serve
//! them all from one event loop.

use anyhow::{bail, Result};

use crate::servers::{Kind, Server};
use crate::{http, median, wrk_on, Bench, Load};

const SCRIPTS: usize = 5;

/// Script `n` of the five: one small JSON route of its own, as
/// `bench/scripts/json.js`.
fn script(n: usize) -> String {
    format!(
        "// The multicore section's script {n} of {SCRIPTS}: its own instance, its own route.\n\
         routeRegistry.registerRoute(\"GET\", \"/mc/{n}\", () => ({{ body: {{ ok: true, script: {n} }} }}));\n"
    )
}

/// A wrk `request` function that asks for the five paths in turn (per wrk
/// thread, each of which has its own Lua state).
fn round_robin_lua() -> String {
    let paths: Vec<String> = (1..=SCRIPTS).map(|n| format!("\"/mc/{n}\"")).collect();
    format!(
        "local paths = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n",
        paths.join(", ")
    )
}

/// Where things run: the server on one core, then on two; wrk on cores of
/// its own when the machine has three or more, else on the second core.
struct Placement {
    one: &'static str,
    two: &'static str,
    wrk: String,
    shared: bool,
}

fn placement() -> Option<Placement> {
    // `taskset` present and at least two cores (the same test as the other sections).
    crate::clients::cores()?;
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (wrk, shared) = match n {
        0..=2 => ("1".to_string(), true),
        3 => ("2".to_string(), false),
        _ => (format!("2-{}", n - 1), false),
    };
    Some(Placement {
        one: "0",
        two: "0,1",
        wrk,
        shared,
    })
}

pub async fn run(b: &mut Bench) -> Result<()> {
    b.say(&format!(
        "\n## Multicore: a route spread over {SCRIPTS} scripts, server on one core and on two\n"
    ));
    let Some(place) = placement() else {
        b.say("Skipped: needs `taskset` and at least two cores.");
        return Ok(());
    };
    let secs = if b.quick { 2 } else { 5 };
    let rounds = if b.quick { 1 } else { 3 };

    let dir = b.work.join("multicore");
    std::fs::create_dir_all(&dir)?;
    for n in 1..=SCRIPTS {
        std::fs::write(dir.join(format!("mc{n}.js")), script(n))?;
    }
    let lua = b.work.join("multicore.lua");
    std::fs::write(&lua, round_robin_lua())?;

    // Every contender twice: on one core, then on two.
    let mut rows: Vec<(Kind, usize, &str)> = Vec::new();
    for kind in b.contenders() {
        rows.push((kind.on_cores(place.one), 1, place.one));
        rows.push((kind.on_cores(place.two), 2, place.two));
    }
    let mut servers = Vec::new();
    for (kind, cores, _) in &rows {
        let server = Server::start(kind, &dir).await?;
        // Each path answers, from its own script.
        let mut conn = http::Conn::open(&server.addr).await?;
        for n in 1..=SCRIPTS {
            let (status, body) = conn.request("GET", &format!("/mc/{n}"), "").await?;
            if status != 200 || !body.contains(&format!("\"script\":{n}")) {
                bail!(
                    "{} on {cores} core(s): GET /mc/{n} answered {status} {body:?}",
                    kind.name
                );
            }
        }
        servers.push(server);
    }

    b.say(&format!(
        "{SCRIPTS} copies of a small JSON route (`bench/scripts/json.js`), each its own script \
         (`mc1.js` … `mc{SCRIPTS}.js`, `GET /mc/1` … `/mc/{SCRIPTS}`) and the only scripts in the \
         folder; wrk asks for the {SCRIPTS} paths in turn (a Lua `request` function), so the load \
         spreads over {SCRIPTS} script instances. wrk -t2 -c64, {rounds} rounds of {secs} s per row, \
         alternating; medians.\n"
    ));
    b.say(&format!(
        "Placement: the server runs under `taskset -c {}` (1 core) or `taskset -c {}` (2 cores); \
         wrk under `taskset -c {}` in every row{}. aiwebengine runs the scripts' calls on its \
         worker threads (`--workers`, one per core by default; two here), different scripts in \
         parallel; Node and Bun serve all {SCRIPTS} scripts (each in a `node:vm` context) \
         from one JavaScript thread.\n",
        place.one,
        place.two,
        place.wrk,
        if place.shared {
            ". This machine has two cores, so in the 2-core rows the server shares core 1 \
             with wrk (which also needs CPU to produce the load): the ratio is what the server \
             gets from a second core it shares, less than a core of its own would give"
        } else {
            ", cores the server never runs on"
        }
    ));
    b.say("| server | cores | req/s | p50 ms | p99 ms | 2-core / 1-core |");
    b.say("|---|---:|---:|---:|---:|---:|");

    let mut results: Vec<Vec<Load>> = vec![Vec::new(); rows.len()];
    for round in 0..rounds {
        for i in 0..rows.len() {
            let k = (i + round) % rows.len();
            let addr = &servers[k].addr;
            // A short warm-up so JITs (and caches) are comparable.
            let _ = wrk_on(addr, "/mc/1", Some(&lua), Some(&place.wrk), 1).await;
            results[k].push(wrk_on(addr, "/mc/1", Some(&lua), Some(&place.wrk), secs).await?);
        }
    }
    let mut one_core_rps = f64::NAN;
    for (k, (kind, cores, cpus)) in rows.iter().enumerate() {
        let rps = median(results[k].iter().map(|l| l.rps).collect());
        let p50 = median(results[k].iter().map(|l| l.p50_ms).collect());
        let p99 = median(results[k].iter().map(|l| l.p99_ms).collect());
        let ratio = if *cores == 1 {
            one_core_rps = rps;
            String::new()
        } else {
            format!("{:.2}x", rps / one_core_rps)
        };
        b.say(&format!(
            "| {} | {cores} (`-c {cpus}`) | {rps:.0} | {p50:.2} | {p99:.2} | {ratio} |",
            kind.name
        ));
    }
    b.say("\n\"2-core / 1-core\": the server's requests/s on two cores divided by its requests/s on one.");
    // aiwebengine counts requests per script: check the load did reach all five.
    for ((kind, cores, _), server) in rows.iter().zip(&servers) {
        if kind.is_engine() {
            let mut conn = http::Conn::open(&server.addr).await?;
            let (_, metrics) = conn.request("GET", "/_engine/metrics", "").await?;
            let counts = served_per_script(&metrics);
            if counts.len() != SCRIPTS || counts.contains(&0) {
                bail!(
                    "{} on {cores} core(s): 2xx per script {counts:?}, not all {SCRIPTS} scripts",
                    kind.name
                );
            }
        }
    }
    for s in servers {
        s.stop().await;
    }
    Ok(())
}

/// From aiwebengine's `/_engine/metrics`: the 2xx responses of each `mcN.js`.
fn served_per_script(metrics: &str) -> Vec<u64> {
    (1..=SCRIPTS)
        .filter_map(|n| {
            let label = format!("script=\"mc{n}.js\"");
            metrics
                .lines()
                .filter(|l| l.starts_with("aiwebengine_http_requests_total{"))
                .find(|l| l.contains(&label) && l.contains("status_class=\"2xx\""))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .map(|v| v as u64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{round_robin_lua, script, served_per_script};

    #[test]
    fn each_script_has_its_own_route_and_wrk_visits_them_all() {
        assert!(script(3).contains("\"/mc/3\""));
        assert!(script(3).contains("script: 3"));
        let lua = round_robin_lua();
        for n in 1..=5 {
            assert!(lua.contains(&format!("\"/mc/{n}\"")));
        }
    }

    #[test]
    fn reads_the_requests_of_each_script() {
        let metrics = (1..=5)
            .map(|n| format!("aiwebengine_http_requests_total{{method=\"GET\",route=\"/mc/{n}\",script=\"mc{n}.js\",status_class=\"2xx\"}} {}\n", n * 10))
            .collect::<String>();
        assert_eq!(served_per_script(&metrics), [10, 20, 30, 40, 50]);
        assert_eq!(
            served_per_script(&metrics.replace("mc3.js", "x.js")).len(),
            4
        );
    }
}
