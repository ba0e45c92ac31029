//! `make bench`: aiwebengine against the same scripts on Node.js and Bun
//! (bench/node/engine.mjs), measured side by side in one run, alternating
//! A B C A B C because these machines are noisy. Prints tables and writes
//! BENCHMARKS.md.
//!
//! Sections: startup, throughput (wrk, 64 connections), isolation overhead,
//! multicore (five scripts, the server on one core and on two), fan-out and
//! memory per subscriber, memory (RSS and PSS) and load time per script,
//! re-instantiation after a limit trip, hot-reload latency, WebSocket
//! fan-out and round trip, durable storage, cluster mode (two nodes through
//! Redis). `--quick` shortens every run (for a smoke test). A full run rewrites
//! BENCHMARKS.md; some sections run alone (`bench/run.sh websocket cluster`)
//! replace only their own sections there.

mod clients;
mod cluster;
mod http;
mod multicore;
mod restart;
mod servers;
mod storage;
mod websocket;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::AsyncReadExt;

use clients::Clients;
use servers::{Kind, Server};

struct Bench {
    root: PathBuf,
    work: PathBuf,
    seed: PathBuf,
    cache: PathBuf,
    peers: Vec<Kind>,
    quick: bool,
    out: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

impl Bench {
    fn say(&mut self, line: &str) {
        println!("{line}");
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn engine(&self, name: &str, extra: &[&str]) -> Kind {
        let mut args = vec!["--no-watch"];
        args.extend(extra);
        Kind::engine(&self.root, name, &self.cache, &args)
    }

    /// aiwebengine, then each baseline runtime that is installed.
    fn contenders(&self) -> Vec<Kind> {
        let mut all = vec![self.engine("aiwebengine", &[])];
        all.extend(self.peers.iter().cloned());
        all
    }
}

/// One wrk run's numbers.
#[derive(Clone, Copy, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, factor) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * factor)
}

async fn wrk(b: &Bench, addr: &str, path: &str, post: Option<&str>, secs: u64) -> Result<Load> {
    let mut lua = None;
    if let Some(body) = post {
        let file = b.work.join("post.lua");
        std::fs::write(
            &file,
            format!("wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"),
        )?;
        lua = Some(file);
    }
    wrk_on(addr, path, lua.as_deref(), None, secs).await
}

/// `wrk -t2 -c64 --latency` for `secs` on `path`, with a Lua script if given,
/// under `taskset -c cpus` if given.
async fn wrk_on(
    addr: &str,
    path: &str,
    lua: Option<&Path>,
    cpus: Option<&str>,
    secs: u64,
) -> Result<Load> {
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut c = tokio::process::Command::new("taskset");
            c.args(["-c", cpus, "wrk"]);
            c
        }
        None => tokio::process::Command::new("wrk"),
    };
    cmd.args(["-t2", "-c64", &format!("-d{secs}s"), "--latency"]);
    if let Some(lua) = lua {
        cmd.arg("-s").arg(lua);
    }
    let out = cmd
        .arg(format!("http://{addr}{path}"))
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut load = Load::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            load.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("50%") {
            load.p50_ms = parse_ms(v).unwrap_or(f64::NAN);
        } else if let Some(v) = line.strip_prefix("99%") {
            load.p99_ms = parse_ms(v).unwrap_or(f64::NAN);
        }
    }
    if load.rps == 0.0 || text.contains("Non-2xx") {
        bail!(
            "wrk on {path} failed or saw errors:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(load)
}

/// Subscribers that read and discard everything (the "10 subscribers attached").
async fn idle_readers(
    addr: &str,
    path: &str,
    n: usize,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut s = http::subscribe(addr, path).await?;
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        }));
    }
    Ok(tasks)
}

