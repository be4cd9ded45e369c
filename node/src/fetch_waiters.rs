//! Long-polling fetches waiting on one partition: Kafka's delayed-fetch purgatory, keyed by
//! partition, so an append wakes only the fetches that read that partition.
//!
//! A long-polling fetch makes one [`Notify`] and registers it with every partition it reads
//! (once, before its first read); a partition wakes its list when what those fetches wait for
//! moves (its log end for followers, its high watermark for consumers). Invariants:
//! - A wake is never lost: `notify_one` keeps a permit for a fetch that is between two reads,
//!   so a move after registration always ends the fetch's next wait.
//! - The list holds only weak references: a fetch that answered (its `Notify` dropped) needs
//!   no deregistration; dead entries are dropped by the next wake, or when the list would grow.
//! - Registering costs O(1) amortised; waking costs O(waiters of this partition), never
//!   O(partitions of the broker) as a broker-wide signal did (every long poll re-read all of
//!   its partitions on every append anywhere).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;

/// Below this many entries a registration never prunes.
const PRUNE_FLOOR: usize = 16;

/// The fetches waiting on one partition for one kind of move.
#[derive(Debug, Default)]
pub struct FetchWaiters {
    waiters: Mutex<Vec<Weak<Notify>>>,
}

impl FetchWaiters {
    /// Registers `waiter`: it is notified at the next [`FetchWaiters::wake`].
    pub fn watch(&self, waiter: &Arc<Notify>) {
        let mut list = self.list();
        if list.len() >= PRUNE_FLOOR && list.len() == list.capacity() {
            // Polls that answered without a wake leave dead entries behind; drop them before
            // the list would double, so a quiet partition polled forever stays small.
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(waiter));
    }

    /// Notifies every live waiter (each keeps its permit until it waits) and forgets the dead.
    pub fn wake(&self) {
        self.list().retain(|w| match w.upgrade() {
            Some(waiter) => {
                waiter.notify_one();
                true
            }
            None => false,
        });
    }

    /// Entries held, live or not (for tests).
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn list(&self) -> MutexGuard<'_, Vec<Weak<Notify>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_before_the_wait_is_kept_and_only_registered_waiters_get_it() {
        let waiters = FetchWaiters::default();
        let registered = Arc::new(Notify::new());
        let other = Arc::new(Notify::new());
        waiters.watch(&registered);
        waiters.wake();
        // The permit is kept: a wait that starts after the wake returns at once.
        let mut kept = std::pin::pin!(registered.notified());
        assert!(
            kept.as_mut().enable(),
            "the registered waiter holds a permit"
        );
        let mut not = std::pin::pin!(other.notified());
        assert!(
            !not.as_mut().enable(),
            "an unregistered waiter is not woken"
        );
    }

    #[test]
    fn dead_waiters_are_dropped_by_a_wake_and_before_the_list_grows() {
        let waiters = FetchWaiters::default();
        for _ in 0..100 {
            // A poll that answered without a wake: registered, then dropped.
            waiters.watch(&Arc::new(Notify::new()));
        }
        assert!(
            waiters.len() <= 2 * PRUNE_FLOOR,
            "{} entries kept for polls that ended",
            waiters.len()
        );
        let live = Arc::new(Notify::new());
        waiters.watch(&live);
        waiters.wake();
        assert_eq!(waiters.len(), 1, "a wake keeps only the live waiter");
        drop(live);
        waiters.wake();
        assert!(waiters.is_empty());
    }
}
