//! The partition rules, table by table, then a property over random runs of a leadership: the
//! high watermark never goes back, and whenever it moves it passes no maximal-ISR member's log
//! end and not the leader's durable end.

use proptest::prelude::*;

use super::*;
use crate::types::LeaderEpoch;

const LEADER: NodeId = NodeId(1);
const F2: NodeId = NodeId(2);
const F3: NodeId = NodeId(3);
const LAG_MS: u64 = 10_000;

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// Leader 1 of replicas {1, 2, 3} in `epoch`, with `isr`, its log ending (durably) at `leo`.
fn leader(epoch: i32, isr: &[i32], leo: i64, min_isr: usize) -> PartitionReplica {
    let state = IsrState::new(
        LEADER,
        vec![LEADER, F2, F3],
        isr.iter().map(|n| NodeId(*n)).collect(),
        LeaderEpoch(epoch),
        0,
        Offset(leo),
        ms(0),
    );
    let role = Role::Leader(Box::new(LeaderState {
        leader_epoch: epoch,
        epoch_start_offset: leo,
        isr: state,
        min_insync_replicas: min_isr,
        alter_in_flight: false,
    }));
    PartitionReplica::new(role, 0, leo)
}

fn follower(epoch: i32) -> Role {
    Role::Follower {
        leader: F2,
        leader_epoch: epoch,
        needs_truncation: true,
    }
}

fn pending(r: &PartitionReplica) -> Option<Vec<NodeId>> {
    match r.role() {
        Role::Leader(l) => l.isr.pending().map(|p| p.isr.clone()),
        _ => None,
    }
}

#[test]
fn the_sole_replica_serves_its_durable_end() {
    let mut r = PartitionReplica::new(Role::Sole, 0, 5);
    assert_eq!(r.high_watermark(), 5);
    assert_eq!(r.admit_append(-1, None), Ok(0));
    assert!(r.on_durable_end(9));
    assert!(!r.on_durable_end(9), "nothing new");
    assert_eq!(r.serving_high_watermark(), Ok(9));
    assert!(r.enough_replicas());
    // Two appends without fsync reporting their log ends out of order (seen with 16 producers
    // on one broker, log.fsync.before.ack=false): the later, lower report changes nothing.
    assert!(r.on_durable_end(14));
    assert!(!r.on_durable_end(12), "a stale report");
    assert_eq!((r.durable_end(), r.high_watermark()), (14, 14));
}

#[test]
fn admission_follows_role_epoch_and_min_insync_replicas() {
    let r = leader(4, &[1], 10, 2);
    let cases = [
        (-1, None, Err(ErrorCode::NOT_ENOUGH_REPLICAS)),
        (1, None, Ok(4)),
        (0, None, Ok(4)),
        (1, Some(4), Ok(4)),
        (1, Some(3), Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)),
    ];
    for (acks, expected, answer) in cases {
        assert_eq!(r.admit_append(acks, expected), answer, "acks {acks}");
    }
    assert!(!r.enough_replicas());
    assert_eq!(leader(4, &[1, 2], 10, 2).admit_append(-1, None), Ok(4));
    for role in [
        follower(4),
        Role::Remote {
            leader: Some(F2),
            leader_epoch: 4,
        },
    ] {
        let r = PartitionReplica::new(role, 0, 10);
        assert_eq!(
            r.admit_append(1, None),
            Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
        );
        assert!(r.enough_replicas(), "only a leader's ISR can be too small");
    }
}

#[test]
fn a_leaders_high_watermark_waits_for_every_isr_member_and_never_goes_back() {
    let mut r = leader(1, &[1, 2, 3], 10, 1);
    assert_eq!(r.high_watermark(), 0);
    // Neither follower fetched yet in this leadership: -1 keeps the start value.
    assert!(!r.on_durable_end(12));
    assert_eq!(r.high_watermark(), 0);
    let fetch = r.on_follower_fetch(ms(1), F2, 12, 12).expect("a replica");
    assert!(!fetch.high_watermark_moved, "follower 3 has not fetched");
    let fetch = r.on_follower_fetch(ms(2), F3, 7, 12).expect("a replica");
    assert!(fetch.high_watermark_moved);
    assert_eq!(r.high_watermark(), 7);
    // Follower 3 comes back lower (a restart): the high watermark stays.
    r.on_follower_fetch(ms(3), F3, 5, 12).expect("a replica");
    assert_eq!(r.high_watermark(), 7);
    r.on_follower_fetch(ms(4), F3, 12, 12).expect("a replica");
    assert_eq!(r.high_watermark(), 12);
}

