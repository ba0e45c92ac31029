//! Prepares the guest at build time, in two steps:
//!
//! 1. **Pre-initialises** it with wasmtime-wizer: runs its `wizer-initialize`
//!    export (the QuickJS runtime and the prelude, most of a script's load
//!    time) once and snapshots the result into a new component, so every
//!    instance starts with that done. The guest gives each instance its own
//!    random seed and clock origin when it loads a script.
//! 2. **Precompiles** the snapshot to native code with the engine
//!    configuration the server uses by default (fuel off), so that a first
//!    start on a fresh machine deserializes it instead of spending most of a
//!    second in Cranelift. When it does not fit (other limits, another CPU, a
//!    cross build) the server compiles the snapshot at start.
//!
//! `wasm.rs` embeds both results.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Instance, Linker, ResourceTable, WasmList};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

include!("src/wasm_config.rs");

const GUEST: &str = "guest/aiwebengine_guest.wasm";

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed={GUEST}");
    println!("cargo:rerun-if-changed=src/wasm_config.rs");
    println!("cargo:rerun-if-env-changed=AIWEBENGINE_PERFMAP");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let wasm = std::fs::read(GUEST)?;
    let initialized = pre_initialize(&wasm)?;
    std::fs::write(out.join("guest-initialized.wasm"), &initialized)?;
    // Native code for this machine only: a cross build embeds nothing.
    let compiled = if std::env::var("TARGET")? == std::env::var("HOST")? {
        wasmtime::Engine::new(&config(false))?.precompile_component(&initialized)?
    } else {
        Vec::new()
    };
    std::fs::write(out.join("guest.cwasm"), compiled)?;
    Ok(())
}

/// What the guest's initialiser may use: WASI with nothing in it (it reads
/// the clocks); our own imports trap if called.
struct BuildState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BuildState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `wasm` with its `wizer-initialize` export run and its state snapshotted.
fn pre_initialize(wasm: &[u8]) -> Result<Vec<u8>, BoxError> {
    let mut wizer = Wizer::new();
    // The host's bindings expect the export; calling it again is a no-op.
    wizer.keep_init_func(true);
    let (cx, instrumented) = wizer.instrument_component(wasm)?;
    let engine = Engine::default();
    let component = Component::new(&engine, &instrumented)?;
    let mut linker = Linker::<BuildState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    refuse_own_imports(&engine, &component, &mut linker)?;
    let mut store = Store::new(
        &engine,
        BuildState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    let instance = linker.instantiate(&mut store, &component)?;
    instance
        .get_typed_func::<(), ()>(&mut store, wizer.get_init_func())?
        .call(&mut store, ())
        .map_err(|e| format!("running the guest's wizer-initialize: {e:?}"))?;
    let mut state = Snapshotting { store, instance };
    Ok(ready(wizer.snapshot_component(&cx, &mut state))?)
}

/// Links each function of our own interfaces (`aiwebengine:script/...`) as
/// a trap: initialising the runtime must not reach the host. (Not
/// `define_unknown_imports_as_traps`: it would also shadow WASI interfaces
/// imported at an older minor version than wasmtime-wasi's.)
fn refuse_own_imports(
    engine: &Engine,
    component: &Component,
    linker: &mut Linker<BuildState>,
) -> Result<(), BoxError> {
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(interface) = item.ty else {
            continue;
        };
        if !name.starts_with("aiwebengine:") {
            continue;
        }
        let mut instance = linker.instance(name)?;
        for (func, item) in interface.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let what = format!("{name}#{func}");
                instance.func_new(func, move |_, _, _, _| {
                    wasmtime::bail!("{what} was called while pre-initialising the guest")
                })?;
            }
        }
    }
    Ok(())
}

/// Wizer reads the instrumented instance's state through its exports.
struct Snapshotting {
    store: Store<BuildState>,
    instance: Instance,
}

impl Snapshotting {
    fn call<R: wasmtime::component::Lift + 'static>(&mut self, instance: &str, func: &str) -> R {
        let (_, exported) = self
            .instance
            .get_export(&mut self.store, None, instance)
            .unwrap_or_else(|| panic!("wizer's instrumentation exports {instance}"));
        let (_, index) = self
            .instance
            .get_export(&mut self.store, Some(&exported), func)
            .unwrap_or_else(|| panic!("wizer's instrumentation exports {instance}#{func}"));
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut self.store, index)
            .expect("wizer's accessor has the type it expects");
        func.call(&mut self.store, ())
            .expect("wizer's accessor to run")
            .0
    }
}

impl ComponentInstanceState for Snapshotting {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func);
        contents(list.as_le_slice(&self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).to_bits()
    }
}

/// The value of a future that never waits (every call above is synchronous).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the snapshot waited on nothing"),
    }
}
