//! `__consumer_offsets`: created on the first FindCoordinator for a group, replicated like any
//! topic.
//!
//! - Partitions: `offsets.topic.num.partitions` (50). Replication factor:
//!   `offsets.topic.replication.factor`, or with -1 (the default) min(3, live brokers) at
//!   creation — Kafka's default is 3 and refuses smaller clusters; ours works on one node and
//!   gets 3 copies as soon as there are 3 brokers. `min.insync.replicas` is the broker default:
//!   a coordinator's write below it fails with COORDINATOR_NOT_AVAILABLE (Kafka sets none).
//! - While it is being created (cluster: the controller decides; the client retries)
//!   FindCoordinator answers COORDINATOR_NOT_AVAILABLE.
//!
//! ## Size
//!
//! As in Kafka, the topic is compacted (`cleanup.policy=compact`): every record is keyed (a
//! group's metadata by the group, a committed offset by group, topic and partition; a
//! tombstone's key names what it deletes), so the log cleaner keeps only each key's latest
//! record and drops tombstones after `delete.retention.ms` — replaying the cleaned log gives
//! the same image as replaying everything. Time or size retention would be *wrong* for this
//! topic: it would delete the only record of a live group's metadata or of an offset committed
//! long ago and never changed since, and consumers would silently restart from
//! `auto.offset.reset`; so there is none (`retention.ms=-1`, `retention.bytes=-1`).
//!
//! Compaction never touches the active segment, which rolls only at
//! `offsets.topic.segment.bytes` (100 MiB, as Kafka's), and needs a cleaner run
//! (`log.cleaner.enable`). The coordinators also keep their partitions bounded on their own,
//! by **snapshots** (older topics, created before compaction, rely on them alone):
//!
//! 1. Each coordinator counts the records written to its partition since its last snapshot
//!    started. Past `max(offsets.snapshot.min.records, 2 × its live records)` it re-emits its
//!    whole latest image — one GroupMetadata per group, one OffsetCommit per committed offset,
//!    the current values exactly — as ordinary records, in chunks of at most 1,000 records and
//!    512 KiB, each chunk once the previous one is committed (`strata_core::group`,
//!    `snapshot.rs`, which argues why chunks may interleave with other writes).
//! 2. Once the last chunk is below the high watermark, every record below the snapshot's start
//!    `S` is superseded: replaying from any offset at or below `S` gives the same image as
//!    replaying everything. The slot then deletes the partition's whole segments below `S`
//!    (`PartitionLog::delete_segments_below`, never at or above the high watermark), which
//!    moves the log start offset.
//! 3. Followers follow: a leader's fetch response carries its log start offset, and a follower
//!    deletes its own whole segments below it (and below its own high watermark), as Kafka's
//!    `maybeIncrementLogStartOffset` does. A follower's log start may stay below the leader's
//!    (its segment boundaries differ); a follower that becomes leader snapshots on its own.
//! 4. Loading replays from the log start, which is at or below the last completed `S`.
//!
//! The bound, per partition: the segment holding `S` (at most `offsets.topic.segment.bytes`,
//! 100 MiB by default, as Kafka's) plus what was written since `S` — at most the trigger
//! (`max(floor, 2 × live)`) plus one image (the next snapshot) plus what is written while that
//! snapshot runs. Roughly one segment plus three times the live state plus the floor, about
//! 100 bytes per committed partition and a group's metadata per group. Segments roll at
//! `offsets.topic.segment.bytes`, so a partition smaller than one segment is never trimmed: with
//! the defaults, a partition stays below ~100 MiB plus its live state.

use std::collections::BTreeMap;

use crate::config::Config;

/// Kafka's name for the offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The topic-level configs the offsets topic is created with (see the module docs): compacted,
/// no retention, segments of the broker's `offsets.topic.segment.bytes`.
pub fn topic_configs(config: &Config) -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "compact"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.bytes", config.value("offsets.topic.segment.bytes")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
