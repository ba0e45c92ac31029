//! Naming a caught panic: the text it was raised with, for the log line that
//! reports it (a request's, a script turn's or the watcher's).

use std::any::Any;

/// The text a panic was raised with, when it has one.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
