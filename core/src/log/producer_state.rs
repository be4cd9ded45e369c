//! The idempotent-producer state of one partition (KIP-98): Kafka's `ProducerStateManager`,
//! `ProducerAppendInfo` and `ProducerStateEntry`, sans-IO.
//!
//! For each producer id the partition keeps the producer epoch and the metadata of the last
//! [`NUM_BATCHES_TO_RETAIN`] batches it wrote (sequence range, offsets, timestamp). A leader
//! checks each producer batch against it *before* the append ([`ProducerStateManager::check_leader_append`]),
//! stages the change, writes the batches, then commits the staged change with the offsets the log
//! assigned ([`ProducerStateManager::commit`]) — stage, then commit, as Kafka's
//! `UnifiedLog.append` does with `analyzeAndValidateProducerState` and `producerStateManager.update`.
//! Followers and recovery apply every batch as written with no validation
//! ([`ProducerStateManager::apply_replicated`], Kafka's `AppendOrigin.REPLICATION`), through the
//! same bookkeeping, so a follower that becomes leader deduplicates exactly as its old leader did.
//!
//! Transactions (KIP-98 control batches, ongoing transactions, the last stable offset) are not
//! handled.
//!
//! ## Rules, each from Kafka (trunk, `storage/.../internals/log/`)
//! Checks run in this order for each batch of a produce request that has a producer id:
//! 1. `baseSequence < 0` is `INVALID_RECORD` (`LogValidator.validateBatch`). Transactional and
//!    control batches are refused with `INVALID_RECORD` too (not supported yet; Kafka accepts the
//!    former).
//! 2. **Duplicate** (`UnifiedLog.analyzeAndValidateProducerState`, `ProducerStateEntry.findDuplicateBatch`):
//!    same epoch as the committed entry and exactly the `(firstSeq, lastSeq)` of one of its cached
//!    batches: the append is answered with that batch's offsets and timestamp and nothing is
//!    written. Only the committed state is searched, and the first duplicate answers for the whole
//!    request.
//! 3. **Epoch** (`ProducerAppendInfo.checkProducerEpoch`): an epoch older than the producer's is
//!    `INVALID_PRODUCER_EPOCH` (since Kafka 2.7; `PRODUCER_FENCED` before).
//! 4. **Sequence** (`ProducerAppendInfo.checkSequence`):
//!    - a new epoch of a known producer must start at sequence 0, else `OUT_OF_ORDER_SEQUENCE_NUMBER`;
//!    - in the same epoch, `baseSequence` must follow the last sequence (wrapping from `i32::MAX`
//!      to 0), else `OUT_OF_ORDER_SEQUENCE_NUMBER` — a gap, and also a retry of a batch older
//!      than the cached ones (Kafka stopped answering `DUPLICATE_SEQUENCE_NUMBER` when it began
//!      caching five batches, KAFKA-5494);
//!    - a producer the partition does not know (never seen, or expired) is accepted at **any**
//!      sequence, as are later batches of the same request (the check is against the committed
//!      entry's epoch, `NO_PRODUCER_EPOCH`). This is KIP-360 (Kafka 2.5); before it the broker
//!      answered `UNKNOWN_PRODUCER_ID` to a non-zero first sequence.
//!
//! Retention does not remove producers (KAFKA-7190, KIP-360: state is kept until
//! `producer.id.expiration.ms`); only [`ProducerStateManager::remove_expired`] does, by the
//! timestamp of the producer's last batch (`maxTimestamp`, or the broker's time for
//! `LogAppendTime`), as Kafka's `isProducerExpired` does.
//!
//! ## Invariants (asserted)
//! [`ProducerStateManager::check_invariants`] asserts these; `PartitionLog::assert_invariants`
//! runs it (with `map_end_offset == log_end_offset` and no rebuild pending, while the log has not
//! failed) after every group commit, truncation, retention pass and open, so it is O(producers)
//! and allocates nothing. They are what [`ProducerStateManager::load_snapshot`] demands of a
//! snapshot, so a loaded state holds them as a built one does; a state waiting for a rebuild
//! still holds them (the truncation only flagged it).
//! - The map end offset and every producer id are not negative.
//! - Per producer, at most [`NUM_BATCHES_TO_RETAIN`] cached batches, in strictly increasing
//!   offset order (each starts after the previous one ends). Each has `0 <= first_offset <=
//!   last_offset < map_end_offset`, at most `i32::MAX` offsets apart, and a sequence range that
//!   matches its offset range (`last_seq == first_seq + (last_offset - first_offset)`, wrapping
//!   at `i32::MAX`; no sequence stays no sequence).
//! - A producer's last timestamp is its newest cached batch's.
//!
//! Deliberately not asserted, because they do not hold:
//! - Contiguous sequences across a producer's cached batches: an unknown producer is accepted at
//!   any sequence, and so are the later batches of the same request (rule 4, KIP-360); a
//!   follower applies whatever its leader wrote.
//! - A cached batch per producer: the snapshot format allows a producer without batches.
//! - Cached batches at or above the log start: retention keeps producers until they expire.
//!
//! Cached batches carry no epoch of their own: all are of the producer's current epoch, as
//! [`ProducerStateEntry`] clears them when the epoch changes.
//!
//! ## Truncation
//! Kafka does not undo a truncation in memory: `truncateAndReload` reloads the newest snapshot
//! at or below the new log end and replays the log from there. Here
//! [`ProducerStateManager::truncate_to`] keeps the state when no cached batch is at or after the
//! cut (exact: nothing the state holds came from removed batches), and otherwise answers
//! [`Truncation::RebuildNeeded`]: the caller must replace the manager by
//! [`ProducerStateManager::load_snapshot`] of a snapshot covering at most the new log end (or by
//! [`ProducerStateManager::new`] + [`ProducerStateManager::truncate_fully_and_start_at`] at the log
//! start) and replay the batches from its [`ProducerStateManager::map_end_offset`] to the log end
//! with [`ProducerStateManager::apply_replicated`]. Until then the old manager refuses to be used
//! (its methods assert).
//!
//! ## Snapshot format
//! Kafka writes `<offset>.snapshot` files (offset zero-padded to 20 digits, see
//! [`snapshot_file_name`]) holding the state after every batch below `offset`. Ours has the same
//! name and role but its own layout (Kafka keeps only the last batch per producer; we keep all
//! five, so a restarted leader still recognises a retry of any of them). Big-endian:
//!
//! ```text
//! offset  size  field
//!      0     2  version          u16, 1
//!      2     4  crc              u32, CRC-32C (Castagnoli) of bytes 6..end
//!      6     8  map_end_offset   i64 >= 0: the state covers every batch below this offset
//!     14     4  producer_count   u32
//!     18     …  producer_count producers, producer_id strictly increasing:
//!               +0   8  producer_id     i64 >= 0
//!               +8   2  producer_epoch  i16
//!               +10  8  last_timestamp  i64 (the last batch's timestamp)
//!               +18  1  batch_count     u8, 0..=5
//!               +19  …  batch_count batches, oldest first, 32 bytes each:
//!                        +0   4  first_seq     i32
//!                        +4   4  last_seq      i32 (first_seq + last_offset - first_offset, wrapped)
//!                        +8   8  first_offset  i64 >= 0
//!                        +16  8  last_offset   i64, >= first_offset, < map_end_offset, and
//!                                              < the next batch's first_offset
//!                        +24  8  timestamp     i64
//! ```
//!
//! Nothing follows the last producer. [`ProducerStateManager::load_snapshot`] checks every one of
//! these constraints and never panics: bad bytes are [`ProducerStateError::CorruptSnapshot`], on
//! which the caller falls back to an older snapshot or replays from the log start (Kafka deletes
//! the corrupt file and does the same).

