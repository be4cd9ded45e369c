//! The log cleaner (`cleanup.policy=compact`, issue #16): keeps the newest record of each key
//! in the sealed part of the log, and tombstones (null values) for `delete.retention.ms`.
//!
//! ## When, and over what
//! Only with `cleanup.policy` including `compact`. The *cleanable range* is whole sealed
//! segments from the log start up to the first uncleanable offset, the first of: the active
//! segment's base; the base of the segment holding the high watermark (nothing at or above it
//! changes: a new leader may not have it); the base of the segment holding the recovery point
//! on disk (`recovery-point`: recovery trusts that everything below it was fsynced, and a
//! cleaned segment may end in a gap that recovery must not take for a lost tail); the base of
//! the first segment holding a batch younger than `min.compaction.lag.ms` (by its newest
//! timestamp); the first segment recovery found corrupt data in. The *dirty section* starts at
//! the cleaner checkpoint (`cleaner-offset-checkpoint`, see `checkpoint`); before it lies the
//! *clean section*, whose keys a previous cleaning already deduplicated. A cleaning is due when
//! dirty bytes (the segments from the one holding the checkpoint) are at least
//! `min.cleanable.dirty.ratio` of the cleanable bytes, or when the oldest dirty batch is older
//! than `max.compaction.lag.ms`.
//!
//! ## What survives
//! An offset map (`offset_map`) holds, for every key of the dirty section, its newest offset;
//! it is bounded by a byte budget, and when full the dirty section this cleaning covers ends at
//! a batch boundary (`[first dirty, map end)`); only the segments the map reaches into are
//! cleaned. In every batch of those segments (clean and dirty alike):
//! - a keyless record is dropped (compacted topics refuse them at produce; a topic switched to
//!   compact may hold some);
//! - a record whose key the map holds at a newer offset is dropped (superseded);
//! - a tombstone survives until its batch's delete horizon has passed (KIP-534): a batch with
//!   tombstones and no horizon gets `now + delete.retention.ms` when a cleaning's map covers the
//!   whole batch; once `now >= horizon` its tombstones are dropped;
//! - control batches are kept as they are;
//! - a batch keeps its offset span (`baseOffset`, `lastOffsetDelta`) whatever remains of it; a
//!   batch with nothing left is dropped, unless it is the last batch of an idempotent producer
//!   in the producer state: it is kept empty, so the producer's sequence state survives a
//!   rebuild from the log and a retry is still recognised as a duplicate (as Kafka does);
//! - a batch that loses nothing and whose horizon stays is copied byte for byte.
//!
//! Why a horizon is set only under the map: a tombstone `T` of key `K` may be dropped once its
//! horizon passes, so every older record of `K` must be gone by then. The cleaning that sets
//! the horizon has `K -> offset(T)` or newer in its map, so it drops every older record of `K`
//! in the cleanable range (all of which it rewrites: the range starts at the log start), and
//! nothing older than `T` can be appended later. A tombstone beyond the map waits for a
//! cleaning that covers it. Were it given a horizon early, a later cleaning whose map again
//! stopped short of it could drop it while an older value of `K` in the clean section — not in
//! that map — survived: a resurrection.
//!
//! Offsets never change, so the idempotent-producer state and the leader epoch cache need no
//! update; a cleaned log has *gaps* (offsets no batch holds), which reads step over.
//!
//! ## Output
//! Consecutive source segments are grouped so each group's output fits one segment (sources'
//! bytes within `segment.bytes`, index files within `segment.index.bytes`, offsets within the
//! index's relative range); each group's surviving batches become one segment named by the
//! group's first source, indexed as the log indexes appends (`writer`); it may start with a gap.
//! The first group's output always exists, even empty, so the log start does not move; a later
//! group left with nothing has no output, its sources simply go.
//!
//! ## Swap (crash safety)
//! Kafka renames `.cleaned` files to `.swap` and then to their final names, and recovery
//! infers from which suffixes exist what to finish. Ours has one commit point instead:
//! 1. The task writes every output as `<base>.log.cleaned`, `.index.cleaned`,
//!    `.timeindex.cleaned`, fsyncs each, then fsyncs the directory (their names are durable).
//! 2. `finish_clean` writes the swap marker `<first source base>.swap` (the groups: sources
//!    and whether an output replaces them; CRC-protected, format in `swap`), fsyncs it, and
//!    fsyncs the directory. **This is the commit point.**
//! 3. Each `.cleaned` file is renamed over its final name (rename replaces atomically), every
//!    other source's files are deleted, the directory is fsynced, then the marker is deleted
//!    and the directory fsynced again.
//!
//! Recovery (`recover_swap`, first thing at open): a valid marker means the commit happened,
//! so step 3 is redone idempotently (a `.cleaned` file still there is renamed; one that is not
//! was renamed already, because step 1 made every name durable before the marker could be);
//! any other marker and every `.cleaned` file are deleted (no commit: the sources were never
//! touched). Argument, under the storage contract (data durable after `sync_data`, names after
//! `sync_dir`, either lost arbitrarily before): before the commit point no source file has
//! changed, and a marker that survives a crash without its sync is torn or whole — if whole it
//! was written after step 1 completed, so redoing is safe either way. After the commit point
//! the marker and every `.cleaned` file are durable, so recovery always completes the swap.
//! Each rename is atomic, so every final name holds either its source or its cleaned file, and
//! recovery makes it the cleaned one; deleted sources hold nothing the outputs lack. The
//! marker is deleted durably before `finish_clean` returns, so it cannot reappear after later
//! changes. The cleaner checkpoint is written after the swap: a crash in between only repeats
//! work.
//!
//! ## Running it without blocking
//! As for a group commit ([`super::FlushPlan`]): `PartitionLog::begin_clean` (cheap, under the
//! log's lock) returns a [`CleanTask`]; the driver calls [`CleanTask::step`] until it is done,
//! outside the lock, throttling as it likes; then `PartitionLog::finish_clean` under the lock
//! swaps the result in if the sources are unchanged (retention or a truncation may have
//! overtaken it), or abandons it; `PartitionLog::abort_clean` drops a task whose step failed.

mod checkpoint;
mod finish;
mod offset_map;
mod plan;
mod records;
mod retain;
mod swap;
mod task;
#[cfg(test)]
mod tests;
mod writer;

// What the node needs; `log/mod.rs` re-exports it.
pub use checkpoint::{CLEANER_CHECKPOINT, read_cleaner_checkpoint, truncate_cleaner_checkpoint};
pub use finish::CleanReport;
pub use plan::Cleanable;
pub use retain::RetainStats;
pub use swap::recover_swap;
pub use task::{CLEAN_STEP_BYTES, CleanStep, CleanTask, TaskStats};

/// Kafka's default `log.cleaner.dedupe.buffer.size` (the offset map's budget), 128 MiB.
pub const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 128 << 20;
