//! The one place that narrows wasmtime's flexibility: the `Engine` and its
//! configuration (fuel, epoch interruption and its ticker thread), and the
//! guest component: built in (compiled by `build.rs` for the default limits),
//! else compiled once per process and cached on disk. It knows no script
//! types: what a script may import is linked in `script/linker.rs`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::error::Context as _;
use wasmtime::Engine;

use crate::limits::{Limits, EPOCH_TICK};
use crate::wasm_config::config;

/// The guest runtime (built by `make guest` from `guest-runtime/`) with its
/// QuickJS runtime and prelude already initialised by `build.rs`.
pub static GUEST_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest-initialized.wasm"));

/// That guest compiled to native code by `build.rs` for fuel off (the
/// default limits) on the build machine; empty in a cross build.
static BUILT_IN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest.cwasm"));

/// The configured engine and the compiled guest; cheap to clone.
#[derive(Clone)]
pub struct WasmRuntime {
    pub engine: Engine,
    pub component: Component,
    /// The limits the engine was configured for (fuel on or off).
    pub limits: Limits,
}

/// Advances the engine's epoch every `EPOCH_TICK` until the engine is dropped;
/// a running call then yields its worker, or traps past its time limit
/// (`limits::watch`), at its next loop back-edge or call.
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

impl WasmRuntime {
    /// Builds the engine and loads the guest, from `cache_dir` when it holds a
    /// compiled copy made by this very wasmtime for this very wasm.
    pub fn new(cache_dir: Option<&Path>, limits: Limits) -> Result<Self> {
        let engine = Engine::new(&config(limits.fuel > 0)).context("configuring wasmtime")?;
        start_epoch_ticker(&engine);
        let component = match built_in(&engine, limits.fuel == 0) {
            Some(component) => component,
            None => load_component(&engine, GUEST_WASM, cache_dir)?,
        };
        Ok(WasmRuntime {
            engine,
            component,
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

/// The built-in compiled guest, if it was made for this configuration and
/// this machine: wasmtime checks the engine's flags and CPU features in its
/// header and refuses a mismatch, and then the guest is compiled as before.
fn built_in(engine: &Engine, default_limits: bool) -> Option<Component> {
    if !default_limits || BUILT_IN.is_empty() || std::env::var_os("AIWEBENGINE_PERFMAP").is_some() {
        return None;
    }
    // SAFETY: the bytes are `precompile_component`'s output for this very
    // guest, made by build.rs with this very wasmtime and configuration, and
    // embedded in the binary; wasmtime also validates their header.
    match unsafe { Component::deserialize(engine, BUILT_IN) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::info!(
                "the built-in compiled guest does not fit this machine ({e:#}); compiling it"
            );
            None
        }
    }
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
