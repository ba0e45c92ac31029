//! Compiles the guest to native code at build time, with the engine
//! configuration the server uses by default (fuel on), so
//! that a first start on a fresh machine deserializes it instead of spending
//! most of a second in Cranelift. `wasm.rs` embeds the result; when it does not
//! fit (other limits, another CPU, a cross build) the server compiles as before.

use std::path::PathBuf;

include!("src/wasm_config.rs");

const GUEST: &str = "guest/aiwebengine_guest.wasm";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={GUEST}");
    println!("cargo:rerun-if-changed=src/wasm_config.rs");
    println!("cargo:rerun-if-env-changed=AIWEBENGINE_PERFMAP");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("guest.cwasm");
    // Native code for this machine only: a cross build embeds nothing.
    if std::env::var("TARGET")? != std::env::var("HOST")? {
        std::fs::write(&out, [])?;
        return Ok(());
    }
    let wasm = std::fs::read(GUEST)?;
    let engine = wasmtime::Engine::new(&config(true))?;
    std::fs::write(&out, engine.precompile_component(&wasm)?)?;
    Ok(())
}
