//! The property the simulator rests on, checked on the real partition log: every offset below
//! `flushed_offset` survives a power crash (core's driving contract, "every offset below
//! `flushed_offset` survives a crash of the process or the machine").

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_core::batch::{self, BatchIter};
use strata_core::log::{LogConfig, PartitionLog};
use strata_core::{LeaderEpoch, Offset};

use super::*;

const EPOCH: LeaderEpoch = LeaderEpoch(1);

fn dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 3_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn flush(log: &mut PartitionLog) {
    if let Some(plan) = log.begin_flush() {
        plan.execute().expect("no faults injected");
        log.complete_flush(&plan);
    }
}

/// A batch of 1..=4 records with values that name the batch.
fn new_batch(rng: &mut StdRng, tag: usize) -> Vec<u8> {
    let n = rng.random_range(1..=4);
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("batch{tag}-rec{i}-{}", "v".repeat(rng.random_range(0..300))).into_bytes())
        .collect();
    let recs: Vec<(&[u8], Option<&[u8]>)> = values.iter().map(|v| (v.as_slice(), None)).collect();
    batch::build_batch(&recs, 1_000 + tag as i64)
}

/// Every batch from `from` to the log end, as stored (offsets stamped), following segments.
fn read_batches(log: &PartitionLog, from: Offset) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.log_end_offset() {
        let r = log
            .read(at, 1 << 20, log.log_end_offset())
            .map_err(|e| format!("read at {at} failed: {e}"))?;
        if let Some(c) = r.corrupt_at {
            return Err(format!("corrupt batch at {c}"));
        }
        if r.records.is_empty() {
            return Err(format!("nothing at {at} below the log end"));
        }
        for item in BatchIter::new(&r.records) {
            let (pos, h) = item.expect("whole batches");
            out.push(r.records[pos..pos + h.total_size()].to_vec());
            at = h.next_offset();
        }
    }
    Ok(out)
}

/// Appends `count` batches, remembering each as it is stored.
fn append(log: &mut PartitionLog, rng: &mut StdRng, count: usize, acked: &mut Vec<Vec<u8>>) {
    for _ in 0..count {
        let mut b = new_batch(rng, acked.len());
        let info = log.append(&b, EPOCH, 0).expect("append");
        batch::assign_offset(&mut b, info.first_offset, EPOCH);
        acked.push(b);
    }
}

/// One seed: four lives of a node. Each life reopens the log and checks what survived, appends
/// and flushes, maybe checkpoints, appends more without flushing (maybe half-flushing), then loses
/// power (or is killed).
fn run_seed(seed: u64) -> Result<(), String> {
    let disk = SimDisk::new(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    // Batches whose offsets are below the flushed offset, in order: they must all come back.
    let mut durable: Vec<Vec<u8>> = Vec::new();
    for life in 0..4 {
        let mut log = PartitionLog::open(disk.storage(), dir(), config(), 0)
            .map_err(|e| format!("seed {seed}, life {life}: reopen failed: {e}"))?
            .0;
        let got = read_batches(&log, Offset(0))
            .map_err(|e| format!("seed {seed}, life {life}: {e}"))?;
        if got.len() < durable.len() || got[..durable.len()] != durable[..] {
            return Err(format!(
                "seed {seed}, life {life}: flushed batches lost or changed (had {} flushed, read \
                 back {}; first difference at batch {:?})",
                durable.len(),
                got.len(),
                durable.iter().zip(&got).position(|(a, b)| a != b),
            ));
        }
        // Recovery synced whatever it kept: all of it is flushed now.
        assert_eq!(log.flushed_offset(), log.log_end_offset(), "seed {seed}");
        durable = got;

        let mut appended = Vec::new();
        let n = rng.random_range(0..25);
        append(&mut log, &mut rng, n, &mut appended);
        flush(&mut log);
        durable.append(&mut appended);
        assert_eq!(log.flushed_offset(), log.log_end_offset(), "seed {seed}");
        if rng.random_bool(0.5) {
            log.checkpoint_recovery_point().expect("checkpoint");
        }
        let n = rng.random_range(0..25);
        append(&mut log, &mut rng, n, &mut appended);
        // A flush plan begun but not completed: its syncs may or may not have run.
        if rng.random_bool(0.3)
            && let Some(plan) = log.begin_flush()
            && rng.random_bool(0.5)
        {
            plan.execute().expect("no faults");
        }
        if rng.random_bool(0.8) {
            disk.crash(&mut rng);
        } else {
            disk.crash_keep_all();
        }
        disk.check_invariants();
    }
    Ok(())
}

#[test]
fn flushed_offsets_survive_power_crashes() {
    let failures: Vec<String> = (0..300).filter_map(|seed| run_seed(seed).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of 300 seeds failed; first ones:\n{}",
        failures.len(),
        failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}
