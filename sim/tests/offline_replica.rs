//! Offline replicas reach the controller (issue #11, KIP-858 per partition): a leader whose log
//! fails (fsync EIO) loses its leadership and leaves the ISR while acks=-1 produce keeps working
//! on the others; restarted, it catches up and is back in the ISR. Every fact is read from the
//! active controller's image; the history goes to the checkers.
#![cfg(madsim)]

use madsim::runtime::Runtime;
use strata_sim::harness::offline_replica::{self, SENDS_WHILE_OFFLINE, Seen};

fn run(seed: u64) -> Seen {
    // On a fresh thread, as every seeded run (see `run_on_fresh_thread`).
    #[allow(clippy::disallowed_methods)]
    std::thread::spawn(move || {
        Runtime::with_seed_and_config(seed, madsim::Config::default())
            .block_on(offline_replica::run(seed))
    })
    .join()
    .expect("simulation thread")
}

#[test]
fn offline_leader_moves_leadership_and_rejoins_after_a_restart() {
    for seed in [11, 12, 13] {
        let seen = run(seed);
        let a = seen.failed_leader;
        let ctx = format!(
            "seed {seed} (replay: cargo sim --release --test offline_replica), failed leader {a}"
        );
        assert!(seen.log_failed, "the fault failed A's log; {ctx}");

        // The report moved leadership to another ISR member and shrank the ISR.
        let p = seen
            .after_report
            .as_ref()
            .unwrap_or_else(|| panic!("the controller never moved the partition off A; {ctx}"));
        assert!(p.leader.is_some_and(|l| l != a), "{p:?}; {ctx}");
        assert!(!p.isr.contains(&a), "A left the ISR: {p:?}; {ctx}");
        assert_eq!(p.isr.len(), 2, "the other two stay in sync: {p:?}; {ctx}");
        assert!(
            seen.marked_offline,
            "the image records A's replica offline; {ctx}"
        );

        // acks=-1 kept working on the others, and A was not taken back while offline.
        assert_eq!(
            seen.acknowledged_while_offline, SENDS_WHILE_OFFLINE,
            "acks=-1 sends acknowledged without A; {ctx}"
        );
        let p = seen.after_sends.as_ref().expect("an image after the sends");
        assert!(
            p.leader != Some(a) && !p.isr.contains(&a),
            "an offline replica neither leads nor rejoins: {p:?}; {ctx}"
        );

        // Restarted, A caught up and is back in the ISR; the mark is gone.
        let p = seen
            .after_restart
            .as_ref()
            .unwrap_or_else(|| panic!("A never rejoined the ISR after its restart; {ctx}"));
        assert!(p.isr.contains(&a), "{p:?}; {ctx}");
        assert!(
            !seen.marked_after_restart,
            "re-registration cleared the mark; {ctx}"
        );

        assert!(
            seen.report.is_valid(),
            "{ctx}\n{}",
            seen.report.render(&seen.history, 20)
        );
        println!(
            "offline_replica: seed {seed} ok; leader {a} failed, then {:?}, back in {:?}",
            seen.after_report.as_ref().map(|p| (&p.leader, &p.isr)),
            seen.after_restart.as_ref().map(|p| (&p.leader, &p.isr)),
        );
    }
}