#[test]
fn a_new_leader_serves_only_from_its_epoch_start() {
    let mut r = leader(2, &[1, 2], 10, 1);
    assert_eq!(
        r.serving_high_watermark(),
        Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        "its high watermark (0) may be below its predecessor's"
    );
    r.on_follower_fetch(ms(1), F2, 10, 10).expect("a replica");
    assert_eq!(r.serving_high_watermark(), Ok(10));
    let f = PartitionReplica::new(follower(2), 0, 10);
    assert_eq!(
        f.serving_high_watermark(),
        Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    );
}

#[test]
fn fetches_from_non_replicas_or_to_non_leaders_are_refused() {
    let mut r = leader(1, &[1, 2], 10, 1);
    assert_eq!(
        r.on_follower_fetch(ms(1), NodeId(9), 10, 10),
        Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    );
    let mut f = PartitionReplica::new(follower(1), 0, 10);
    assert_eq!(
        f.on_follower_fetch(ms(1), F3, 10, 10),
        Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    );
}

#[test]
fn a_caught_up_follower_is_proposed_once_and_holds_the_high_watermark_while_pending() {
    let mut r = leader(1, &[1, 2], 10, 1);
    r.on_follower_fetch(ms(1), F2, 10, 10).expect("a replica");
    assert_eq!(r.high_watermark(), 10);
    r.on_durable_end(20);
    r.on_follower_fetch(ms(2), F2, 20, 20).expect("a replica");
    assert_eq!(r.high_watermark(), 20);
    // Follower 3 reached the high watermark of an earlier moment: not yet.
    let fetch = r.on_follower_fetch(ms(3), F3, 10, 20).expect("a replica");
    assert_eq!(fetch.expansion, None);
    let fetch = r.on_follower_fetch(ms(4), F3, 20, 20).expect("a replica");
    let proposal = fetch.expansion.expect("caught up");
    assert_eq!(
        proposal,
        IsrProposal {
            isr: vec![LEADER, F2, F3],
            leader_epoch: 1,
            partition_epoch: 0
        }
    );
    // Pending: follower 3 is in the maximal ISR and holds the high watermark back.
    r.on_durable_end(30);
    r.on_follower_fetch(ms(5), F2, 30, 30).expect("a replica");
    assert_eq!(r.high_watermark(), 20);
    let again = r.on_follower_fetch(ms(6), F3, 25, 30).expect("a replica");
    assert_eq!(again.expansion, None, "one change at a time");
    assert_eq!(r.high_watermark(), 25);
}

#[test]
fn alter_partition_outcomes() {
    // (outcome, step, ISR committed after, still pending, resend after the pause)
    let committed = AlterPartitionOutcome::Committed {
        isr: vec![LEADER, F2, F3],
        partition_epoch: 1,
    };
    let same_state = AlterPartitionOutcome::Committed {
        isr: vec![LEADER, F2],
        partition_epoch: 0,
    };
    let cases = [
        (
            committed,
            AlterStep::Done,
            vec![LEADER, F2, F3],
            false,
            false,
        ),
        (same_state, AlterStep::Done, vec![LEADER, F2], false, false),
        (
            AlterPartitionOutcome::NotApplied,
            AlterStep::RetryLater,
            vec![LEADER, F2],
            false,
            false,
        ),
        (
            AlterPartitionOutcome::Unknown,
            AlterStep::RetryLater,
            vec![LEADER, F2],
            true,
            true,
        ),
    ];
    for (outcome, step, isr, still_pending, resend) in cases {
        let mut r = leader(1, &[1, 2], 10, 1);
        r.on_follower_fetch(ms(1), F2, 10, 10).expect("a replica");
        let proposal = r
            .on_follower_fetch(ms(2), F3, 10, 10)
            .expect("a replica")
            .expansion
            .expect("caught up");
        let label = format!("{outcome:?}");
        assert_eq!(
            r.on_alter_partition_outcome(&proposal, outcome),
            step,
            "{label}"
        );
        let Role::Leader(l) = r.role() else {
            panic!("still the leader")
        };
        assert_eq!(l.isr.isr(), &isr[..], "{label}");
        assert_eq!(l.isr.pending().is_some(), still_pending, "{label}");
        if step == AlterStep::RetryLater {
            assert_eq!(r.resend_pending(&proposal), resend, "{label}");
        }
        let Role::Leader(l) = r.role() else {
            panic!("still the leader")
        };
        assert_eq!(
            l.alter_in_flight, resend,
            "{label}: in flight only while resent"
        );
    }
}

