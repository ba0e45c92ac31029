// The wasmtime configuration of the guest, shared by the host (`wasm.rs`) and
// by `build.rs`, which precompiles the guest with it: the two must agree to
// the last flag, or the built-in compiled guest is refused at start.
// No `use crate::…` here: `build.rs` includes this file on its own.

/// The engine configuration for a run with fuel and/or epoch deadlines on.
pub fn config(fuel: bool, epochs: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
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
