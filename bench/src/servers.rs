//! Starting the servers under test as real processes on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where cargo put the release build: `$CARGO_TARGET_DIR/release`, else
/// `target/release` (the same as bench/run.sh).
pub fn release_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
        .join("release")
}

/// A server implementation under test.
#[derive(Clone, Debug)]
pub struct Kind {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
}

impl Kind {
    /// aiwebengine (release build), with extra `serve` flags.
    pub fn engine(root: &Path, name: &str, cache: &Path, extra: &[&str]) -> Kind {
        let mut args = vec![
            "serve".to_string(),
            "--cache-dir".into(),
            cache.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Kind {
            name: name.into(),
            program: release_dir(root).join("aiwebengine"),
            args,
        }
    }

    /// The Node.js baseline (`bench/node/engine.mjs`) under `node` or `bun`.
    pub fn baseline(root: &Path, name: &str, runtime: PathBuf) -> Kind {
        Kind {
            name: name.into(),
            program: runtime,
            args: vec![root.join("bench/node/engine.mjs").display().to_string()],
        }
    }

    /// The same server on the server's core (`clients::cores`), if pinning is possible.
    pub fn pinned(&self) -> Kind {
        match crate::clients::cores() {
            Some((cpu, _)) => self.on_cores(cpu),
            None => self.clone(),
        }
    }

    /// The same server under `taskset -c cpus` (a list such as `0` or `0,1`).
    pub fn on_cores(&self, cpus: &str) -> Kind {
        let mut args = vec!["-c".to_string(), cpus.to_string()];
        args.push(self.program.display().to_string());
        args.extend(self.args.iter().cloned());
        Kind {
            name: self.name.clone(),
            program: PathBuf::from("taskset"),
            args,
        }
    }

    pub fn is_engine(&self) -> bool {
        self.name.starts_with("aiwebengine")
    }
}

pub struct Server {
    pub addr: String,
    pub started: Duration,
    child: Child,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    /// Starts `kind` over `scripts` and waits for its "listening on" line.
    pub async fn start(kind: &Kind, scripts: &Path) -> Result<Server> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let mut child = Command::new(&kind.program)
            .args(&kind.args)
            .arg("--scripts")
            .arg(scripts)
            .args(["--listen", &addr])
            .env("NO_COLOR", "1")
            // aiwebengine's storage: one data dir per server, never the repo's ./data.
            .env(
                "AIWEBENGINE_DATA",
                std::env::temp_dir().join(format!("aiwebengine-bench-data-{port}")),
            )
            .env("RUST_LOG", "warn,aiwebengine::server=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", kind.program.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("listening on http://") {
                    return Ok(());
                }
            }
            bail!("{} exited before listening", kind.name)
        })
        .await
        .with_context(|| format!("{} did not start in time", kind.name))??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            addr,
            started: started.elapsed(),
            child,
        })
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss(&self) -> Result<u64> {
        self.proc_bytes("status", "VmRSS:")
    }

    /// Proportional set size of the server process, in bytes: each resident
    /// page divided by the number of mappings that share it (`Pss:` in
    /// /proc/PID/smaps_rollup). Pages of one copy-on-write snapshot mapped
    /// into many instances count once in all, where RSS counts them per
    /// mapping.
    pub fn pss(&self) -> Result<u64> {
        self.proc_bytes("smaps_rollup", "Pss:")
    }

    /// The `field` line (in kB) of the server's /proc/PID/`file`, in bytes.
    fn proc_bytes(&self, file: &str, field: &str) -> Result<u64> {
        let pid = self.child.id().context("server exited")?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .with_context(|| format!("reading /proc/{pid}/{file}"))?;
        let kb: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .with_context(|| format!("no {field} in /proc/{pid}/{file}"))?
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()?;
        Ok(kb * 1024)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