use std::collections::{BTreeMap, VecDeque};

use thiserror::Error;

use crate::batch::BatchHeader;
use crate::error::ErrorCode;
use crate::types::{Offset, ProducerEpoch, ProducerId, Sequence};

/// Batches remembered per producer (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`): as many
/// as a producer may have in flight (`max.in.flight.requests.per.connection <= 5`).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// Default `producer.id.expiration.ms`: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 3600 * 1000;
/// The snapshot format version written and read.
pub const SNAPSHOT_VERSION: u16 = 1;
/// Bytes before the first producer in a snapshot.
const SNAPSHOT_HEADER_LEN: usize = 18;
/// Bytes of one producer before its batches.
const SNAPSHOT_PRODUCER_LEN: usize = 19;
/// Bytes of one batch in a snapshot.
const SNAPSHOT_BATCH_LEN: usize = 32;

/// The snapshot file name for a state covering every batch below `offset`, as Kafka names it:
/// `00000000000000000042.snapshot`.
pub fn snapshot_file_name(offset: Offset) -> String {
    format!("{:020}.snapshot", offset.0)
}

/// Why a producer's batch was refused, or a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProducerStateError {
    /// The batch's epoch is older than the producer's latest: a fenced (zombie) producer.
    #[error("producer {producer_id} epoch {} is older than the current epoch {}", .epoch.0, .current.0)]
    InvalidProducerEpoch {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        current: ProducerEpoch,
    },
    /// The batch does not continue the producer's sequence: a gap, a retry older than the cached
    /// batches, or a new epoch that does not start at 0.
    #[error(
        "out of order sequence for producer {producer_id} epoch {}: got {}, expected after {}",
        .epoch.0, .first_seq, .last_seq
    )]
    OutOfOrderSequence {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        first_seq: Sequence,
        /// The producer's last sequence ([`Sequence::NONE`] when a new epoch must start at 0).
        last_seq: Sequence,
    },
    /// `baseSequence` is negative in a batch with a producer id (Kafka's `LogValidator`).
    #[error("invalid sequence number {} in a batch of producer {producer_id}", .base_sequence.0)]
    InvalidSequence {
        producer_id: ProducerId,
        base_sequence: Sequence,
    },
    /// A transactional or control batch from a producer: not supported yet.
    #[error("transactional batches are not supported (producer {0})")]
    TransactionalNotSupported(ProducerId),
    /// A snapshot's bytes do not hold a valid state (see the module docs for the format).
    #[error("corrupt producer state snapshot: {0}")]
    CorruptSnapshot(&'static str),
}

