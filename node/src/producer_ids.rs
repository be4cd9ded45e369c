//! Producer ids for InitProducerId (KIP-98), handed out by each broker from blocks (KIP-730).
//!
//! Partition leaders tell idempotent producers apart by producer id alone: two producers holding
//! one id would deduplicate each other's batches away. So:
//!
//! **Invariant: a producer id is handed out at most once in a cluster's life, across every
//! broker, restart and crash.** It holds because
//! - every id comes from a [`Block`] `[first, first + count)` that belongs to one broker:
//!   - in a cluster the controller grants it (AllocateProducerIds, KIP-730,
//!     `strata_core::controller`) only after a `ProducerIds` record moving the metadata log's
//!     `next_producer_id` past it is committed, so no block is granted twice, whichever
//!     controller is active;
//!   - on a single node the broker writes the block's end to its metadata file
//!     (`producer_id_block_end`, see [`crate::metadata_store`]: written, fsynced, renamed, directory
//!     fsynced) *before* any id of the block is handed out, and a restarted broker's first block
//!     starts at the stored end;
//! - a broker hands out the ids of a block in increasing order and moves on only to a block that
//!   starts at or past the end of the previous one (a block that does not is refused). Every id
//!   is larger than the one before (asserted).
//!
//! Ids left in a block when its broker stops are never used: gaps are fine, repeats are not.
//!
//! Flow, as Kafka's `RPCProducerIdManager`: an [`Allocator`] holds the current block and at most
//! one next block. Once 90% of the current block is handed out, a fetch of the next one starts in
//! a task of its own, so InitProducerId normally answers at once. Only when the current block is
//! used up and the next has not arrived does a request wait (for the fetch in flight, within
//! [`WAIT_BUDGET`]); if the fetch fails, the answer is `COORDINATOR_LOAD_IN_PROGRESS` (Kafka's
//! answer when its next block is late; every client retries it) and new fetches wait
//! [`RETRY_BACKOFF`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_core::ErrorCode;
use strata_core::rpc::{Request, Response};
use thiserror::Error;
use tokio::time::Instant;

use crate::replication::ClusterState;
use crate::sync::watch;

/// Ids per block a single node reserves in its metadata file (Kafka's block size; a cluster's
/// controller decides its own, also 1000).
pub const LOCAL_BLOCK_SIZE: i32 = 1000;
/// How long an InitProducerId waits for a block before answering `COORDINATOR_LOAD_IN_PROGRESS`.
pub const WAIT_BUDGET: Duration = Duration::from_secs(5);
/// Pause between a failed block fetch and the next one.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// The next block is fetched once this many tenths of the current one are handed out.
const PREFETCH_TENTHS: i64 = 9;
/// The answer to an InitProducerId that got no id: Kafka's, when its next block is late.
pub const UNAVAILABLE: ErrorCode = ErrorCode::COORDINATOR_LOAD_IN_PROGRESS;

/// Why no block came.
#[derive(Debug, Error)]
pub enum BlockError {
    #[error("block [{first}, {first} + {count}) is empty or leaves 0..=i64::MAX")]
    Invalid { first: i64, count: i32 },
    #[error("block starting at {first} is below the end {accepted_end} of an earlier block")]
    Backwards { first: i64, accepted_end: i64 },
    #[error("this broker is not registered with the controller yet")]
    NotRegistered,
    #[error("the controller refused to allocate producer ids (error {0})")]
    Refused(i16),
    #[error("unexpected controller answer: {0}")]
    Unexpected(String),
    #[error("controller unreachable: {0}")]
    Unreachable(String),
    #[error("cannot reserve a block in the metadata file: {0}")]
    Storage(String),
}

/// Producer ids `[first, first + count)`, at least one, all of them in `0..=i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    first: i64,
    count: i32,
}

impl Block {
    /// Parses a block (from the controller, or reserved locally).
    pub fn new(first: i64, count: i32) -> Result<Block, BlockError> {
        if first < 0 || count <= 0 || first.checked_add(i64::from(count)).is_none() {
            return Err(BlockError::Invalid { first, count });
        }
        Ok(Block { first, count })
    }

    pub fn first(&self) -> i64 {
        self.first
    }

    /// One past the last id.
    pub fn end(&self) -> i64 {
        // Cannot overflow: checked in `new`.
        self.first + i64::from(self.count)
    }
}

/// The allocator proper: blocks in, ids out, and when to fetch. No IO; time comes in as `now`.
#[derive(Debug, Default)]
pub struct Allocator {
    /// The block ids come from, and the next id in it (its `end()` once used up).
    current: Option<(Block, i64)>,
    /// The block after `current`, once fetched.
    next_block: Option<Block>,
    /// A fetch is in flight (at most one).
    fetching: bool,
    /// No fetch starts before this (set by a failed fetch).
    retry_at: Option<Instant>,
    /// End of the newest block accepted: a later block must start at or above it.
    accepted_end: i64,
    /// The last id handed out.
    last: Option<i64>,
}

impl Allocator {
    /// The next id, if the current block (or the next one, which then becomes current) has one.
    pub fn next_id(&mut self) -> Option<i64> {
        loop {
            if let Some((block, next)) = &mut self.current
                && *next < block.end()
            {
                let id = *next;
                *next += 1;
                assert!(
                    self.last.is_none_or(|last| id > last),
                    "producer ids strictly increase per broker: {id} after {:?}",
                    self.last
                );
                self.last = Some(id);
                return Some(id);
            }
            let block = self.next_block.take()?;
            self.current = Some((block, block.first()));
        }
    }