#[test]
fn an_unanswered_alter_partition_keeps_holding_the_high_watermark() {
    // Cluster seed 1787: a timeout is not a refusal.
    let mut r = leader(1, &[1, 3], 10, 1);
    r.on_follower_fetch(ms(1), F3, 10, 10).expect("a replica");
    r.on_durable_end(20);
    let proposal = r
        .on_follower_fetch(ms(2), F2, 10, 20)
        .expect("a replica")
        .expansion
        .expect("follower 2 reached the high watermark 10");
    r.on_follower_fetch(ms(3), F3, 20, 20).expect("a replica");
    assert_eq!(r.high_watermark(), 10, "follower 2 is pending: it holds 10");
    assert_eq!(
        r.on_alter_partition_outcome(&proposal, AlterPartitionOutcome::Unknown),
        AlterStep::RetryLater
    );
    assert_eq!(r.high_watermark(), 10);
    assert!(r.resend_pending(&proposal));
    assert_eq!(pending(&r), Some(vec![LEADER, F2, F3]));
}

#[test]
fn the_metadata_can_settle_a_change_before_its_answer() {
    let mut r = leader(1, &[1, 2], 10, 1);
    r.on_follower_fetch(ms(1), F2, 10, 10).expect("a replica");
    let proposal = r
        .on_follower_fetch(ms(2), F3, 10, 10)
        .expect("a replica")
        .expansion
        .expect("caught up");
    r.on_partition_committed(vec![LEADER, F2, F3], 1, 2);
    assert_eq!(pending(&r), None);
    assert_eq!(
        r.on_alter_partition_outcome(&proposal, AlterPartitionOutcome::Unknown),
        AlterStep::Done,
        "the partition epoch moved on: the outcome is known"
    );
    let Role::Leader(l) = r.role() else {
        panic!("still the leader")
    };
    assert!(!l.alter_in_flight);
    assert_eq!(l.min_insync_replicas, 2);
}

#[test]
fn an_outcome_for_an_ended_leadership_changes_nothing() {
    let mut r = leader(1, &[1, 2], 10, 1);
    r.on_follower_fetch(ms(1), F2, 10, 10).expect("a replica");
    let proposal = r
        .on_follower_fetch(ms(2), F3, 10, 10)
        .expect("a replica")
        .expansion
        .expect("caught up");
    r.on_role_change(follower(2));
    assert_eq!(
        r.on_alter_partition_outcome(&proposal, AlterPartitionOutcome::Unknown),
        AlterStep::Done
    );
    assert!(!r.resend_pending(&proposal));
}

#[test]
fn a_lagging_follower_is_shrunk_out_after_the_lag_time() {
    let mut r = leader(1, &[1, 2, 3], 10, 1);
    r.on_follower_fetch(ms(1), F2, 10, 10).expect("a replica");
    r.on_follower_fetch(ms(1), F3, 10, 10).expect("a replica");
    r.on_durable_end(20);
    r.on_follower_fetch(ms(2), F2, 20, 20).expect("a replica");
    assert_eq!(
        r.maybe_shrink(ms(5_000), 20, LAG_MS),
        None,
        "within the lag time"
    );
    let proposal = r.maybe_shrink(ms(10_002), 20, LAG_MS).expect("3 lags");
    assert_eq!(proposal.isr, vec![LEADER, F2]);
    assert_eq!(
        r.maybe_shrink(ms(20_000), 20, LAG_MS),
        None,
        "one change at a time"
    );
    // A pending removal still holds the high watermark (3 may stay in the ISR).
    assert_eq!(r.high_watermark(), 10);
    let committed = AlterPartitionOutcome::Committed {
        isr: vec![LEADER, F2],
        partition_epoch: 1,
    };
    assert_eq!(
        r.on_alter_partition_outcome(&proposal, committed),
        AlterStep::Done
    );
    assert_eq!(r.high_watermark(), 20);
}

#[test]
fn a_follower_takes_its_leaders_high_watermark_capped_by_what_it_holds() {
    let mut f = PartitionReplica::new(follower(3), 0, 8);
    assert!(f.on_leader_high_watermark(12));
    assert_eq!(f.high_watermark(), 8);
    assert!(!f.on_leader_high_watermark(5), "never back");
    assert_eq!(f.high_watermark(), 8);
    f.on_durable_end(15);
    assert_eq!(
        f.high_watermark(),
        8,
        "a follower's own durable end does not move it"
    );
    assert!(f.on_leader_high_watermark(12));
    assert_eq!(f.high_watermark(), 12);
    assert!(f.set_needs_truncation(3, false));
    assert!(!f.set_needs_truncation(4, true), "another epoch's role");
    assert!(matches!(
        f.role(),
        Role::Follower {
            needs_truncation: false,
            ..
        }
    ));
}

