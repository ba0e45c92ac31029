//! The only imports a script gets, linked once per process: our WIT interfaces
//! (`imports/`) and WASI with an empty context (no files, env, args or
//! sockets; clocks and randomness work).

use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::error::Context as _;

use super::state::HostState;
use crate::bindings::{Script, ScriptPre};
use crate::wasm::WasmRuntime;

/// The guest linked with a script's imports, ready to instantiate; cheap to clone.
#[derive(Clone)]
pub struct LinkedGuest {
    pub wasm: WasmRuntime,
    pub pre: Arc<ScriptPre<HostState>>,
}

impl LinkedGuest {
    pub fn new(wasm: WasmRuntime) -> Result<Self> {
        let mut linker = Linker::<HostState>::new(&wasm.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("linking WASI")?;
        Script::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .context("linking the host interface")?;
        let pre = linker
            .instantiate_pre(&wasm.component)
            .context("pre-instantiating the guest")?;
        let pre = ScriptPre::new(pre).context("checking the guest's exports")?;
        Ok(LinkedGuest {
            wasm,
            pre: Arc::new(pre),
        })
    }
}
