//! `queued.max.request.bytes`: a broker-wide bound on the bytes of requests read but not yet
//! handled (Kafka's `MemoryPool` behind the same setting).
//!
//! A connection's reader learns a request's size from its 4-byte length prefix, takes a
//! [`Lease`] of that many bytes from the [`MemoryPool`] *before* it allocates and reads the body,
//! and drops the lease once the request is handled: when `dispatch` returns, which for Produce is
//! after the batches were appended to the log. The deferred part of a request (the fsync or ISR
//! wait of acks=1/-1, a long poll) holds no lease, and must not keep the request's buffer either:
//! its memory is not counted (Kafka likewise releases a request's buffer once its handler
//! returns and clears a produce request's records before the acknowledgement wait).
//!
//! Invariants:
//! - Bytes leased never exceed the bound, and a lease is never refused: a reader that finds too
//!   few bytes free waits, and a waiting reader reads nothing more from its socket, which is TCP
//!   backpressure on its client. Waiters are served first come, first served (tokio's semaphore
//!   is fair), so a large request is not starved by a stream of small ones.
//! - A request larger than the whole bound leases the whole bound: it waits until every other
//!   lease is back, and is still served. (Config refuses a bound below
//!   `socket.request.max.bytes`, so only a pool made directly, as in tests, sees one.)
//! - No deadlock: a lease is held only from a request's length prefix to the end of its
//!   synchronous handling, and in that span its holder waits for nothing but its own peer's
//!   bytes (the body) and the synchronous handler. In particular a reader holds no lease while it
//!   waits for one (its previous request's lease was dropped when that request was handled), and
//!   no lease waits on a response being written, on another request being read, or on a
//!   deferred wait. So every lease comes back as soon as its peer sends its bytes, or closes.
//! - A lease is dropped on every path: handled, connection closed mid-request, a frame refused,
//!   shutdown (the read future is dropped with the lease inside it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The broker-wide pool of request bytes (`queued.max.request.bytes`).
#[derive(Debug, Clone)]
pub struct MemoryPool {
    /// `None`: unbounded (`-1`). Permits count bytes.
    permits: Option<Arc<Semaphore>>,
    /// The bound in bytes (`usize::MAX` when unbounded).
    bound: usize,
    /// Readers waiting for bytes now: what tests (and operators, some day) can see of the
    /// backpressure.
    waiting: Arc<AtomicUsize>,
}

/// Counts one waiting reader while alive (a reader's wait may end by being dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes of one request held from the pool; given back on drop.
#[derive(Debug)]
pub struct Lease {
    /// The permits (bytes) held; `None` from an unbounded pool.
    _permit: Option<OwnedSemaphorePermit>,
    /// Bytes leased: `min(request size, bound)`.
    bytes: usize,
}

impl Lease {
    /// Bytes this lease holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl MemoryPool {
    /// A pool of `bound` bytes; `None` is unbounded.
    pub fn new(bound: Option<usize>) -> MemoryPool {
        match bound {
            Some(b) => {
                let b = b.min(Semaphore::MAX_PERMITS);
                MemoryPool {
                    permits: Some(Arc::new(Semaphore::new(b))),
                    bound: b,
                    waiting: Arc::default(),
                }
            }
            None => MemoryPool {
                permits: None,
                bound: usize::MAX,
                waiting: Arc::default(),
            },
        }
    }

    /// Leases `min(size, bound)` bytes, waiting until they are free. Never fails.
    pub async fn acquire(&self, size: usize) -> Lease {
        let bytes = size.min(self.bound);
        let Some(permits) = &self.permits else {
            return Lease {
                _permit: None,
                bytes,
            };
        };
        // Requests are at most socket.request.max.bytes <= i32::MAX bytes; a larger ask leases
        // at most u32::MAX, which is still at least what any frame needs.
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        let permit = match permits.clone().try_acquire_many_owned(n) {
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::new(&self.waiting);
                permits
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect("the pool's semaphore is never closed")
            }
        };
        Lease {
            _permit: Some(permit),
            bytes,
        }
    }

    /// Bytes free now (`None` when unbounded).
    pub fn available(&self) -> Option<usize> {
        self.permits.as_ref().map(|s| s.available_permits())
    }

    /// Readers waiting for bytes now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The bound (`None` when unbounded).
    pub fn bound(&self) -> Option<usize> {
        self.permits.as_ref().map(|_| self.bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task leasing `bytes` from `pool`, once it waits for them.
    async fn waiter(pool: &MemoryPool, bytes: usize) -> tokio::task::JoinHandle<usize> {
        let task = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire(bytes).await.bytes() }
        });
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        task
    }

    #[tokio::test]
    async fn leases_come_back_on_drop() {
        let pool = MemoryPool::new(Some(100));
        let a = pool.acquire(30).await;
        let b = pool.acquire(70).await;
        assert_eq!((a.bytes(), b.bytes()), (30, 70));
        assert_eq!(pool.available(), Some(0));
        drop(a);
        assert_eq!(pool.available(), Some(30));
        drop(b);
        assert_eq!(pool.available(), Some(100));
        // A request larger than the whole bound takes it all.
        let big = pool.acquire(1_000).await;
        assert_eq!(big.bytes(), 100);
        assert_eq!(pool.available(), Some(0));
        drop(big);
        assert_eq!(pool.available(), Some(100));
    }

    #[tokio::test]
    async fn a_waiter_is_served_once_enough_comes_back() {
        let pool = MemoryPool::new(Some(100));
        let held = pool.acquire(80).await;
        let waiter = waiter(&pool, 50).await;
        assert!(!waiter.is_finished(), "only 20 bytes are free");
        drop(held);
        assert_eq!(waiter.await.expect("waiter"), 50);
        assert_eq!((pool.available(), pool.waiting()), (Some(100), 0));
    }

    #[tokio::test]
    async fn a_wait_given_up_takes_nothing() {
        let pool = MemoryPool::new(Some(100));
        let held = pool.acquire(100).await;
        let waiter = waiter(&pool, 1).await;
        waiter.abort();
        assert!(waiter.await.is_err(), "aborted");
        assert_eq!(pool.waiting(), 0);
        drop(held);
        assert_eq!(pool.available(), Some(100));
    }

    #[tokio::test]
    async fn unbounded_never_waits() {
        let pool = MemoryPool::new(None);
        let a = pool.acquire(usize::MAX).await;
        assert_eq!(a.bytes(), usize::MAX);
        assert_eq!((pool.available(), pool.bound()), (None, None));
    }
}
