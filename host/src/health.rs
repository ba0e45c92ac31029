//! Whether the engine should get traffic: loading its scripts, ready, or
//! shutting down. `/_engine/health/ready` answers from it, and shutdown begins
//! here: the state turns to "shutting down" at once (so load balancers stop
//! sending), the server keeps serving for the drain period, then stops.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The first load of the scripts folder has not finished.
    Loading,
    /// Serving.
    Ready,
    /// Shutdown began (SIGTERM or Ctrl-C).
    ShuttingDown,
}

impl State {
    /// Why the engine is not ready, for the 503 body; `None` when it is.
    pub fn not_ready_reason(self) -> Option<&'static str> {
        match self {
            State::Loading => Some("loading scripts"),
            State::Ready => None,
            State::ShuttingDown => Some("shutting down"),
        }
    }
}

/// The engine's state; clones share it.
#[derive(Clone)]
pub struct Health {
    state: watch::Sender<State>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: watch::Sender::new(State::Loading),
        }
    }
}

impl Health {
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// The first load finished (whatever its outcome for single scripts).
    pub fn set_ready(&self) {
        self.state.send_if_modified(|s| {
            let was_loading = *s == State::Loading;
            if was_loading {
                *s = State::Ready;
            }
            was_loading
        });
    }

    pub fn set_shutting_down(&self) {
        self.state.send_replace(State::ShuttingDown);
    }

    /// Resolves once the engine is ready; never if it shuts down first.
    pub fn ready(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.state.subscribe();
        async move {
            let state = rx.wait_for(|s| *s != State::Loading).await.map(|s| *s);
            if !matches!(state, Ok(State::Ready)) {
                std::future::pending::<()>().await;
            }
        }
    }

    /// `signal`, then the drain: marks the engine as shutting down when
    /// `signal` resolves and resolves itself `drain` later, when the server
    /// should stop accepting connections.
    pub fn then_drain(
        &self,
        signal: impl Future<Output = ()> + Send + 'static,
        drain: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let health = self.clone();
        async move {
            signal.await;
            health.set_shutting_down();
            if !drain.is_zero() {
                tracing::info!(
                    drain_secs = drain.as_secs_f64(),
                    "shutdown requested: /_engine/health/ready now answers 503; still serving for the drain period"
                );
                tokio::time::sleep(drain).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loading_then_ready_then_shutting_down() {
        let h = Health::default();
        assert_eq!(h.state().not_ready_reason(), Some("loading scripts"));
        let ready = tokio::spawn(h.ready());
        h.set_ready();
        ready.await.unwrap();
        assert_eq!(h.state(), State::Ready);
        h.set_shutting_down();
        h.set_ready(); // too late: shutdown is final
        assert_eq!(h.state().not_ready_reason(), Some("shutting down"));
    }
}