impl ProducerStateError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ProducerStateError::InvalidProducerEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
            ProducerStateError::OutOfOrderSequence { .. } => {
                ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
            }
            ProducerStateError::InvalidSequence { .. }
            | ProducerStateError::TransactionalNotSupported(_) => ErrorCode::INVALID_RECORD,
            // Local to the broker, never sent to a client: the caller falls back (module docs).
            ProducerStateError::CorruptSnapshot(_) => ErrorCode::KAFKA_STORAGE_ERROR,
        }
    }
}

/// What the partition remembers of one batch of a producer (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: Sequence,
    pub last_seq: Sequence,
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// The batch's `maxTimestamp` as written (the broker's time for `LogAppendTime`). A
    /// duplicate's Produce response carries it as `log_append_time_ms`, as Kafka's does.
    pub timestamp_ms: i64,
}

/// One producer's state in a partition (Kafka's `ProducerStateEntry`, without transactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    /// The latest epoch written; [`ProducerEpoch::NONE`] only if a batch carried it.
    producer_epoch: ProducerEpoch,
    /// The last batches of `producer_epoch`, oldest first, at most [`NUM_BATCHES_TO_RETAIN`]; an
    /// epoch change clears them.
    batches: VecDeque<BatchMetadata>,
    /// The last batch's timestamp: what expiry measures from.
    last_timestamp_ms: i64,
}

impl ProducerStateEntry {
    pub fn producer_epoch(&self) -> ProducerEpoch {
        self.producer_epoch
    }

    /// The cached batches, oldest first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// The last sequence written, [`Sequence::NONE`] if no batch is cached.
    pub fn last_seq(&self) -> Sequence {
        self.batches.back().map_or(Sequence::NONE, |b| b.last_seq)
    }

    /// The last offset written by this producer, if a batch is cached.
    pub fn last_data_offset(&self) -> Option<Offset> {
        self.batches.back().map(|b| b.last_offset)
    }

    pub fn last_timestamp_ms(&self) -> i64 {
        self.last_timestamp_ms
    }

