//! Script APIs beyond the prelude, one per WIT interface, each in javy's
//! style: `<name>.rs` installs raw host functions, `<name>.js` wraps them.

pub mod websocket;
