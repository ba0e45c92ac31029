//! A turn's stream messages on their way through the cluster.
//!
//! In cluster mode a script's `sendStreamMessage` only queues the message for
//! Redis, so a script can publish many without waiting for each. Its turn's
//! HTTP answers wait until every message the turn sent was accepted, exactly
//! as they wait for its storage writes: a client that got 200 knows its
//! messages are numbered and on their way to every node, and one whose message
//! was lost gets a 503 instead — never a silent drop.

use std::sync::{Arc, Mutex};

use crate::streams::Settle;

type Then = Box<dyn FnOnce(Result<(), String>) + Send>;

#[derive(Default)]
struct State {
    pending: usize,
    error: Option<String>,
    then: Option<Then>,
}

/// Counts a turn's messages not yet accepted; `then` runs when none are left.
#[derive(Clone, Default)]
pub struct Accepted(Arc<Mutex<State>>);

impl Accepted {
    /// Whether the turn sent anything through the cluster.
    pub fn any(&self) -> bool {
        let state = self.lock();
        state.pending > 0 || state.error.is_some() || state.then.is_some()
    }

    /// One more message to wait for; the returned callback settles it.
    pub fn settle(&self) -> Settle {
        self.lock().pending += 1;
        let me = self.clone();
        Box::new(move |outcome| {
            let mut state = me.lock();
            state.pending = state.pending.saturating_sub(1);
            if let Err(e) = outcome {
                state.error.get_or_insert(e);
            }
            me.fire(state);
        })
    }

    /// Runs `then` with the outcome once every message is settled (at once
    /// when they already are). Call once.
    pub fn then(&self, then: impl FnOnce(Result<(), String>) + Send + 'static) {
        let mut state = self.lock();
        state.then = Some(Box::new(then));
        self.fire(state);
    }

    fn fire(&self, mut state: std::sync::MutexGuard<'_, State>) {
        if state.pending > 0 {
            return;
        }
        let Some(then) = state.then.take() else {
            return;
        };
        let outcome = match state.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        };
        drop(state);
        then(outcome);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn waits_for_every_message_and_reports_the_first_failure() {
        let accepted = Accepted::default();
        let (a, b) = (accepted.settle(), accepted.settle());
        let (tx, rx) = mpsc::channel();
        accepted.then(move |outcome| tx.send(outcome).unwrap());
        a(Err("lost".into()));
        assert!(rx.try_recv().is_err(), "one still pending");
        b(Ok(()));
        assert_eq!(rx.try_recv().unwrap(), Err("lost".into()));
    }

    #[test]
    fn settled_before_then_fires_at_once() {
        let accepted = Accepted::default();
        accepted.settle()(Ok(()));
        let (tx, rx) = mpsc::channel();
        accepted.then(move |outcome| tx.send(outcome).unwrap());
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
    }
}
