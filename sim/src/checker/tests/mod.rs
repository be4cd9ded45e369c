//! Tests of the checkers together (one history, every checker); each checker's own tests are in
//! its file's `mod tests` or beside this one (`producer_fencing.rs`).

mod model;

use super::testkit::Builder;
use super::*;

#[test]
fn a_clean_history_is_valid() {
    let mut b = Builder::new();
    b.send_ok(1, "t", 0, &[1, 2], 0);
    b.send_info(1, "t", 0, &[3]);
    b.send_ok(1, "t", 0, &[4], 3);
    b.send_fail(1, "t", 0, &[5]);
    b.assign(2, &[("t", 0)], true);
    b.poll_ok(2, "t", 0, 0, &[(0, 1), (1, 2)], 2);
    b.poll_ok(2, "t", 0, 2, &[(2, 3), (3, 4)], 4);
    b.final_read(9, "t", 0, &[(0, 1), (1, 2), (2, 3), (3, 4)], 4);
    let report = check_all(&b.history);
    assert!(report.is_valid(), "{}", report.render(&b.history, 5));
}

#[test]
fn report_renders_anomalies_with_their_ops() {
    let mut b = Builder::new();
    b.send_ok(1, "t", 0, &[1], 0);
    b.final_read(9, "t", 0, &[], 0);
    let report = check_all(&b.history);
    assert_eq!(report.counts().get("lost-write"), Some(&1));
    assert_eq!(report.counts().get("unseen"), Some(&1));
    let text = report.render(&b.history, 5);
    assert!(
        text.starts_with("history INVALID: lost-write=1 unseen=1"),
        "{text}"
    );
    assert!(text.contains("send t-0 acks=all [1] -> @0"), "{text}");
}

#[test]
fn check_all_with_judges_the_observations_too() {
    use super::observation_testkit::{batch, claim, partition, replica};

    let mut b = Builder::new();
    b.send_ok(1, "t", 0, &[1], 0);
    b.final_read(9, "t", 0, &[(0, 1)], 1);

    // Good observations: the report is the history's alone.
    let mut good = partition(
        vec![
            replica(1, 0, vec![batch(0, 0, 1, 0xA)]),
            replica(2, 0, vec![batch(0, 0, 1, 0xA)]),
        ],
        1,
        &[1, 2],
    );
    good.leader_claims = vec![claim(1, 1, "t", 0, 1), claim(2, 2, "t", 0, 2)];
    let report = check_all_with(&b.history, &good);
    assert!(report.is_valid(), "{}", report.render(&b.history, 5));
    assert_eq!(report, check_all(&b.history));

    // One anomaly of each kind.
    let mut bad = partition(
        vec![
            replica(1, 0, vec![batch(0, 0, 1, 0xA)]),
            replica(2, 0, vec![batch(0, 0, 1, 0xB)]),
            replica(3, 0, vec![]),
        ],
        1,
        &[1, 2, 3],
    );
    bad.leader_claims = vec![
        claim(1, 1, "t", 0, 1),
        claim(2, 2, "t", 0, 1),
        claim(3, 2, "t", 0, 2),
        claim(4, 2, "t", 0, 1),
    ];
    let report = check_all_with(&b.history, &bad);
    assert!(!report.is_valid());
    let counts: Vec<(&str, usize)> = report.counts().into_iter().collect();
    assert_eq!(
        counts,
        vec![
            ("diverged", 1),
            ("epoch-went-back", 1),
            ("missing-below-hw", 1),
            ("split-brain", 1),
        ]
    );
    assert_eq!(report.named("split-brain").len(), 1);
    assert!(report.anomalies.iter().all(|a| a.ops().is_empty()));
    let text = report.render(&b.history, 5);
    assert!(
        text.starts_with(
            "history INVALID: diverged=1 epoch-went-back=1 missing-below-hw=1 split-brain=1"
        ),
        "{text}"
    );
    assert!(
        text.contains("split-brain: 2 nodes claim to lead t-0 in leader epoch 1"),
        "{text}"
    );
    assert!(
        text.contains("diverged: replicas of t-0 differ at offsets 0..1"),
        "{text}"
    );
    assert!(
        text.contains("missing-below-hw: ISR member node 3 of t-0 lacks offset 0"),
        "{text}"
    );
    assert!(
        text.contains("epoch-went-back: node 2 claimed t-0 in leader epoch 2"),
        "{text}"
    );
}