    /// The cached batch with exactly this epoch and sequence range (`findDuplicateBatch`).
    fn find_duplicate(
        &self,
        epoch: ProducerEpoch,
        first_seq: Sequence,
        last_seq: Sequence,
    ) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// Asserts this producer's invariants (module docs) in a state covering every offset below
    /// `map_end_offset`. O(1): at most [`NUM_BATCHES_TO_RETAIN`] batches.
    fn check_invariants(&self, producer_id: ProducerId, map_end_offset: Offset) {
        assert!(
            self.batches.len() <= NUM_BATCHES_TO_RETAIN,
            "producer {producer_id}: at most {NUM_BATCHES_TO_RETAIN} cached batches, has {}",
            self.batches.len()
        );
        let mut previous: Option<&BatchMetadata> = None;
        for b in &self.batches {
            let delta = b.last_offset.0.checked_sub(b.first_offset.0);
            let Some(delta) = delta
                .and_then(|d| i32::try_from(d).ok())
                .filter(|d| *d >= 0)
            else {
                panic!(
                    "producer {producer_id}: batch {b:?} ends at or after it starts, within \
                        i32::MAX offsets"
                );
            };
            assert!(
                b.first_offset.0 >= 0 && b.last_offset < map_end_offset,
                "producer {producer_id}: batch {b:?} lies in [0, map end {map_end_offset})"
            );
            assert_eq!(
                last_sequence(b.first_seq, delta),
                b.last_seq,
                "producer {producer_id}: the sequence range of {b:?} matches its offset range"
            );
            if let Some(p) = previous {
                assert!(
                    p.last_offset < b.first_offset,
                    "producer {producer_id}: cached batches in strictly increasing offset order: \
                     {p:?} then {b:?}"
                );
            }
            previous = Some(b);
        }
        if let Some(b) = self.batches.back() {
            assert_eq!(
                self.last_timestamp_ms, b.timestamp_ms,
                "producer {producer_id}: the last timestamp is the newest batch's ({b:?})"
            );
        }
    }

    /// Kafka's `ProducerStateEntry.addBatch`: a new epoch forgets the old epoch's batches.
    fn add_batch(&mut self, epoch: ProducerEpoch, batch: BatchMetadata) {
        if self.producer_epoch != epoch {
            self.batches.clear();
            self.producer_epoch = epoch;
        }
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp_ms = batch.timestamp_ms;
    }
}

/// The last sequence of a batch (`DefaultRecordBatch.lastSequence`): `baseSequence +
/// lastOffsetDelta`, wrapping at `i32::MAX`; no sequence stays no sequence.
fn last_sequence(base_sequence: Sequence, last_offset_delta: i32) -> Sequence {
    if base_sequence == Sequence::NONE {
        Sequence::NONE
    } else {
        base_sequence.increment(last_offset_delta)
    }
}

/// One batch of a checked leader append, waiting for its offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StagedBatch {
    /// `None` for a batch without a producer id: it only takes offsets.
    producer: Option<(ProducerId, ProducerEpoch)>,
    first_seq: Sequence,
    last_seq: Sequence,
    last_offset_delta: i32,
    max_timestamp: i64,
}

/// A leader append that passed every producer check, to be committed once the log has written
/// it (Kafka's per-producer `ProducerAppendInfo`s). Dropping it (a failed write) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "commit the staged append once the log has written it"]
pub struct StagedAppend {
    batches: Vec<StagedBatch>,
    /// The manager's `version` when checked: a commit must follow with no change in between.
    version: u64,
}

impl StagedAppend {
    /// Offsets the append covers (the sum of its batches' `lastOffsetDelta + 1`).
    pub fn offset_count(&self) -> i64 {
        self.batches
            .iter()
            .map(|b| i64::from(b.last_offset_delta) + 1)
            .sum()
    }
}

/// The outcome of a leader-side check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendCheck {
    /// Write the batches, then [`ProducerStateManager::commit`] this.
    New(StagedAppend),
    /// A retry of a batch already in the log: write nothing, answer with its offsets.
    Duplicate(BatchMetadata),
}

/// What [`ProducerStateManager::truncate_to`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Nothing the state holds came from the removed batches; it is exact as it is.
    Exact,
    /// The state held removed batches and cannot be undone in memory: rebuild it (module docs).
    RebuildNeeded,
}

/// One partition's producer state. See the module docs.
#[derive(Debug, Clone)]
pub struct ProducerStateManager {
    /// Every producer with state here, by id.
    producers: BTreeMap<ProducerId, ProducerStateEntry>,
    /// Kafka's `lastMapOffset`: the state reflects every batch below this offset.
    map_end_offset: Offset,
    /// `producer.id.expiration.ms`.
    expiration_ms: i64,
    /// Bumped by every change, so a commit can prove nothing changed since its check.
    version: u64,
    /// A truncation removed batches the state holds: it must be rebuilt before any use.
    rebuild_needed: bool,
}

impl ProducerStateManager {
    /// An empty state at offset 0, expiring producers idle for `expiration_ms`
    /// (`producer.id.expiration.ms`, default [`DEFAULT_PRODUCER_ID_EXPIRATION_MS`]).
    pub fn new(expiration_ms: i64) -> Self {
        assert!(
            expiration_ms >= 0,
            "producer.id.expiration.ms is never negative"
        );
        ProducerStateManager {
            producers: BTreeMap::new(),
            map_end_offset: Offset::ZERO,
            expiration_ms,
            version: 0,
            rebuild_needed: false,
        }
    }

