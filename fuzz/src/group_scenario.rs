//! A hand-written `group_coordinator` scenario (the seeds start from it) and the tests that
//! the target reaches what it should through it.

use crate::group_steps::{CONFIG_BYTES, Step, input};

/// Seeds: [`scenario`] under a few configs, and a few short inputs.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "seed-scenario".to_string(),
            input([0; CONFIG_BYTES], &scenario()),
        ),
        (
            "seed-scenario-small-limits".to_string(),
            input([1, 1, 1, 2, 1, 2, 1, 1, 0, 1], &scenario()),
        ),
        ("seed-empty".to_string(), input([0; CONFIG_BYTES], &[])),
    ]
}

/// Two dynamic members form a Stable group, commit (one append fails), fetch, survive a
/// leader change with truncation, compaction and a foreign batch, then a static member, a
/// leave, retention and deletion.
pub fn scenario() -> Vec<Step> {
    let v5 = 3 << 4;
    let join = |client: u8, mode: u8| Step::Join {
        client,
        group: 0,
        mode,
        protocols: 1,
        session: 2,
        rebalance: 4,
    };
    let commit = |client: u8, offset: u8| Step::Commit {
        client,
        mode: 0,
        partitions: 1,
        offset,
        metadata: 2,
    };
    vec![
        join(0, v5), // MEMBER_ID_REQUIRED
        join(0, v5), // parked: initial delay
        join(1, v5),
        join(1, v5),
        // The initial delay, extended once for the second joiner: generation 1.
        Step::Advance { ms: 7, mode: 0 },
        Step::Sync {
            client: 0,
            mode: 0,
            assign: 0,
        },
        Step::Sync {
            client: 1,
            mode: 0,
            assign: 1,
        },
        Step::HighWatermark { mode: 0 }, // Stable
        commit(0, 42),
        Step::FailAppends { code: 0, count: 0 },
        commit(1, 43),                     // fails: COORDINATOR_NOT_AVAILABLE
        Step::Fetch { group: 0, mode: 1 }, // UNSTABLE for partition 1
        Step::HighWatermark { mode: 0 },
        Step::Fetch { group: 0, mode: 2 },
        Step::Heartbeat { client: 0, mode: 0 },
        commit(1, 44),
        Step::Reload {
            mode: 0b1_1011,
            foreign: 0x45, // a v2 GroupMetadata of g2 at generation 3, two members
        },
        Step::Heartbeat { client: 1, mode: 0 },
        Step::Commit {
            client: 2,
            mode: 0b101,
            partitions: 0,
            offset: 7,
            metadata: 1,
        }, // standalone
        Step::HighWatermark { mode: 0 },
        Step::Join {
            client: 3,
            group: 1,
            mode: 4 | v5,
            protocols: 0,
            session: 2,
            rebalance: 4,
        }, // static: a member id at once
        Step::ToDeadline {},
        Step::Sync {
            client: 3,
            mode: 0,
            assign: 0,
        },
        Step::HighWatermark { mode: 0 },
        Step::Leave {
            group: 0,
            clients: 0b11,
            mode: 0,
        },
        Step::ToDeadline {},
        Step::HighWatermark { mode: 0 },
        Step::Describe { groups: 0b111 },
        Step::List { filter: 0 },
        Step::OffsetDelete { group: 0, mode: 0 },
        Step::Delete { groups: 0b1001 },
        Step::HighWatermark { mode: 0 },
        Step::Advance { ms: 10, mode: 1 }, // 8 days: retention
        Step::HighWatermark { mode: 0 },
        Step::Reload {
            mode: 0b110,
            foreign: 0,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_coordinator::{Options, run};

    #[test]
    fn the_scenario_reaches_stable_commits_failures_and_reloads() {
        let s = run(&input([0; CONFIG_BYTES], &scenario()), Options::default());
        eprintln!("{s:?}");
        assert_eq!(s.steps, scenario().len());
        assert!(s.joins_ok >= 3, "joins: {s:?}");
        assert!(s.syncs_ok >= 3, "syncs: {s:?}");
        assert!(s.stable, "a Stable group: {s:?}");
        assert!(s.commits_ok >= 3, "commits: {s:?}");
        assert!(s.offsets_fetched >= 1, "fetched: {s:?}");
        assert!(s.append_failures >= 1, "failures: {s:?}");
        assert!(s.groups_deleted >= 1, "deletions: {s:?}");
        assert_eq!(s.reloads, 2, "reloads: {s:?}");
        assert_eq!(s.foreign_batches, 1, "foreign: {s:?}");
    }

    #[test]
    fn every_seed_runs_every_step() {
        for (name, bytes) in seeds() {
            let s = run(&bytes, Options::default());
            assert!(s.steps > 0 || name == "seed-empty", "{name}: {s:?}");
        }
    }
}
