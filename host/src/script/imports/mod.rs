//! The host side of the WIT interfaces a script imports, one file per
//! interface of `wit/`: each checks its arguments and dispatches to the
//! script's `HostState` and the services it holds.
//!
//! - `host.rs`      `host`: timers, answers, console, routes and streams
//! - `storage.rs`   `storage`: the script's namespace, inside the current turn
//! - `fetch.rs`     `fetch`: starting an outbound fetch
//! - `websocket.rs` `websocket`: client handlers and `client.send`

mod fetch;
mod host;
mod storage;
mod websocket;

use super::state::HostState;
use crate::bindings::aiwebengine::script::types;

/// `types` declares only types: nothing to implement.
impl types::Host for HostState {}
