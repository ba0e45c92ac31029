//! End-to-end tests live in `tests/`; see `tests/common/mod.rs`.
