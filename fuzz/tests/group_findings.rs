//! The consumer-group findings of `group_coordinator` and `group_records` (see
//! `findings/README.md`): the scenarios below show each finding in a few steps, and now pass
//! (all eight are fixed in `strata-core`; their inputs moved to `corpus/`, replayed by
//! `tests/corpus.rs`). A new finding gets a scenario here, and its input goes to
//! `findings/group_*/` until it is fixed (see `findings/README.md`).

use strata_fuzz::group_coordinator::{Options, run};
use strata_fuzz::group_steps::{CONFIG_BYTES, Step, input};

fn open() -> Options {
    Options {
        open_findings: true,
    }
}

/// `offset.metadata.max.bytes` above `i16::MAX` (the node accepts any int32): a standalone
/// commit with metadata of 40,000 bytes passes the check, and encoding its record panics.
pub fn metadata_longer_than_a_record_string() -> Vec<u8> {
    let mut config = [0; CONFIG_BYTES];
    config[5] = 4; // offset.metadata.max.bytes = 40,000
    let commit = Step::Commit {
        client: 0,
        mode: 0b101, // generation -1 to the standalone group
        partitions: 0,
        offset: 1,
        metadata: 4, // exactly the limit
    };
    input(config, &[commit])
}

#[test]
fn commit_metadata_above_i16_max_is_refused_or_written() {
    run(&metadata_longer_than_a_record_string(), open());
}

/// A loaded GroupMetadata with members and no protocol (a null `protocol`, which the format
/// allows): the group comes alive Stable without a selected protocol, and the coordinator's
/// own invariant check panics as soon as it is loaded.
#[test]
fn a_loaded_group_with_members_and_no_protocol() {
    run(
        &input(
            [0; CONFIG_BYTES],
            &[Step::Reload {
                mode: 16,
                foreign: 4,
            }],
        ),
        open(),
    );
}

/// A loaded GroupMetadata at generation `i32::MAX`: the next rebalance's `generation += 1`
/// overflows (a panic with overflow checks; a wrap to `i32::MIN` and the "generation never
/// goes back" assertion without).
#[test]
fn a_loaded_generation_of_i32_max() {
    let join = Step::Join {
        client: 0,
        group: 0,
        mode: 3 << 4,
        protocols: 0,
        session: 2,
        rebalance: 4,
    };
    let steps = [
        Step::Reload {
            mode: 16,
            foreign: 5,
        },
        join,
        join,
        Step::Advance { ms: 8, mode: 0 },
    ];
    run(&input([0; CONFIG_BYTES], &steps), open());
}

/// A loaded flexible (v4) GroupMetadata whose member's client id is longer than `i16::MAX`
/// bytes: the next GroupMetadata written for the group with that member in it (here when the
/// group's static member `i0` rejoins) cannot be encoded, and the driver panics.
#[test]
fn a_loaded_member_string_longer_than_a_v3_string() {
    let steps = [
        Step::Reload {
            mode: 16,
            foreign: 6,
        },
        Step::Join {
            client: 0,
            group: 0,
            mode: 4 | 3 << 4, // static (i0), v5, no member id: replaces foreign-1
            protocols: 0,
            session: 2,
            rebalance: 4,
        },
    ];
    run(&input([0; CONFIG_BYTES], &steps), open());
}

/// A static group whose members all ask for a rebalance timeout of 0 ms (JoinGroup does not
/// bound it below; Kafka's consumer sends `max.poll.interval.ms`, but any client may send 0):
/// after a leave, the join phase waits for members that never rejoin, and `complete_join`
/// ("nobody rejoined: wait another rebalance timeout") re-arms the join deadline at `now` on
/// every tick until a session expires — a driver that sleeps until `next_deadline()` spins
/// at one instant (in the simulator, time never moves again).
#[test]
fn a_zero_rebalance_timeout_spins_the_join_timer() {
    let join = |client: u8, protocols: u8, rebalance: u8| Step::Join {
        client,
        group: 0,
        mode: 4 | 3 << 4, // static, v5
        protocols,
        session: 2,
        rebalance,
    };
    let sync = |client: u8, assign: u8| Step::Sync {
        client,
        mode: 0,
        assign,
    };
    let steps = [
        join(0, 0, 4),
        join(1, 0, 4),
        Step::Advance { ms: 7, mode: 0 }, // generation 1
        sync(0, 0),
        sync(1, 1),
        Step::HighWatermark { mode: 0 }, // Stable
        join(1, 3, 1),                   // new metadata, rebalance timeout 0: rebalance
        join(0, 3, 1),                   // all joined: generation 2
        sync(0, 0),
        sync(1, 1),
        Step::HighWatermark { mode: 0 }, // Stable
        Step::Leave {
            group: 0,
            clients: 0b01,
            mode: 0,
        },
        Step::TickEarly {},
    ];
    run(&input([0; CONFIG_BYTES], &steps), open());
}

