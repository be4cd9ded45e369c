//! The input format of `group_coordinator`: a config header, then steps.
//!
//! Every byte string is an input: the forgiving [`Reader`] yields zeros past the end, and every
//! field is a byte read modulo the size of what it selects from, so the format is stable under
//! mutation and a scenario can be written by hand ([`input`]). A step is a tag byte (modulo the
//! number of kinds) and its fields, each one byte. Fields *select*: a client (whose member id,
//! generation and leadership come from the replies it got, as a real client's do), a group id
//! from a pool, a session timeout from a table around the configured bounds, and so on; what
//! each selects is read by the driver (`group_coordinator.rs`).

use strata_core::group::GroupConfig;

use crate::input::Reader;

/// Bytes of the config header.
pub const CONFIG_BYTES: usize = 10;

/// Reads the config: each byte picks from a small table of Kafka's default and edge values.
pub fn read_config(r: &mut Reader<'_>) -> GroupConfig {
    let mut pick = |table: &[i64]| table[usize::from(r.u8()) % table.len()];
    let min_session = pick(&[6_000, 0]) as i32;
    let max_session = pick(&[1_800_000, 10_000]) as i32;
    let initial_delay = pick(&[3_000, 0, 100]) as i32;
    let max_size = pick(&[1_000, 1, 2, 3]) as usize;
    let new_member_join_timeout = pick(&[300_000, 1_000]) as i32;
    // `offset.metadata.max.bytes` takes any int32 at the node; above i16::MAX the coordinator
    // bounds it by the record's int16 string length (finding 1, fixed).
    let offset_metadata_max_bytes = pick(&[4_096, 0, 16, 32_767, 40_000]) as usize;
    let offsets_retention_ms = pick(&[7 * 24 * 3_600_000, 60_000, 1]);
    let retention_check = pick(&[600_000, 1_000, 1]) as u64;
    let max_member_metadata_bytes = pick(&[64, 1 << 20]) as usize;
    let max_record_bytes = pick(&[1 << 20, 300]) as usize;
    GroupConfig {
        min_session_timeout_ms: min_session,
        max_session_timeout_ms: max_session,
        initial_rebalance_delay_ms: initial_delay,
        max_size,
        new_member_join_timeout_ms: new_member_join_timeout,
        offset_metadata_max_bytes,
        offsets_retention_ms,
        offsets_retention_check_interval_ms: retention_check,
        max_member_metadata_bytes,
        max_record_bytes,
        // The snapshot settings (added to core after this target): Kafka-like defaults, so a
        // run of at most `MAX_STEPS` steps never snapshots.
        ..GroupConfig::default()
    }
}

macro_rules! steps {
    ($($(#[$doc:meta])* $tag:literal => $name:ident { $($field:ident),* }),* $(,)?) => {
        /// One step of a run (fields are selectors, see the module docs and the driver).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Step {
            $($(#[$doc])* $name { $($field: u8),* },)*
        }

        /// Step kinds.
        pub const STEP_KINDS: u8 = [$($tag),*].len() as u8;

        impl Step {
            pub fn read(r: &mut Reader<'_>) -> Step {
                match r.u8() % STEP_KINDS {
                    $($tag => Step::$name { $($field: r.u8()),* },)*
                    _ => unreachable!("tags are 0..STEP_KINDS"),
                }
            }

            pub fn write(&self, out: &mut Vec<u8>) {
                match *self {
                    $(Step::$name { $($field),* } => {
                        out.push($tag);
                        $(out.push($field);)*
                    })*
                }
            }
        }
    };
}

steps! {
    /// JoinGroup. `mode`: bits 0–1 member id (0 the client's own, 1 fresh: the client forgets
    /// its group, 2 another client's, 3 garbage), bit 2 static (instance id `i<client>`), bit 3
    /// an empty instance id, bits 4–6 the version (0, 3, 4, 5, 9), bit 7 protocol type
    /// "connect" instead of "consumer".
    0 => Join { client, group, mode, protocols, session, rebalance },
    /// SyncGroup. `mode`: bits 0–1 generation (own, own − 1, own + 1, −1), bit 2 garbage member
    /// id, bit 3 another client's instance id, bits 4–5 protocol (own, none, wrong type, wrong
    /// name). `assign`: the members the client learnt, none, plus unknown and duplicate ids,
    /// oversized.
    1 => Sync { client, mode, assign },
    /// Heartbeat; `mode` as SyncGroup's bits 0–3.
    2 => Heartbeat { client, mode },
    /// LeaveGroup, batched: the clients in the `clients` mask; `mode`: bit 0 by instance id,
    /// bit 1 plus a garbage member, bit 2 plus an empty member id.
    3 => Leave { group, clients, mode },
    /// OffsetCommit. `mode`: bits 0–1 (own generation, −1 standalone, stale, −1 with the member
    /// id), bit 2 to the standalone group "s", bit 3 v8 (else v9), bit 4 a topic name too long
    /// for a record, bit 5 two topics. `partitions`: count 1–3 (bits 0–1), first index (2–3).
    /// `metadata`: null, "", "m", limit − 1, limit, limit + 1 bytes.
    4 => Commit { client, mode, partitions, offset, metadata },
    /// OffsetFetch. `mode`: bit 0 require_stable, bit 1 every partition (topics null), bit 2 a
    /// second group.
    5 => Fetch { group, mode },
    6 => List { filter },
    /// DescribeGroups of the group ids in the `groups` mask (pool indices 0–5).
    7 => Describe { groups },
    8 => Delete { groups },
    9 => OffsetDelete { group, mode },
    /// The clock moves to `next_deadline()` and `tick` runs.
    10 => ToDeadline {},
    /// The clock moves by a table amount: deadline by deadline (bit 0 of `mode` clear) or in
    /// one jump, ticking once, late (set).
    11 => Advance { ms, mode },
    /// `tick` with nothing due (ticking early is harmless).
    12 => TickEarly {},
    /// The high watermark moves: to the log end, past the first uncommitted batch, or nowhere.
    13 => HighWatermark { mode },
    /// The next 1–3 appends fail with an error code from a table.
    14 => FailAppends { code, count },
    /// Leader change: unload, then a fresh coordinator loads the log. `mode`: bit 0 the new
    /// leader lacks the uncommitted tail (truncated), bit 1 the committed prefix is compacted
    /// (bit 2: tombstones too), bit 3 a request during loading and one after unload, bit 4
    /// another writer's batch (older or flexible record versions, chosen by `foreign`) at the
    /// log end.
    15 => Reload { mode, foreign },
    /// The wall clock (record timestamps, retention) jumps; the monotonic clock does not.
    16 => WallClock { delta },
}

/// An input: a config header (see [`read_config`]) and steps.
pub fn input(config: [u8; CONFIG_BYTES], steps: &[Step]) -> Vec<u8> {
    let mut out = config.to_vec();
    for step in steps {
        step.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_back_as_written() {
        let steps = [
            Step::Join {
                client: 1,
                group: 2,
                mode: 3,
                protocols: 4,
                session: 5,
                rebalance: 6,
            },
            Step::Commit {
                client: 0,
                mode: 9,
                partitions: 8,
                offset: 7,
                metadata: 6,
            },
            Step::ToDeadline {},
            Step::Reload {
                mode: 31,
                foreign: 200,
            },
            Step::WallClock { delta: 3 },
        ];
        let bytes = input([0; CONFIG_BYTES], &steps);
        let mut r = Reader::new(&bytes);
        let _ = read_config(&mut r);
        for step in steps {
            assert_eq!(Step::read(&mut r), step);
        }
        assert!(r.is_empty());
    }
}