    /// Whether a fetch should start now, and if so marks it in flight: no block is waiting, none
    /// is being fetched, no backoff runs, and the current block is gone or 90% handed out.
    pub fn maybe_start_fetch(&mut self, now: Instant) -> bool {
        if self.fetching || self.next_block.is_some() || self.retry_at.is_some_and(|t| now < t) {
            return false;
        }
        let wanted = match &self.current {
            None => true,
            Some((block, next)) => {
                (next - block.first()) * 10 >= i64::from(block.count) * PREFETCH_TENTHS
            }
        };
        self.fetching = wanted;
        wanted
    }

    /// A fetch ended. A block that starts below an earlier block's end is refused (it would
    /// repeat ids); a refusal or failure starts the backoff.
    pub fn on_fetched(
        &mut self,
        now: Instant,
        result: Result<Block, BlockError>,
    ) -> Result<Block, BlockError> {
        assert!(self.fetching, "a fetch ends only after it started");
        self.fetching = false;
        let checked = result.and_then(|block| {
            if block.first() < self.accepted_end {
                Err(BlockError::Backwards {
                    first: block.first(),
                    accepted_end: self.accepted_end,
                })
            } else {
                Ok(block)
            }
        });
        match &checked {
            Ok(block) => {
                self.accepted_end = block.end();
                self.next_block = Some(*block);
                self.retry_at = None;
            }
            Err(_) => self.retry_at = Some(now + RETRY_BACKOFF),
        }
        checked
    }

    pub fn is_fetching(&self) -> bool {
        self.fetching
    }
}

/// A fetch of the next block.
pub type BlockFetch = Pin<Box<dyn Future<Output = Result<Block, BlockError>> + Send>>;

/// What [`ProducerIds::try_next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Hand out this id.
    Id(i64),
    /// None at hand; a fetch is in flight ([`ProducerIds::next_id`] waits for it).
    Wait,
    /// None at hand and none coming soon (the last fetch failed): `COORDINATOR_LOAD_IN_PROGRESS`.
    Unavailable,
}

/// A broker's producer id allocator, shared by its connections.
#[derive(Debug)]
pub struct ProducerIds {
    /// Never held across an `.await`.
    allocator: Mutex<Allocator>,
    /// Counts ended fetches; waiters look again when it moves.
    fetched: watch::Sender<u64>,
}

impl ProducerIds {
    pub fn new() -> Arc<ProducerIds> {
        let (fetched, _) = watch::channel(0);
        Arc::new(ProducerIds {
            allocator: Mutex::new(Allocator::default()),
            fetched,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Allocator> {
        // A panic under the lock is an invariant failure; the state is whole either way.
        self.allocator.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An id now, if one is at hand. Starts `fetch` in a task of its own when the allocator
    /// wants the next block (see [`Allocator::maybe_start_fetch`]).
    pub fn try_next(self: &Arc<Self>, fetch: &dyn Fn() -> BlockFetch) -> Next {
        let (id, start, fetching) = {
            let mut a = self.lock();
            let id = a.next_id();
            let start = a.maybe_start_fetch(Instant::now());
            (id, start, a.is_fetching())
        };
        if start {
            self.spawn_fetch(fetch());
        }
        match id {
            Some(id) => Next::Id(id),
            None if fetching => Next::Wait,
            None => Next::Unavailable,
        }
    }

    fn spawn_fetch(self: &Arc<Self>, fetch: BlockFetch) {
        let ids = self.clone();
        tokio::spawn(async move {
            let result = fetch.await;
            match ids.lock().on_fetched(Instant::now(), result) {
                Ok(block) => {
                    tracing::debug!(
                        first = block.first(),
                        end = block.end(),
                        "producer id block ready"
                    )
                }
                Err(e) => tracing::warn!(error = %e, "no producer id block"),
            }
            ids.fetched.send_modify(|n| *n = n.wrapping_add(1));
        });
    }

    /// An id, waiting at most `budget` for blocks (the fetch in flight, and more if waiters
    /// ahead used the block up). `None` when the fetch failed or the budget ran out.
    pub async fn next_id(
        self: Arc<Self>,
        fetch: impl Fn() -> BlockFetch,
        budget: Duration,
    ) -> Option<i64> {
        let deadline = Instant::now() + budget;
        let mut rx = self.fetched.subscribe();
        loop {
            // Mark the current count seen *before* looking, so a fetch ending in between wakes us.
            drop(rx.borrow_and_update());
            match self.try_next(&fetch) {
                Next::Id(id) => return Some(id),
                Next::Unavailable => return None,
                Next::Wait => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }
}

/// AllocateProducerIds (KIP-730) with this broker's current epoch.
pub async fn from_controller(cluster: &ClusterState) -> Result<Block, BlockError> {
    let broker_epoch = cluster.broker_epoch.load(Ordering::SeqCst);
    if broker_epoch < 0 {
        return Err(BlockError::NotRegistered);
    }
    let request = Request::AllocateProducerIds {
        broker_id: cluster.node_id,
        broker_epoch,
    };
    match cluster.client.send(request).await {
        Ok(Response::ProducerIds {
            error_code,
            first_producer_id,
            count,
        }) if error_code == ErrorCode::NONE.0 => Block::new(first_producer_id, count),
        Ok(Response::ProducerIds { error_code, .. }) => Err(BlockError::Refused(error_code)),
        Ok(other) => Err(BlockError::Unexpected(format!("{other:?}"))),
        Err(e) => Err(BlockError::Unreachable(e.to_string())),
    }
}

#[cfg(test)]
#[path = "tests/producer_ids.rs"]
mod tests;