/// A static member's replacement (KIP-345: the same `group.instance.id` joining a Stable group
/// without a member id) whose GroupMetadata append fails is kept: the live group has the new
/// member id (the old one is fenced), the log the old one. Kafka reverts the replacement when
/// the append fails (`GroupMetadataManager`: "revert the update of the static member in the
/// group") and answers UNKNOWN_MEMBER_ID. DescribeGroups then shows a Stable group that is not
/// what its last GroupMetadata says (and a failover brings the old member id back).
#[test]
fn a_failed_static_replacement_is_reverted() {
    let join = |mode: u8| Step::Join {
        client: 0,
        group: 0,
        mode: mode | 4 | 3 << 4, // static (i0), v5
        protocols: 0,
        session: 2,
        rebalance: 4,
    };
    let steps = [
        join(0),
        Step::Advance { ms: 7, mode: 0 }, // generation 1
        Step::Sync {
            client: 0,
            mode: 0,
            assign: 0,
        },
        Step::HighWatermark { mode: 0 }, // Stable
        Step::FailAppends { code: 0, count: 0 },
        join(1), // no member id: replaces the member; its record fails
        Step::Describe { groups: 1 },
    ];
    run(&input([0; CONFIG_BYTES], &steps), open());
}

/// A loaded group with more members than `group.max.size` (written before the setting was
/// lowered, or by a broker with another one): `on_loaded` makes it Stable with all of them and
/// `check_invariants` ("members > group.max.size") panics. Found by the fuzzer (the input is
/// `findings/group_coordinator/loaded-group-above-max-size`). Kafka's `onLoaded` rebalances a
/// group loaded over capacity ("Freshly-loaded group is over capacity").
#[test]
fn a_loaded_group_above_max_size() {
    let mut config = [0; CONFIG_BYTES];
    config[3] = 1; // group.max.size = 1
    let steps = [Step::Reload {
        mode: 16,
        foreign: 0x45, // g2 with two members
    }];
    run(&input(config, &steps), open());
}

/// A group that turns Empty (its GroupMetadata written) and is expired by offsets retention in
/// the same tick is dropped without a tombstone: `expire_offsets` asks `latest` whether the
/// group has metadata to tombstone, and `latest` does not have the record this very call
/// writes. The log keeps the group at its generation while the coordinator forgets it; the
/// next group of that id starts at generation 0 and the coordinator's own assertion ("generation
/// 0 written after 2") panics (the harness stops it one step earlier). No failure or odd setting needed: a group whose metadata is not
/// in the log (here: it had only standalone commits, deleted since) and a late tick that sees
/// a session expiry and the retention check together. The fuzzer's input (with a failed
/// creation append instead): `findings/group_coordinator/empty-and-expired-in-one-tick`.
#[test]
fn a_group_emptied_and_expired_in_one_tick_gets_a_tombstone() {
    let join = |client: u8| Step::Join {
        client,
        group: 0,
        mode: 0, // v0: no member id round trip
        protocols: 0,
        session: 2,
        rebalance: 4,
    };
    let steps = [
        Step::Commit {
            client: 0,
            mode: 1, // generation -1 to its group g0
            partitions: 0,
            offset: 1,
            metadata: 2,
        },
        Step::HighWatermark { mode: 0 },
        Step::OffsetDelete { group: 0, mode: 0 }, // g0: live, nothing of it in the log
        Step::HighWatermark { mode: 0 },
        join(0),
        Step::Advance { ms: 4, mode: 0 }, // the join phase ends: generation 1
        // One late tick: the member's session expired (Empty, generation 2 written) and the
        // retention check is due: g0 is dropped without a tombstone.
        Step::Advance { ms: 10, mode: 1 },
        join(1),
    ];
    run(&input([0; CONFIG_BYTES], &steps), open());
}