    /// The state reflects every batch below this offset (Kafka's `mapEndOffset`).
    pub fn map_end_offset(&self) -> Offset {
        self.map_end_offset
    }

    pub fn expiration_ms(&self) -> i64 {
        self.expiration_ms
    }

    /// One producer's state, if the partition has any.
    pub fn entry(&self, producer_id: ProducerId) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer with state here, by id (Kafka's `activeProducers`).
    pub fn producers(&self) -> impl ExactSizeIterator<Item = (&ProducerId, &ProducerStateEntry)> {
        self.producers.iter()
    }

    /// A truncation left the state inexact: replace it (see [`Truncation::RebuildNeeded`]).
    pub fn rebuild_needed(&self) -> bool {
        self.rebuild_needed
    }

    /// Asserts the module invariants ("Invariants (asserted)"). O(producers), no allocation;
    /// panics naming the invariant and the values.
    pub fn check_invariants(&self) {
        assert!(
            self.map_end_offset.0 >= 0 && self.expiration_ms >= 0,
            "the map end offset ({}) and producer.id.expiration.ms ({}) are not negative",
            self.map_end_offset,
            self.expiration_ms
        );
        for (id, entry) in &self.producers {
            assert!(id.0 >= 0, "producer id {id} is not negative");
            entry.check_invariants(*id, self.map_end_offset);
        }
    }

    fn assert_usable(&self) {
        assert!(
            !self.rebuild_needed,
            "producer state used after a truncation that requires a rebuild"
        );
    }

    fn changed(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    /// [`Self::check_leader_batches`] for one batch.
    pub fn check_leader_append(
        &self,
        header: &BatchHeader,
    ) -> Result<AppendCheck, ProducerStateError> {
        self.check_leader_batches(std::slice::from_ref(header))
    }

    /// Checks a producer's record set (already through `batch::validate_produce`) before the
    /// leader writes it; changes nothing. Batches without a producer id pass and only take
    /// offsets. See the module docs for the rules and their order. The batches' offsets do not
    /// matter here: [`Self::commit`] gets them from the log.
    pub fn check_leader_batches(
        &self,
        headers: &[BatchHeader],
    ) -> Result<AppendCheck, ProducerStateError> {
        self.assert_usable();
        // Kafka's LogValidator runs over every batch before the producer state is consulted.
        for h in headers.iter().filter(|h| h.has_producer_id()) {
            let producer_id = ProducerId(h.producer_id);
            if h.is_transactional() || h.is_control() {
                return Err(ProducerStateError::TransactionalNotSupported(producer_id));
            }
            if h.base_sequence < 0 {
                return Err(ProducerStateError::InvalidSequence {
                    producer_id,
                    base_sequence: Sequence(h.base_sequence),
                });
            }
        }
        // Per producer: (epoch, last sequence) as this append leaves them so far (updatedEntry).
        let mut updated: BTreeMap<ProducerId, (ProducerEpoch, Sequence)> = BTreeMap::new();
        let mut batches = Vec::with_capacity(headers.len());
        for h in headers {
            let mut staged = StagedBatch {
                producer: None,
                first_seq: Sequence(h.base_sequence),
                last_seq: last_sequence(Sequence(h.base_sequence), h.last_offset_delta),
                last_offset_delta: h.last_offset_delta,
                max_timestamp: h.max_timestamp,
            };
            if !h.has_producer_id() {
                batches.push(staged);
                continue;
            }
            let producer_id = ProducerId(h.producer_id);
            let epoch = ProducerEpoch(h.producer_epoch);
            let current = self.producers.get(&producer_id);
            if let Some(dup) =
                current.and_then(|e| e.find_duplicate(epoch, staged.first_seq, staged.last_seq))
            {
                return Ok(AppendCheck::Duplicate(dup));
            }
            let current_epoch = current.map_or(ProducerEpoch::NONE, |e| e.producer_epoch);
            let (updated_epoch, updated_last_seq) =
                *updated.entry(producer_id).or_insert_with(|| {
                    (
                        current_epoch,
                        current.map_or(Sequence::NONE, |e| e.last_seq()),
                    )
                });
            if epoch < updated_epoch {
                return Err(ProducerStateError::InvalidProducerEpoch {
                    producer_id,
                    epoch,
                    current: updated_epoch,
                });
            }
            let first_seq = staged.first_seq;
            if epoch != updated_epoch {
                // A new epoch restarts the sequence, unless the producer is unknown (KIP-360).
                if first_seq.0 != 0 && updated_epoch != ProducerEpoch::NONE {
                    return Err(ProducerStateError::OutOfOrderSequence {
                        producer_id,
                        epoch,
                        first_seq,
                        last_seq: Sequence::NONE,
                    });
                }
            } else if !(current_epoch == ProducerEpoch::NONE
                || updated_last_seq.is_followed_by(first_seq))
            {
                // `updated_last_seq` is the committed entry's last sequence until this append
                // staged a batch of the producer: Kafka's `currentLastSeq`.
                return Err(ProducerStateError::OutOfOrderSequence {
                    producer_id,
                    epoch,
                    first_seq,
                    last_seq: updated_last_seq,
                });
            }
            updated.insert(producer_id, (epoch, staged.last_seq));
            staged.producer = Some((producer_id, epoch));
            batches.push(staged);
        }
        Ok(AppendCheck::New(StagedAppend {
            batches,
            version: self.version,
        }))
    }

    /// Commits a checked append after the log wrote it at `first_offset..=last_offset` (its
    /// `AppendInfo`), batch after batch from `first_offset`. `log_append_time_ms` is the
    /// `AppendInfo` field: the broker's time if the log stamped `LogAppendTime`, else `-1` (each
    /// batch's `maxTimestamp` is kept). Panics if the state changed since the check. Commit
    /// every append, also one without producer batches, so that [`Self::map_end_offset`] follows
    /// the log end offset.
    pub fn commit(
        &mut self,
        staged: StagedAppend,
        first_offset: Offset,
        last_offset: Offset,
        log_append_time_ms: i64,
    ) {
        self.assert_usable();
        assert_eq!(
            staged.version, self.version,
            "the producer state changed between check and commit"
        );
        assert_eq!(
            last_offset.0 - first_offset.0 + 1,
            staged.offset_count(),
            "the log wrote as many offsets as the staged batches hold"
        );
        assert!(
            first_offset >= self.map_end_offset,
            "a leader appends at its log end ({first_offset}), which the state covers up to {}",
            self.map_end_offset
        );
        let mut next = first_offset;
        for b in staged.batches {
            let batch_last = Offset(next.0 + i64::from(b.last_offset_delta));
            if let Some((producer_id, epoch)) = b.producer {
                let timestamp_ms = if log_append_time_ms >= 0 {
                    log_append_time_ms
                } else {
                    b.max_timestamp
                };
                self.add_batch(
                    producer_id,
                    epoch,
                    BatchMetadata {
                        first_seq: b.first_seq,
                        last_seq: b.last_seq,
                        first_offset: next,
                        last_offset: batch_last,
                        timestamp_ms,
                    },
                );
            }
            next = batch_last.next();
        }
        self.map_end_offset = next;
        self.changed();
    }

    /// Applies one batch as written to the log, with its offsets (a follower's replicated batch,
    /// or a batch replayed by recovery or a rebuild): Kafka's `AppendOrigin.REPLICATION`, which
    /// checks nothing and records the batch's epoch, sequence range, offsets and `maxTimestamp`.
    /// Batches must come in offset order; one wholly below [`Self::map_end_offset`] is already
    /// reflected and skipped, so a replay may start at the batch holding the snapshot offset.
    /// Control batches only advance the map (transactions are not tracked yet).
    pub fn apply_replicated(&mut self, header: &BatchHeader) {
        self.assert_usable();
        let last_offset = header.last_offset();
        if last_offset < self.map_end_offset {
            return;
        }
        if header.has_producer_id() && !header.is_control() {
            let first_seq = Sequence(header.base_sequence);
            self.add_batch(
                ProducerId(header.producer_id),
                ProducerEpoch(header.producer_epoch),
                BatchMetadata {
                    first_seq,
                    last_seq: last_sequence(first_seq, header.last_offset_delta),
                    first_offset: header.base_offset,
                    last_offset,
                    timestamp_ms: header.max_timestamp,
                },
            );
        }
        self.map_end_offset = last_offset.next();
        self.changed();
    }

    fn add_batch(&mut self, producer_id: ProducerId, epoch: ProducerEpoch, batch: BatchMetadata) {
        self.producers
            .entry(producer_id)
            .or_insert_with(|| ProducerStateEntry {
                producer_epoch: epoch,
                batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
                last_timestamp_ms: batch.timestamp_ms,
            })
            .add_batch(epoch, batch);
    }

    /// Follows a log truncation (KIP-101) that left the log ending at `log_end_offset`. See the
    /// module docs ("Truncation") for what the caller must do on [`Truncation::RebuildNeeded`].
    pub fn truncate_to(&mut self, log_end_offset: Offset) -> Truncation {
        self.assert_usable();
        if log_end_offset >= self.map_end_offset {
            return Truncation::Exact;
        }
        // Cached batches are the newest of each producer, so if none reaches the cut, no evicted
        // one does either. (A producer expired since may have had batches past the cut; it stays
        // forgotten, as after any expiry, and is accepted anew at any sequence: KIP-360.)
        let touched = self
            .producers
            .values()
            .any(|e| e.last_data_offset().is_some_and(|o| o >= log_end_offset));
        self.changed();
        if touched {
            self.rebuild_needed = true;
            Truncation::RebuildNeeded
        } else {
            self.map_end_offset = log_end_offset;
            Truncation::Exact
        }
    }

    /// Forgets every producer and starts the state at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a rebuild with no snapshot starts here at the log start, as
    /// does a follower whose whole log was replaced.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) {
        self.producers.clear();
        self.map_end_offset = offset;
        self.rebuild_needed = false;
        self.changed();
    }

    /// Retention or DeleteRecords moved the log start offset. Producers are kept until they
    /// expire (KAFKA-7190 / KIP-360: dropping them made the next append of a quiet producer
    /// fail); the map end moves up if the log now starts beyond it (Kafka's
    /// `onLogStartOffsetIncremented`).
    pub fn on_log_start_moved(&mut self, log_start_offset: Offset) {
        self.assert_usable();
        if self.map_end_offset < log_start_offset {
            self.map_end_offset = log_start_offset;
            self.changed();
        }
    }

    /// Removes producers whose last batch is `producer.id.expiration.ms` or more older than
    /// `now_ms` (Kafka's `removeExpiredProducers`, run every
    /// `producer.id.expiration.check.interval.ms`). Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64) -> usize {
        self.assert_usable();
        let before = self.producers.len();
        let expiration_ms = self.expiration_ms;
        self.producers
            .retain(|_, e| !is_expired(e, now_ms, expiration_ms));
        let removed = before - self.producers.len();
        if removed > 0 {
            self.changed();
        }
        removed
    }

