//! The harness can fail on real processes: with `acks=1` producers, isolating a partition's
//! leader from its followers (clients still reach it, so it keeps acknowledging) and then
//! killing it makes a follower that lacks those writes the new leader; the old leader truncates
//! them when it comes back. Taking `acks=1` acknowledgements as durable (`run`'s claim under
//! test), lost-write must report them. Judged with the simulator's lost-write checker directly.
//! Needs root (panics otherwise).

use strata_jepsen::nemesis::NemesisKind;
use strata_jepsen::run::Mode;
use strata_jepsen::testkit;
use strata_sim::checker::Analysis;
use strata_sim::checker::lost_write::{self, LostWrite};

#[test]
fn acks1_with_leader_kills_reports_lost_writes() {
    testkit::require_root();
    let options = testkit::options("acks1", 5, NemesisKind::LeaderKill, 30, 1, Mode::Assign);
    let out = options.out.clone();
    let report = testkit::run_blocking(options);
    testkit::assert_clean(&out);
    assert!(
        report.evidence.kills_confirmed >= 1,
        "no leader was killed: {:?}",
        report.evidence
    );
    assert!(
        report.liveness.is_ok(),
        "the cluster must still heal and be read to the end: {:?}",
        report.liveness
    );
    let lost = lost_write::check(&Analysis::new(&report.history));
    let real: Vec<&LostWrite> = lost
        .iter()
        .filter(|l| matches!(l, LostWrite::Missing { .. } | LostWrite::Moved { .. }))
        .collect();
    assert!(
        !real.is_empty(),
        "acks=1 with leader kills lost nothing: the harness cannot fail (output in {})",
        out.display()
    );
    assert!(!report.valid(), "a run with lost writes must not be valid");
    println!(
        "lost-write: {} acknowledged acks=1 values lost, e.g. {}",
        real.len(),
        real[0]
    );
}