async fn throughput(
    b: &mut Bench,
    title: &str,
    kinds: &[Kind],
    routes: &[(&str, &str, Option<&str>, usize)],
) -> Result<()> {
    let secs = if b.quick { 2 } else { 5 };
    let rounds = if b.quick { 1 } else { 3 };
    let mut servers = Vec::new();
    for kind in kinds {
        servers.push(Server::start(kind, &b.seed).await?);
    }
    b.say(&format!("\n## {title}\n"));
    b.say(&format!(
        "wrk -t2 -c64, {rounds} rounds of {secs} s per server, alternating; medians.\n"
    ));
    let mut header = "| route | server | req/s | p50 ms | p99 ms |".to_string();
    if kinds.len() > 1 {
        header.push_str(" vs |");
    }
    b.say(&header);
    b.say(&format!(
        "|---|---|---:|---:|---:|{}",
        if kinds.len() > 1 { "---|" } else { "" }
    ));
    for (label, path, post, subs) in routes {
        let mut results: Vec<Vec<Load>> = vec![Vec::new(); kinds.len()];
        for round in 0..rounds {
            for i in 0..kinds.len() {
                let k = (i + round) % kinds.len();
                let readers = idle_readers(&servers[k].addr, "/chat", *subs).await?;
                // A short warm-up so JITs (and caches) are comparable.
                let _ = wrk(b, &servers[k].addr, path, *post, 1).await;
                results[k].push(wrk(b, &servers[k].addr, path, *post, secs).await?);
                readers.iter().for_each(|t| t.abort());
            }
        }
        let first = median(results[0].iter().map(|l| l.rps).collect());
        for (k, kind) in kinds.iter().enumerate() {
            let rps = median(results[k].iter().map(|l| l.rps).collect());
            let p50 = median(results[k].iter().map(|l| l.p50_ms).collect());
            let p99 = median(results[k].iter().map(|l| l.p99_ms).collect());
            let vs = if k == 0 || kinds.len() == 1 {
                String::new()
            } else {
                format!(" {:.2}x |", first / rps)
            };
            let vs = if kinds.len() > 1 && k == 0 {
                " |".to_string()
            } else {
                vs
            };
            b.say(&format!(
                "| {label} | {} | {rps:.0} | {p50:.2} | {p99:.2} |{vs}",
                kind.name
            ));
        }
    }
    if kinds.len() > 1 {
        b.say("\n\"vs\": the first row's requests/s divided by this row's.");
    }
    for s in servers {
        s.stop().await;
    }
    Ok(())
}

async fn startup(b: &mut Bench) -> Result<()> {
    let runs = if b.quick { 2 } else { 5 };
    b.say("\n## Startup: process start to first response of GET /stocks, five seed scripts\n");
    b.say("| server | cache | median ms | runs |");
    b.say("|---|---|---:|---:|");
    // An empty cache, as on a fresh machine: the default limits start from the
    // guest build.rs compiled; other limits (here wasm fuel on) compile it at start.
    for (label, extra) in [
        ("cold: empty cache, built-in compiled guest", &[][..]),
        (
            "cold: empty cache, --fuel 2000000000 (compiles the sandbox)",
            &["--fuel", "2000000000"][..],
        ),
    ] {
        let mut cold = Vec::new();
        for i in 0..runs.min(3) {
            let cache = b.work.join(format!("cold-cache-{}-{i}", extra.len()));
            let args = [&["--no-watch"][..], extra].concat();
            let kind = Kind::engine(&b.root, "aiwebengine", &cache, &args);
            cold.push(time_to_first_response(&kind, &b.seed).await?);
        }
        b.say(&format!(
            "| aiwebengine | {label} | {:.0} | {} |",
            median(cold.clone()),
            cold.len()
        ));
    }
    let mut kinds = vec![b.engine("aiwebengine", &[])];
    kinds.extend(b.peers.iter().cloned());
    for kind in kinds {
        let mut warm = Vec::new();
        for _ in 0..runs {
            warm.push(time_to_first_response(&kind, &b.seed).await?);
        }
        let cache = if kind.is_engine() { "warm" } else { "-" };
        b.say(&format!(
            "| {} | {cache} | {:.0} | {runs} |",
            kind.name,
            median(warm)
        ));
    }
    Ok(())
}

async fn time_to_first_response(kind: &Kind, scripts: &Path) -> Result<f64> {
    let started = Instant::now();
    let server = Server::start(kind, scripts).await?;
    http::wait_for(
        &server.addr,
        "/stocks",
        "LIVE STOCK TICKER",
        Duration::from_secs(60),
    )
    .await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    server.stop().await;
    Ok(ms)
}