    /// The state as snapshot bytes (module docs), covering every batch below
    /// [`Self::map_end_offset`]. Name the file [`snapshot_file_name`]`(map_end_offset)`.
    pub fn snapshot(&self) -> Vec<u8> {
        self.assert_usable();
        let mut out = Vec::with_capacity(
            SNAPSHOT_HEADER_LEN
                + self
                    .producers
                    .values()
                    .map(|e| SNAPSHOT_PRODUCER_LEN + SNAPSHOT_BATCH_LEN * e.batches.len())
                    .sum::<usize>(),
        );
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // CRC, filled in below
        out.extend_from_slice(&self.map_end_offset.0.to_be_bytes());
        let count = u32::try_from(self.producers.len()).expect("fewer than 2^32 producers");
        out.extend_from_slice(&count.to_be_bytes());
        for (id, e) in &self.producers {
            out.extend_from_slice(&id.0.to_be_bytes());
            out.extend_from_slice(&e.producer_epoch.0.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp_ms.to_be_bytes());
            out.push(e.batches.len() as u8); // at most NUM_BATCHES_TO_RETAIN
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.0.to_be_bytes());
                out.extend_from_slice(&b.last_seq.0.to_be_bytes());
                out.extend_from_slice(&b.first_offset.0.to_be_bytes());
                out.extend_from_slice(&b.last_offset.0.to_be_bytes());
                out.extend_from_slice(&b.timestamp_ms.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[6..]);
        out[2..6].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Loads a snapshot written by [`Self::snapshot`], dropping producers already expired at
    /// `now_ms` (as Kafka's `loadFromSnapshot` does). Returns the state and the offset it covers
    /// up to; replay the log from that offset with [`Self::apply_replicated`].
    pub fn load_snapshot(
        bytes: &[u8],
        expiration_ms: i64,
        now_ms: i64,
    ) -> Result<(Self, Offset), ProducerStateError> {
        let (map_end_offset, producers) = decode_snapshot(bytes)?;
        let mut state = ProducerStateManager::new(expiration_ms);
        state.map_end_offset = map_end_offset;
        state.producers = producers;
        state
            .producers
            .retain(|_, e| !is_expired(e, now_ms, expiration_ms));
        Ok((state, map_end_offset))
    }
}

/// Kafka's `isProducerExpired` (without transactions): idle for at least `expiration_ms`.
fn is_expired(entry: &ProducerStateEntry, now_ms: i64, expiration_ms: i64) -> bool {
    now_ms.saturating_sub(entry.last_timestamp_ms) >= expiration_ms
}

/// Reads big-endian fields off the front of a byte slice, failing rather than panicking.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProducerStateError> {
        let Some((head, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(ProducerStateError::CorruptSnapshot("truncated"));
        };
        self.rest = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, ProducerStateError> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, ProducerStateError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, ProducerStateError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, ProducerStateError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, ProducerStateError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

type DecodedSnapshot = (Offset, BTreeMap<ProducerId, ProducerStateEntry>);

/// Parses and checks snapshot bytes (module docs); never panics.
fn decode_snapshot(bytes: &[u8]) -> Result<DecodedSnapshot, ProducerStateError> {
    use ProducerStateError::CorruptSnapshot as Corrupt;
    let mut r = Reader { rest: bytes };
    if r.take::<2>().map(u16::from_be_bytes)? != SNAPSHOT_VERSION {
        return Err(Corrupt("unknown version"));
    }
    let stored_crc = r.u32()?;
    if crc32c::crc32c(r.rest) != stored_crc {
        return Err(Corrupt("CRC mismatch"));
    }
    let map_end_offset = Offset(r.i64()?);
    if map_end_offset.0 < 0 {
        return Err(Corrupt("negative map end offset"));
    }
    let count = r.u32()? as usize;
    if count > r.rest.len() / SNAPSHOT_PRODUCER_LEN {
        return Err(Corrupt("more producers than bytes"));
    }
    let mut producers = BTreeMap::new();
    let mut previous: Option<ProducerId> = None;
    for _ in 0..count {
        let producer_id = ProducerId(r.i64()?);
        if producer_id.0 < 0 || previous.is_some_and(|p| p >= producer_id) {
            return Err(Corrupt("producer ids not positive and strictly increasing"));
        }
        previous = Some(producer_id);
        let producer_epoch = ProducerEpoch(r.i16()?);
        let last_timestamp_ms = r.i64()?;
        let batch_count = usize::from(r.u8()?);
        if batch_count > NUM_BATCHES_TO_RETAIN {
            return Err(Corrupt("too many batches for a producer"));
        }
        let mut batches = VecDeque::with_capacity(batch_count);
        for _ in 0..batch_count {
            let b = BatchMetadata {
                first_seq: Sequence(r.i32()?),
                last_seq: Sequence(r.i32()?),
                first_offset: Offset(r.i64()?),
                last_offset: Offset(r.i64()?),
                timestamp_ms: r.i64()?,
            };
            let delta = b.last_offset.0.checked_sub(b.first_offset.0);
            let Some(delta) = delta.and_then(|d| i32::try_from(d).ok()) else {
                return Err(Corrupt("batch offset range out of bounds"));
            };
            if b.first_offset.0 < 0 || delta < 0 || b.last_offset >= map_end_offset {
                return Err(Corrupt("batch offsets outside the snapshot"));
            }
            if last_sequence(b.first_seq, delta) != b.last_seq {
                return Err(Corrupt("batch sequence range does not match its offsets"));
            }
            if batches
                .back()
                .is_some_and(|p: &BatchMetadata| p.last_offset >= b.first_offset)
            {
                return Err(Corrupt("batches not in offset order"));
            }
            batches.push_back(b);
        }
        if batches
            .back()
            .is_some_and(|b| b.timestamp_ms != last_timestamp_ms)
        {
            return Err(Corrupt("last timestamp is not the last batch's"));
        }
        producers.insert(
            producer_id,
            ProducerStateEntry {
                producer_epoch,
                batches,
                last_timestamp_ms,
            },
        );
    }
    if !r.rest.is_empty() {
        return Err(Corrupt("trailing bytes"));
    }
    Ok((map_end_offset, producers))
}

#[cfg(test)]
#[path = "tests/producer_state.rs"]
mod tests;
