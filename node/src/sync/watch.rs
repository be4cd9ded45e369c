//! A single-producer-many-consumer "latest value" channel, like `tokio::sync::watch`, whose
//! receivers wake in the order they started waiting (see the module docs of [`super`]).
//!
//! Invariant: `version` grows by one with every change; a receiver has seen a change when its
//! `seen` differs from `version`. Waiters register on the `Notify` *before* checking the version,
//! so a change between the check and the wait is never missed.

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Notify,
}

struct State<T> {
    value: T,
    version: u64,
    /// The sender was dropped: `changed` fails once the last change is seen.
    closed: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A poisoned lock means a panic while a value was replaced; the value is whole either
        // way (replacement is a move), so go on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A receiving half; clones start from the same seen version.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

/// The sender is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("watch sender dropped")
    }
}

impl std::error::Error for RecvError {}

/// A borrowed value (holds the channel's lock: keep it short, never across an `.await`).
pub struct Ref<'a, T> {
    guard: MutexGuard<'a, State<T>>,
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard.value
    }
}

/// A channel holding `init`.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            value: init,
            version: 0,
            closed: false,
        }),
        changed: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared, seen: 0 },
    )
}

impl<T> Sender<T> {
    /// Modifies the value in place if `f` says it changed it; wakes receivers then.
    pub fn send_if_modified(&self, f: impl FnOnce(&mut T) -> bool) -> bool {
        let modified = {
            let mut s = self.shared.lock();
            let modified = f(&mut s.value);
            if modified {
                s.version += 1;
            }
            modified
        };
        if modified {
            self.shared.changed.notify_waiters();
        }
        modified
    }

    /// Modifies the value in place and wakes receivers.
    pub fn send_modify(&self, f: impl FnOnce(&mut T)) {
        self.send_if_modified(|v| {
            f(v);
            true
        });
    }

    /// Replaces the value, returning the old one, and wakes receivers.
    pub fn send_replace(&self, value: T) -> T {
        let mut value = Some(value);
        let mut old = None;
        self.send_modify(|v| {
            if let Some(new) = value.take() {
                old = Some(std::mem::replace(v, new));
            }
        });
        old.expect("send_modify runs its closure exactly once")
    }

    /// Replaces the value and wakes receivers (never fails: a value with no receivers is
    /// still kept for later subscribers).
    pub fn send(&self, value: T) -> Result<(), RecvError> {
        self.send_replace(value);
        Ok(())
    }

    /// The current value.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.lock(),
        }
    }

    /// A receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        let seen = self.shared.lock().version;
        Receiver {
            shared: self.shared.clone(),
            seen,
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_waiters();
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("watch::Sender").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("watch::Receiver")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Receiver<T> {
    /// The current value (does not mark it seen).
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.lock(),
        }
    }

    /// The current value, marked seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.lock();
        self.seen = guard.version;
        Ref { guard }
    }

    /// Waits for a value this receiver has not seen; `Err` once the sender is gone and every
    /// change has been seen.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Register first, then check: a change in between wakes this waiter.
            notified.as_mut().enable();
            {
                let s = self.shared.lock();
                if s.version != self.seen {
                    self.seen = s.version;
                    return Ok(());
                }
                if s.closed {
                    return Err(RecvError);
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_are_seen_once_and_in_order() {
        let (tx, mut rx) = channel(0u64);
        tx.send_modify(|v| *v += 1);
        rx.changed().await.expect("changed");
        assert_eq!(*rx.borrow_and_update(), 1);
        let mut rx2 = tx.subscribe();
        let waiter = tokio::spawn(async move {
            rx2.changed().await.expect("changed");
            *rx2.borrow()
        });
        tokio::task::yield_now().await;
        assert!(!tx.send_if_modified(|_| false), "no change, no wake");
        tx.send_replace(7);
        assert_eq!(waiter.await.expect("task"), 7);
        drop(tx);
        assert_eq!(
            rx.changed().await,
            Ok(()),
            "the last change is still delivered"
        );
        assert_eq!(rx.changed().await, Err(RecvError));
    }
}