async fn fan_out(b: &mut Bench) -> Result<()> {
    let sizes: &[usize] = if b.quick { &[1000] } else { &[1000, 10_000] };
    let rounds = if b.quick { 3 } else { 5 };
    b.say("\n## Fan-out: POST /chat/send to the last subscriber of /chat receiving it\n");
    b.say(&format!(
        "Median of {rounds} broadcasts; the subscribers are raw sockets; {}.\n",
        clients::placement()
    ));
    b.say(
        "| server | subscribers | fan-out ms (median) | worst ms | RSS per idle subscriber KiB |",
    );
    b.say("|---|---:|---:|---:|---:|");
    for &n in sizes {
        for kind in b.contenders() {
            let server = Server::start(&kind.pinned(), &b.seed).await?;
            let rss_before = server.rss()?;
            let args = [
                "fanout",
                "sse",
                &server.addr,
                "/chat",
                "/chat/send",
                r#"{"user":"bench","message":"tok-{round}"}"#,
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([n.to_string(), rounds.to_string()])
            .collect::<Vec<_>>();
            let mut c = Clients::spawn(&args).await?;
            c.ready()
                .await
                .with_context(|| format!("{}: {n} subscribers", kind.name))?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let per_sub_kib = (server.rss()? as f64 - rss_before as f64) / n as f64 / 1024.0;
            let times = c
                .go()
                .await
                .with_context(|| format!("{}: fan-out", kind.name))?;
            b.say(&format!(
                "| {} | {n} | {:.1} | {:.1} | {:.1} |",
                kind.name,
                median(times.clone()),
                percentile(times, 1.0),
                per_sub_kib
            ));
            server.stop().await;
        }
    }
    Ok(())
}

async fn many_scripts(b: &mut Bench) -> Result<()> {
    let n = if b.quick { 100 } else { 1000 };
    let stocks = std::fs::read_to_string(b.root.join("scripts/stocks.js"))?;
    let make = |count: usize, dir: &Path| -> Result<()> {
        std::fs::create_dir_all(dir)?;
        for i in 0..count {
            // Each copy under its own path prefix, so none conflicts with another.
            let source = stocks
                .replace(
                    "registerStreamRoute(\"/",
                    &format!("registerStreamRoute(\"/s{i}/"),
                )
                .replace(", \"/", &format!(", \"/s{i}/"));
            std::fs::write(dir.join(format!("stocks_{i:04}.js")), source)?;
        }
        Ok(())
    };
    let one = b.work.join("one-script");
    let many = b.work.join("many-scripts");
    make(1, &one)?;
    make(n, &many)?;
    b.say(&format!("\n## Many scripts: {n} copies of stocks.js\n"));
    b.say(
        "Both RSS and PSS are shown because every aiwebengine instance maps the same \
         copy-on-write snapshot, which RSS counts once per instance while PSS divides each \
         shared page among its mappings and so counts it once (Node and Bun do not share \
         pages this way, so for them the two are close). Both are read at the same moments: \
         with 1 script once the server listens, with all once the last copy answers; per \
         script = (with all − with 1) / (n − 1).\n",
    );
    b.say("| server | load time to listening, ms | RSS with 1 script MiB | RSS with all MiB | RSS per script KiB | PSS with 1 script MiB | PSS with all MiB | PSS per script KiB |");
    b.say("|---|---:|---:|---:|---:|---:|---:|---:|");
    for kind in b.contenders() {
        let base = Server::start(&kind, &one).await?;
        let (rss1, pss1) = (base.rss()? as f64, base.pss()? as f64);
        base.stop().await;
        let all = Server::start(&kind, &many).await?;
        http::wait_for(
            &all.addr,
            &format!("/s{}/stocks", n - 1),
            "LIVE STOCK TICKER",
            Duration::from_secs(30),
        )
        .await?;
        let (rss, pss) = (all.rss()? as f64, all.pss()? as f64);
        let load_ms = all.started.as_secs_f64() * 1000.0;
        all.stop().await;
        let mib = |bytes: f64| bytes / 1048576.0;
        let per_script =
            |with_all: f64, with_one: f64| (with_all - with_one) / (n - 1) as f64 / 1024.0;
        b.say(&format!(
            "| {} | {load_ms:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} |",
            kind.name,
            mib(rss1),
            mib(rss),
            per_script(rss, rss1),
            mib(pss1),
            mib(pss),
            per_script(pss, pss1),
        ));
    }
    Ok(())
}

async fn reload(b: &mut Bench) -> Result<()> {
    let iterations = if b.quick { 5 } else { 20 };
    let dir = b.work.join("reload");
    std::fs::create_dir_all(&dir)?;
    let stocks = std::fs::read_to_string(b.root.join("scripts/stocks.js"))?;
    let version = |v: usize| {
        format!("{stocks}\nrouteRegistry.registerRoute(\"GET\", \"/version\", () => ({{ body: \"version-{v}\" }}));\n")
    };
    std::fs::write(dir.join("reload.js"), version(0))?;
    let kind = Kind::engine(&b.root, "aiwebengine", &b.cache, &[]);
    let server = Server::start(&kind, &dir).await?;
    http::wait_for(
        &server.addr,
        "/version",
        "version-0",
        Duration::from_secs(10),
    )
    .await?;
    let mut times = Vec::new();
    for v in 1..=iterations {
        let started = Instant::now();
        std::fs::write(dir.join("reload.js"), version(v))?;
        let mut conn = http::Conn::open(&server.addr).await?;
        loop {
            let (_, body) = conn.request("GET", "/version", "").await?;
            if body == format!("version-{v}") {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("version {v} never served");
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
    b.say(&format!(
        "\n## Hot reload: file write to first response of the new version ({} KB script)\n",
        stocks.len() / 1024
    ));
    b.say("| writes | median ms | p90 ms | worst ms |");
    b.say("|---:|---:|---:|---:|");
    b.say(&format!(
        "| {iterations} | {:.1} | {:.1} | {:.1} |",
        median(times.clone()),
        percentile(times.clone(), 0.9),
        percentile(times, 1.0)
    ));
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

async fn version(program: &Path) -> String {
    match tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Err(_) => "?".into(),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The subscriber sockets' own process (see clients.rs).
    if args.first().is_some_and(|a| a == "--clients") {
        return clients::main(args.get(1..).unwrap_or_default());
    }
    tokio::runtime::Runtime::new()?.block_on(bench(args))
}

async fn bench(args: Vec<String>) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let root = std::env::current_dir()?;
    let work = std::env::temp_dir().join(format!("aiwebengine-bench-{}", std::process::id()));
    let seed = work.join("seed");
    std::fs::create_dir_all(&seed)?;
    for dir in [root.join("scripts"), root.join("bench/scripts")] {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "js") {
                std::fs::copy(&path, seed.join(path.file_name().unwrap()))?;
            }
        }
    }
    let mut peers = Vec::new();
    let node = PathBuf::from("node");
    peers.push(Kind::baseline(&root, "node", node.clone()));
    let bun = root.join("bench/node_modules/.bin/bun");
    if bun.exists() {
        peers.push(Kind::baseline(&root, "bun", bun.clone()));
    } else {
        println!("(bun not installed: run `npm ci` in bench/; comparing against node only)");
    }
    let mut b = Bench {
        cache: work.join("cache"),
        root,
        work: work.clone(),
        seed,
        peers,
        quick,
        out: String::new(),
    };
    let started = humantime_now();
    b.say("# aiwebengine benchmarks\n");
    b.say(&format!("- date: {started}"));
    b.say(&format!("- machine: {}", machine()));
    b.say(&format!(
        "- command: `make bench`{}",
        if quick { " (quick)" } else { "" }
    ));
    b.say(&format!(
        "- node {} / bun {}",
        version(&node).await,
        if bun.exists() {
            version(&bun).await
        } else {
            "-".into()
        }
    ));
    b.say("- all servers run the same `scripts/` (the seed examples) plus `bench/scripts/json.js`; aiwebengine is the release build with default limits unless a row says otherwise");

    let wants = |s: &str| only.is_empty() || only.contains(&s);
    if wants("startup") {
        startup(&mut b).await?;
    }
    if wants("throughput") {
        let routes = [
            ("GET /stocks", "/stocks", None, 0),
            (
                "POST /chat/send, 10 subscribers",
                "/chat/send",
                Some(r#"{"user":"bench","message":"hello"}"#),
                10,
            ),
            ("GET /json", "/json", None, 0),
        ];
        let kinds = b.contenders();
        throughput(&mut b, "Throughput and latency", &kinds, &routes).await?;
    }
    if wants("isolation") {
        let kinds = vec![
            b.engine("aiwebengine CPU budget + deadline (default)", &[]),
            b.engine(
                "aiwebengine wasm fuel + deadline (--cpu-budget 0 --fuel 2000000000)",
                &["--cpu-budget", "0", "--fuel", "2000000000"],
            ),
            b.engine(
                "aiwebengine no limits (--cpu-budget 0 --timeout-ms 0)",
                &["--cpu-budget", "0", "--timeout-ms", "0"],
            ),
        ];
        let routes = [
            ("GET /json", "/json", None, 0),
            ("GET /stocks", "/stocks", None, 0),
        ];
        throughput(
            &mut b,
            "Isolation overhead: limits on vs off",
            &kinds,
            &routes,
        )
        .await?;
    }
    if wants("multicore") {
        multicore::run(&mut b).await?;
    }
    if wants("fanout") {
        fan_out(&mut b).await?;
    }
    if wants("websocket") {
        websocket::run(&mut b).await?;
    }
    if wants("scripts") {
        many_scripts(&mut b).await?;
    }
    if wants("restart") {
        restart::run(&mut b).await?;
    }
    if wants("reload") {
        reload(&mut b).await?;
    }
    if wants("storage") {
        storage::run(&mut b).await?;
    }
    if wants("cluster") {
        cluster::run(&mut b).await?;
    }
    if !quick && only.is_empty() {
        std::fs::write(b.root.join("BENCHMARKS.md"), &b.out)?;
        println!("\nwrote BENCHMARKS.md");
    } else if !quick {
        // Some sections alone: keep the others' numbers, replace theirs.
        let path = b.root.join("BENCHMARKS.md");
        let mut doc = std::fs::read_to_string(&path).unwrap_or_default();
        let note = format!(
            "\n_This section: `bench/run.sh {}`, {started}, {}._\n",
            only.join(" "),
            machine()
        );
        // Each section this run wrote starts with its `## ` heading.
        for section in b.out.split("\n## ").skip(1) {
            let text = format!("## {section}");
            // "## WebSocket: fan-out, ..." is found by "## WebSocket".
            let heading = text.lines().next().unwrap_or_default();
            let heading = heading.split(':').next().unwrap_or(heading);
            doc = splice(&doc, heading, &format!("{text}{note}"));
            println!("\nreplaced the section {heading} of BENCHMARKS.md");
        }
        std::fs::write(&path, doc)?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// `doc` with its section that starts with the heading `heading` (up to the
/// next `## ` heading) replaced by `section`, or `section` appended.
fn splice(doc: &str, heading: &str, section: &str) -> String {
    let section = section.trim_matches('\n');
    let Some(start) = doc
        .match_indices(heading)
        .map(|(at, _)| at)
        .find(|&at| at == 0 || doc[..at].ends_with('\n'))
    else {
        return format!("{}\n\n{section}\n", doc.trim_end());
    };
    let after = start + heading.len();
    let end = doc[after..]
        .find("\n## ")
        .map_or(doc.len(), |i| after + i + 1);
    let rest = &doc[end..];
    let sep = if rest.is_empty() { "\n" } else { "\n\n" };
    format!("{}{section}{sep}{rest}", &doc[..start])
}

fn humantime_now() -> String {
    let out = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::splice;

    #[test]
    fn splices_one_section() {
        let doc = "# t\n\n## A\n\na\n\n## Cluster: x\n\nold\n\n## B\n\nb\n";
        let new = splice(doc, "## Cluster", "\n## Cluster: y\n\nnew\n");
        assert_eq!(
            new,
            "# t\n\n## A\n\na\n\n## Cluster: y\n\nnew\n\n## B\n\nb\n"
        );
        let last = splice(
            "# t\n\n## Cluster\n\nold\n",
            "## Cluster",
            "## Cluster\n\nnew",
        );
        assert_eq!(last, "# t\n\n## Cluster\n\nnew\n");
        let added = splice("# t\n\n## A\n\na\n", "## Cluster", "## Cluster\n\nnew\n");
        assert_eq!(added, "# t\n\n## A\n\na\n\n## Cluster\n\nnew\n");
    }
}
