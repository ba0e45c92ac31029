//! The one place that narrows wasmtime's flexibility: the `Engine` and its
//! configuration (fuel, epoch interruption and its ticker thread), the guest component (compiled once per process and cached on
//! disk), and the `Linker` with the only imports a script gets: our WIT `host`
//! interface and WASI with an empty context (no files, env, args or sockets;
//! clocks and randomness work).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine};

use crate::bindings::ScriptPre;
use crate::host_state::HostState;
use crate::limits::{Limits, EPOCH_TICK};

/// The guest runtime, built by `make guest` from `guest-runtime/`.
pub static GUEST_WASM: &[u8] = include_bytes!("../guest/aiwebengine_guest.wasm");

/// Everything needed to start a script instance; cheap to clone.
#[derive(Clone)]
pub struct WasmEngine {
    pub engine: Engine,
    pub pre: Arc<ScriptPre<HostState>>,
    pub limits: Limits,
}

fn config(fuel: bool, epochs: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.consume_fuel(fuel);
    config.epoch_interruption(epochs);
    // For `perf`: name JIT-compiled guest functions in /tmp/perf-PID.map.
    if std::env::var_os("AIWEBENGINE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Advances the engine's epoch every `EPOCH_TICK` until the engine is dropped;
/// calls past their deadline trap at their next loop back-edge or call.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch ticker".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .expect("starting the epoch ticker thread");
}

impl WasmEngine {
    /// Builds the engine and loads the guest, from `cache_dir` when it holds a
    /// compiled copy made by this very wasmtime for this very wasm.
    pub fn new(cache_dir: Option<&Path>, limits: Limits) -> Result<Self> {
        let epochs = !limits.timeout.is_zero();
        let engine =
            Engine::new(&config(limits.fuel > 0, epochs)).context("configuring wasmtime")?;
        if epochs {
            start_epoch_ticker(&engine);
        }
        let component = load_component(&engine, GUEST_WASM, cache_dir)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).context("linking WASI")?;
        crate::bindings::Script::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .context("linking the host interface")?;
        let pre = linker
            .instantiate_pre(&component)
            .context("pre-instantiating the guest")?;
        let pre = ScriptPre::new(pre).context("checking the guest's exports")?;
        Ok(WasmEngine {
            engine,
            pre: Arc::new(pre),
            limits,
        })
    }
}

/// The default cache folder: `$XDG_CACHE_HOME/aiwebengine` or `~/.cache/aiwebengine`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("aiwebengine"))
}

fn load_component(engine: &Engine, wasm: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let Some(dir) = cache_dir else {
        return Ok(Component::new(engine, wasm).context("compiling the guest")?);
    };
    let mut hash = Sha256::new();
    hash.update(wasm);
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    hash.update(compat.finish().to_le_bytes());
    let key: String = hash
        .finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(format!("guest-{key}.cwasm"));
    if path.exists() {
        // SAFETY: the file is one this process family wrote into our own cache
        // folder, keyed by the wasm's hash and the engine's compatibility hash;
        // wasmtime also checks its header and refuses a mismatched engine.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled guest: {e:#}")
            }
        }
    }
    let started = std::time::Instant::now();
    let compiled = engine
        .precompile_component(wasm)
        .context("compiling the guest")?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compiled the guest"
    );
    if let Err(e) = write_atomically(dir, &path, &compiled) {
        tracing::warn!(path = %path.display(), "could not cache the compiled guest: {e:#}");
    }
    // SAFETY: these bytes were produced just now by `precompile_component` on this engine.
    Ok(unsafe { Component::deserialize(engine, &compiled) }
        .context("loading the compiled guest")?)
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
