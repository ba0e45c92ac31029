//! Sleeping until an optional deadline, for a `select!` branch that may have
//! none: no timer is made without one.

/// Sleeps until `deadline`; forever without one.
pub async fn sleep_until(deadline: Option<impl Into<tokio::time::Instant>>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
