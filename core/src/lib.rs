//! # strata-core: the sans-IO heart of Strata
//!
//! This crate holds Strata's state machines — today the partition log (segments, indexes,
//! recovery, retention, the leader epoch cache), the record-batch rules and the replica-side
//! rules of replication (follower truncation, the leader's ISR and high watermark) — with **no
//! IO of its own**:
//!
//! - no async runtime, no sockets, no threads;
//! - no OS clock: wall-clock milliseconds (`now_ms`) and monotonic [`types::Instant`]s are passed
//!   in by the driver;
//! - no OS randomness: anything random is derived from a seed given at construction;
//! - no direct file access: every byte that reaches a disk goes through the [`storage::Storage`]
//!   trait, which the driver implements (real files in `strata-node`, a faulty simulated disk in
//!   `strata-sim`, an in-memory one in tests).
//!
//! A `tidy` test (`tests/tidy.rs`) fails the build if this crate names a banned item.
//!
//! ## Driving contract
//!
//! The partition log is driven by direct calls through the storage seam:
//!
//! ```text
//! let (log, report) = PartitionLog::open(storage, dir, config, now_ms)?;  // recovers
//! loop {
//!     log.append(batches, leader_epoch, now_ms)?;   // validate, assign offsets, write (no fsync)
//!     if let Some(plan) = log.begin_flush() {       // group commit: one fsync covers all before it
//!         plan.execute()?;                          // the driver runs this off its reactor
//!         log.complete_flush(&plan);                // advances flushed_offset
//!     }
//!     log.read(offset, max_bytes, upper_bound)?;    // whole, CRC-checked batches
//!     log.enforce_retention(now_ms)?;               // deletes whole non-active segments
//! }
//! ```
//!
//! Invariant: `log_start_offset <= flushed_offset <= log_end_offset`, and every offset below
//! `flushed_offset` survives a crash of the process or the machine.
//!
//! The cluster's state machines are driven the same way, by calls with `now` passed in:
//! [`controller::Controller`] decides (`handle`/`tick` return a response and records) and changes
//! only by `replay` of committed records; [`quorum::Quorum`] wraps raft-rs and persists through
//! the storage seam inside `poll_ready`; [`replica`] holds the leader's ISR/high-watermark rules
//! and the follower's truncation rule. See ARCHITECTURE.md ("The cluster").
//! [`group::GroupCoordinator`] follows the same contract for consumer groups: decisions return
//! replies and `__consumer_offsets` records, state changes by `replay`, and replies that wait
//! on records are released by `on_high_watermark`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod batch;
pub mod controller;
pub mod error;
pub mod group;
pub mod log;
pub mod metadata;
pub mod quorum;
pub mod record;
pub mod replica;
pub mod rpc;
pub mod storage;
pub mod types;

pub use error::ErrorCode;
pub use types::{LeaderEpoch, Offset};
