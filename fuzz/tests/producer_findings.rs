//! Findings of `producer_ops`, as deterministic scenarios on `strata-core`'s partition log. An
//! open one is `#[ignore]`d until fixed (it asserts the behaviour we want); a fixed one stays as
//! a regression test.

use std::sync::Arc;

use strata_core::batch::build_batch_with_producer;
use strata_core::log::{LogConfig, PartitionLog};
use strata_core::storage::MemStorage;
use strata_core::types::ProducerId;
use strata_core::{LeaderEpoch, Offset};
use strata_fuzz::durable::DurableStorage;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open(disk: &DurableStorage, config: LogConfig) -> PartitionLog {
    PartitionLog::open(Arc::new(disk.clone()), "/fuzz/t-0".into(), config, 1_000)
        .expect("open")
        .0
}

fn batch(pid: i64, seq: i32) -> Vec<u8> {
    let v = format!("p{pid}-s{seq}-{}", "x".repeat(60)).into_bytes();
    build_batch_with_producer(
        &[(v.as_slice(), None), (v.as_slice(), None)],
        1_000,
        pid,
        0,
        seq,
    )
}

/// Fixed. A crash tore the roll snapshots (then never fsynced); recovery rebuilt the state from
/// the log start, correctly, but wrote no snapshot back. Retention then makes one of those segments the
/// first: producer 7, whose batches all lie below the new log start, is held only in memory.
/// A restart that loses nothing (kill -9, or any reopen before the next checkpoint) forgets it,
/// and KIP-360 then takes any sequence from it — a retry of its last batch is written again.
/// (Found by `producer_ops`, whose model allows it: see `Replica::start_snapshot_missing`.)
#[test]
fn producers_below_the_log_start_survive_a_clean_restart_after_an_earlier_crash() {
    let disk = DurableStorage::new(MemStorage::new());
    let mut log = open(&disk, config());
    for seq in [0, 2, 4] {
        log.append(&batch(7, seq), LeaderEpoch(0), 1_000)
            .expect("append");
    }
    for seq in (0..12).step_by(2) {
        log.append(&batch(9, seq), LeaderEpoch(0), 1_000)
            .expect("append");
    }
    assert!(log.segment_count() >= 4);
    let plan = log.begin_flush().expect("something to flush");
    plan.execute().expect("sync");
    log.complete_flush(&plan);
    // Power loss: every unsynced byte is lost — the snapshots, none of the flushed log.
    let (image, _) = disk.crash_image(1);
    let disk = DurableStorage::new(image);
    let mut log = open(&disk, config());
    let p7 = |log: &PartitionLog| {
        log.producer_state()
            .entry(ProducerId(7))
            .map(|e| e.last_seq().0)
    };
    assert_eq!(p7(&log), Some(5), "recovery replays the whole log");
    // Retention: keep only the last segments, all of producer 9.
    let mut cfg = config();
    cfg.retention_bytes = 500;
    log.set_config(cfg.clone());
    log.enforce_retention(2_000).expect("retention");
    assert!(
        log.log_start_offset() > Offset(5),
        "producer 7's batches are gone"
    );
    assert_eq!(p7(&log), Some(5), "retention keeps producers (KAFKA-7190)");
    // A restart that loses nothing.
    drop(log);
    let mut log = open(&disk, cfg);
    assert_eq!(
        p7(&log),
        Some(5),
        "a restart without any loss keeps producer 7"
    );
    let retry = log
        .append(&batch(7, 4), LeaderEpoch(0), 2_000)
        .expect("append");
    assert!(
        retry.duplicate,
        "the retry of its last batch is a duplicate"
    );
}