#[test]
#[should_panic(expected = "passed the leader's durable end")]
fn a_leader_whose_high_watermark_passes_its_durable_end_is_a_bug() {
    let mut f = PartitionReplica::new(follower(1), 0, 10);
    f.on_leader_high_watermark(10);
    f.on_truncated(6);
    // Elected with a cut below its high watermark: the assertion stops it serving 10.
    f.on_role_change(leader(2, &[1], 6, 1).role().clone());
}

/// One step of a random leadership of leader 1 with followers 2 and 3.
#[derive(Debug, Clone)]
enum Op {
    Append(i64),
    Fetch { follower: i32, behind: i64 },
    Shrink { after_ms: u64 },
    Outcome(u8),
    Committed { isr_mask: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..20i64).prop_map(Op::Append),
        (2..4i32, 0..15i64).prop_map(|(follower, behind)| Op::Fetch { follower, behind }),
        (0..20_000u64).prop_map(|after_ms| Op::Shrink { after_ms }),
        (0..4u8).prop_map(Op::Outcome),
        (0..4u8).prop_map(|isr_mask| Op::Committed { isr_mask }),
    ]
}

/// Every maximal-ISR member's log end the high watermark may not pass.
fn bound(r: &PartitionReplica) -> i64 {
    let Role::Leader(l) = r.role() else {
        return i64::MAX;
    };
    l.isr.high_watermark(Offset(r.durable_end())).0
}

proptest! {
    #[test]
    fn the_high_watermark_only_moves_forward_and_only_to_what_every_maximal_isr_member_has(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut r = leader(1, &[1, 2, 3], 0, 1);
        let mut leo = 0;
        let mut now = 0;
        let mut in_flight: Option<IsrProposal> = None;
        let mut partition_epoch = 0;
        for op in ops {
            now += 10;
            let before = r.high_watermark();
            let moved = match op {
                Op::Append(n) => {
                    leo += n;
                    r.on_durable_end(leo)
                }
                Op::Fetch { follower, behind } => {
                    let at = (leo - behind).max(0);
                    let fetch = r.on_follower_fetch(ms(now), NodeId(follower), at, leo);
                    let fetch = fetch.expect("a replica of a leader");
                    if let Some(p) = fetch.expansion {
                        prop_assert!(in_flight.is_none(), "one change at a time");
                        in_flight = Some(p);
                    }
                    fetch.high_watermark_moved
                }
                Op::Shrink { after_ms } => {
                    now += after_ms;
                    if let Some(p) = r.maybe_shrink(ms(now), leo, LAG_MS) {
                        prop_assert!(in_flight.is_none(), "one change at a time");
                        in_flight = Some(p);
                    }
                    false
                }
                Op::Outcome(kind) => match in_flight.clone() {
                    None => false,
                    Some(p) => {
                        let outcome = match kind {
                            0 => AlterPartitionOutcome::Committed {
                                isr: p.isr.clone(),
                                partition_epoch: partition_epoch + 1,
                            },
                            1 => AlterPartitionOutcome::NotApplied,
                            _ => AlterPartitionOutcome::Unknown,
                        };
                        if kind == 0 {
                            partition_epoch += 1;
                        }
                        let step = r.on_alter_partition_outcome(&p, outcome);
                        if step == AlterStep::Done || !r.resend_pending(&p) {
                            in_flight = None;
                        }
                        r.high_watermark() > before
                    }
                },
                Op::Committed { isr_mask } => {
                    // The metadata log commits an ISR (another path to the same state).
                    let mut isr = vec![LEADER];
                    if isr_mask & 1 == 1 { isr.push(F2); }
                    if isr_mask & 2 == 2 { isr.push(F3); }
                    partition_epoch += 1;
                    let moved = r.on_partition_committed(isr, partition_epoch, 1);
                    if let Some(p) = in_flight.clone()
                        && r.on_alter_partition_outcome(&p, AlterPartitionOutcome::Unknown)
                            == AlterStep::Done
                    {
                        in_flight = None;
                    }
                    moved || r.high_watermark() > before
                }
            };
            let after = r.high_watermark();
            prop_assert!(after >= before, "high watermark went back: {before} -> {after}");
            prop_assert_eq!(moved, after > before);
            if moved {
                prop_assert!(after <= bound(&r), "{after} passes a maximal-ISR member");
                prop_assert!(after <= leo);
            }
            r.assert_invariants();
        }
    }
}
