//! Every end-to-end test, in one binary: one module per area, each starting real
//! servers on port 0 and speaking real HTTP and SSE to them. One binary links
//! wasmtime and reqwest once instead of once per file.
//!
//! To fold in a new file `tests/tests/foo.rs`: `git mv` it to `tests/tests/e2e/foo.rs`,
//! replace its `mod common;` line with `use crate::common;`, and add `mod foo;` below.

#[path = "../common/mod.rs"]
mod common;

mod fetch;
mod hot_reload;
mod isolation;
mod loading;
mod operating;
mod script_api;
mod seed_examples;
mod storage;
mod stream_delivery;
mod streams;
mod timers;
mod typescript;
mod websocket;
