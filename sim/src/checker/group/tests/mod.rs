//! All group checkers together: a good history with rebalances, racing commits and a refused
//! zombie passes every one, and the same history with one anomaly of each kind added is reported
//! once per kind.

use super::testkit::{Builder, read};
use super::*;

/// Group `g` over `t-0` and `t-1` through three generations.
fn good() -> Builder {
    let mut b = Builder::new();
    b.subscribe("g", &[("t", 0), ("t", 1)]);
    b.fetched(9, "g", &[(("t", 0), None), (("t", 1), None)]);
    // Generation 1: a and c.
    b.start(3);
    b.joined(1, "g", "a", 1, &[("t", 0)]);
    b.joined(3, "g", "c", 1, &[("t", 1)]);
    b.commit_ok(1, "g", "a", 1, &[("t", 0, 10)], 1);
    b.commit_ok(3, "g", "c", 1, &[("t", 1, 20)], 2);
    b.fetched(9, "g", &[(("t", 0), read(10, 1)), (("t", 1), read(20, 2))]);
    // c stalls; b joins; generation 2 gives c's partition to b. A commit of c racing the
    // rebalance may land either way: here it is accepted.
    b.start(3);
    b.start(2);
    b.start(1);
    b.commit_ok(3, "g", "c", 1, &[("t", 1, 21)], 3);
    b.joined(2, "g", "b", 2, &[("t", 1)]);
    b.joined(1, "g", "a", 2, &[("t", 0)]);
    // c, a zombie of generation 1 now, is refused; its offset is never read.
    b.commit_refused(3, "g", "c", 1, &[("t", 1, 22)], 4);
    // a and b commit concurrently (b commits t-0 too: Kafka checks no ownership). The read
    // returns the one that completed first: b's may have taken effect first.
    b.start(1);
    b.start(2);
    b.commit_ok(1, "g", "a", 2, &[("t", 0, 11)], 5);
    b.commit_ok(2, "g", "b", 2, &[("t", 0, 12), ("t", 1, 23)], 6);
    b.fetched(9, "g", &[(("t", 0), read(11, 5)), (("t", 1), read(23, 6))]);
    // Generation 3 swaps the partitions; a timed-out commit of generation 2 may still land.
    b.commit_info(2, "g", "b", 2, &[("t", 1, 24)], 7);
    b.joined(1, "g", "a", 3, &[("t", 1)]);
    b.joined(2, "g", "b", 3, &[("t", 0)]);
    b.commit_ok(1, "g", "a", 3, &[("t", 1, 25)], 8);
    b.commit_ok(2, "g", "b", 3, &[("t", 0, 13)], 9);
    b.fetched(9, "g", &[(("t", 0), read(13, 9)), (("t", 1), read(25, 8))]);
    b.described(
        9,
        "g",
        "Stable",
        3,
        &[("a", &[("t", 1)]), ("b", &[("t", 0)])],
    );
    b
}

#[test]
fn the_good_history_passes_every_checker() {
    let b = good();
    let report = check_all(&b.history);
    assert!(report.is_valid(), "{}", report.render(&b.history));
    assert_eq!(
        report.render(&b.history),
        "group history valid: no anomalies\n"
    );
}

/// [`good`] plus one anomaly of each kind, in this order.
fn bad() -> Builder {
    let mut b = good();
    // group-split-ownership: d is told a's partition in generation 3.
    b.joined(5, "g", "d", 3, &[("t", 1)]);
    // group-split-assignment: a is told another assignment for generation 1.
    b.joined(1, "g", "a", 1, &[]);
    // group-lost-commit: t-0 has acknowledged commits.
    b.fetched(9, "g", &[(("t", 0), None)]);
    // group-stale-commit: tag 6 precedes the acknowledged tag 8 on t-1.
    b.fetched(9, "g", &[(("t", 1), read(23, 6))]);
    // group-unknown-commit: nobody committed tag 12345.
    b.fetched(9, "g", &[(("t", 0), read(999, 12345))]);
    // group-fenced-commit-accepted: the zombie c is acknowledged for generation 1.
    b.commit_ok(3, "g", "c", 1, &[("t", 0, 50)], 50);
    // group-fenced-commit-written: the zombie's refused commit is read.
    b.commit_refused(3, "g", "c", 1, &[("t", 1, 60)], 60);
    b.fetched(9, "g", &[(("t", 1), read(60, 60))]);
    // group-not-stable: the last final describe failed.
    b.final_describe(9, "g", GroupOutcome::Fail(15));
    b
}

#[test]
fn check_all_runs_every_checker() {
    let b = bad();
    let report = check_all(&b.history);
    let counts: Vec<(&str, usize)> = report.counts().into_iter().collect();
    assert_eq!(
        counts,
        vec![
            ("group-fenced-commit-accepted", 1),
            ("group-fenced-commit-written", 1),
            ("group-lost-commit", 1),
            ("group-not-stable", 1),
            ("group-split-assignment", 1),
            ("group-split-ownership", 1),
            ("group-stale-commit", 1),
            ("group-unknown-commit", 1),
        ],
        "{}",
        report.render(&b.history)
    );
    assert!(!report.is_valid());
    assert_eq!(report.named("group-lost-commit").len(), 1);
}

#[test]
fn render_prints_each_anomaly_then_the_ops_it_cites() {
    let b = bad();
    let report = check_all(&b.history);
    let text = report.render(&b.history);
    assert!(
        text.starts_with(
            "group history INVALID: group-fenced-commit-accepted=1 group-fenced-commit-written=1 \
             group-lost-commit=1 group-not-stable=1 group-split-assignment=1 \
             group-split-ownership=1 group-stale-commit=1 group-unknown-commit=1\n"
        ),
        "{text}"
    );
    let lost = report.named("group-lost-commit")[0];
    let cited = b.history.render(&lost.ops());
    let mut expected = format!("\n{lost}\n");
    for line in cited.lines() {
        expected.push_str(&format!("    {line}\n"));
    }
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains("group-not-stable: group g (final describe g#"),
        "{text}"
    );
}

#[test]
fn render_shows_ten_anomalies_of_a_name_and_counts_the_rest() {
    let mut b = Builder::new();
    b.commit_ok(1, "g", "a", 1, &[("t", 0, 10)], 1);
    for _ in 0..12 {
        b.fetched(9, "g", &[(("t", 0), None)]);
    }
    let report = check_all(&b.history);
    let text = report.render(&b.history);
    assert!(
        text.starts_with("group history INVALID: group-lost-commit=12\n"),
        "{text}"
    );
    assert_eq!(text.matches("\ngroup-lost-commit: ").count(), 10, "{text}");
    assert!(
        text.ends_with("\n... and 2 more group-lost-commit\n"),
        "{text}"
    );
}
