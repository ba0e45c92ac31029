// The wasmtime configuration of the guest, shared by the host (`wasm.rs`) and
// by `build.rs`, which precompiles the guest with it: the two must agree to
// the last flag, or the built-in compiled guest is refused at start.
// No `use crate::…` here: `build.rs` includes this file on its own.

/// The engine configuration, with fuel metering on or off. Epoch
/// interruption is always on: besides the time limit, it is how a long guest
/// call yields the tokio worker it runs on.
pub fn config(fuel: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.consume_fuel(fuel);
    config.epoch_interruption(true);
    // For `perf`: name JIT-compiled guest functions in /tmp/perf-PID.map.
    if std::env::var_os("AIWEBENGINE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}
