//! Cluster mode (`serve --redis URL`): several engines with the same scripts
//! share streams and storage through one Redis.
//!
//! - `link.rs`  the shared, self-healing connection and its up/down state
pub mod link;

pub use link::Link;
