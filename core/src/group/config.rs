//! The group coordinator's settings, with Kafka's names and defaults.

/// Settings of a [`super::GroupCoordinator`]. Defaults are Kafka 4's unless said otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`: shorter sessions get `INVALID_SESSION_TIMEOUT`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: longer sessions get `INVALID_SESSION_TIMEOUT`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (KIP-134): how long the first rebalance out of Empty
    /// waits for more joiners; each new joiner extends it, up to the rebalance timeout.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`: members beyond it get `GROUP_MAX_SIZE_REACHED`. Kafka's default is
    /// unbounded (`Integer.MAX_VALUE`); ours is bounded, as every limit here is. Also bounds the
    /// members a group keeps pending (KIP-394) so a flood of fresh joins cannot grow memory
    /// without end: beyond it a fresh join gets `GROUP_MAX_SIZE_REACHED` until some expire.
    pub max_size: usize,
    /// `group.classic.new.member.join.timeout.ms`'s value in Kafka (5 min): a new member whose
    /// JoinGroup is parked is dropped after this, so a client that gave up does not stay.
    pub new_member_join_timeout_ms: i32,
    /// `offset.metadata.max.bytes`: longer commit metadata gets `OFFSET_METADATA_TOO_LARGE`.
    /// Values above `i16::MAX` act as `i16::MAX`: the record's metadata is an int16-length
    /// string.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` in ms (KIP-211): 7 days.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often `tick` looks for expired offsets.
    pub offsets_retention_check_interval_ms: u64,
    /// Strata's bound on one member's protocol metadata (all its protocols) and on one
    /// assignment: larger gets `INVALID_REQUEST`. Kafka bounds these only by the request size.
    pub max_member_metadata_bytes: usize,
    /// Strata's bound on an encoded GroupMetadata record (Kafka: the offsets topic's
    /// `max.message.bytes`, 1 MiB); a larger one fails the SyncGroup as Kafka's append would
    /// (`UNKNOWN_SERVER_ERROR`) and the group rebalances.
    pub max_record_bytes: usize,
    /// Strata's (no Kafka counterpart: Kafka compacts the topic): a snapshot of the partition
    /// starts once more than max(this, 2 × the records of the image) records were replayed
    /// since the last one started (`snapshot.rs`). The floor keeps small partitions from
    /// snapshotting all the time.
    pub snapshot_min_records: u64,
    /// Most records in one snapshot chunk (one batch).
    pub snapshot_chunk_records: usize,
    /// Most encoded record bytes in one snapshot chunk (a chunk holds at least one record),
    /// kept well below the topic's `max.message.bytes`.
    pub snapshot_chunk_bytes: usize,
    /// How long a snapshot waits before it tries again after a chunk's append failed.
    pub snapshot_retry_backoff_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: 1_000,
            new_member_join_timeout_ms: 300_000,
            offset_metadata_max_bytes: 4_096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1_000,
            offsets_retention_check_interval_ms: 600_000,
            max_member_metadata_bytes: 1 << 20,
            max_record_bytes: 1 << 20,
            snapshot_min_records: 10_000,
            snapshot_chunk_records: 1_000,
            snapshot_chunk_bytes: 512 * 1024,
            snapshot_retry_backoff_ms: 5_000,
        }
    }
}
