//! Seed inputs: small, valid (or meaningfully damaged) inputs for every target, so a fuzzer
//! starts from data that reaches deep into the parsers. Written to `corpus/` by the ignored test
//! `write_seeds` in `tests/corpus.rs`.

use std::sync::Arc;

use strata_core::batch::{build_batch, build_batch_with_producer};
use strata_core::log::LogConfig;
use strata_core::storage::MemStorage;

use crate::image::{self, make_batch};
use crate::input::Writer;
use crate::log_ops as ops;

/// `(target, file name, bytes)` for every seed.
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, bytes) in batch_validate() {
        out.push(("batch_validate", name.to_string(), bytes));
    }
    for (name, bytes) in segment_recovery() {
        out.push(("segment_recovery", name.to_string(), bytes));
    }
    for (name, bytes) in index_files() {
        out.push(("index_files", name.to_string(), bytes));
    }
    for (name, bytes) in checkpoint_file() {
        out.push(("checkpoint_file", name.to_string(), bytes));
    }
    for (i, bytes) in log_ops_seeds().into_iter().enumerate() {
        out.push(("log_ops", format!("seed-ops-{i}"), bytes));
    }
    for (name, bytes) in crate::dispatch::seeds() {
        out.push(("dispatch", name, bytes));
    }
    for (name, bytes) in crate::record_codec::seeds() {
        out.push(("record_codec", name, bytes));
    }
    for (name, bytes) in crate::rpc_decode::seeds() {
        out.push(("rpc_decode", name, bytes));
    }
    for (name, bytes) in crate::rpc_roundtrip::seeds() {
        out.push(("rpc_roundtrip", name, bytes));
    }
    for (name, bytes) in crate::quorum_step::seeds() {
        out.push(("quorum_step", name, bytes));
    }
    for (name, bytes) in crate::controller_ops::seeds() {
        out.push(("controller_ops", name, bytes));
    }
    for (i, bytes) in producer_ops_seeds().into_iter().enumerate() {
        out.push(("producer_ops", format!("seed-ops-{i}"), bytes));
    }
    for (name, bytes) in crate::producer_snapshot::seeds() {
        out.push(("producer_snapshot", name, bytes));
    }
    for (name, bytes) in crate::group_scenario::seeds() {
        out.push(("group_coordinator", name, bytes));
    }
    for (name, bytes) in crate::group_records::seeds() {
        out.push(("group_records", name, bytes));
    }
    for (name, bytes) in crate::log_cleaner_seeds::seeds() {
        out.push(("log_cleaner", name, bytes));
    }
    out
}

fn batch_validate() -> Vec<(&'static str, Vec<u8>)> {
    let one = build_batch(&[(b"v1", Some(b"k1")), (b"v2", None)], 1_700_000_000_000);
    let mut two = one.clone();
    two.extend_from_slice(&build_batch_with_producer(&[(b"x", None)], 5, 42, 1, 7));
    let mut torn = two.clone();
    torn.truncate(two.len() - 3);
    vec![
        ("seed-one-batch", one),
        ("seed-two-batches", two),
        ("seed-torn", torn),
    ]
}

/// A real segment (log and indexes) of `n` small batches, written by the partition log.
fn segment(n: usize, interval: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let storage = MemStorage::new();
    let config = LogConfig {
        index_interval_bytes: interval,
        ..LogConfig::default()
    };
    let (mut log, _) = image::open(Arc::new(storage.clone()), config);
    for i in 0..n {
        let b = make_batch(i as u32, 1 + i % 3, 8, 1_000 + i as i64);
        log.append(&b, strata_core::LeaderEpoch(1), 0)
            .expect("valid append");
    }
    log.roll().expect("roll seals the segment's indexes");
    let read = |p: std::path::PathBuf| storage.file(&p).map(|f| f.contents()).unwrap_or_default();
    (
        read(image::log_path(0)),
        read(image::index_path(0)),
        read(image::time_index_path(0)),
    )
}

fn segment_recovery() -> Vec<(&'static str, Vec<u8>)> {
    let (log, index, time_index) = segment(5, 64);
    let input = |flags: u8, log: &[u8], rp: &[u8]| {
        Writer::default()
            .u8(flags)
            .section(log)
            .section(&index)
            .section(&time_index)
            .raw(rp)
            .out
    };
    let first = strata_core::batch::BatchHeader::parse(&log).map_or(0, |h| h.total_size());
    let mut corrupt = log.clone();
    corrupt[first + 70] ^= 0x10;
    let torn = &log[..log.len() - 7];
    let based = Writer::default()
        .u8(0b0001_0101)
        .u32(1_000)
        .section(&log)
        .section(&[])
        .section(&[])
        .out;
    vec![
        ("seed-valid", input(0b0011_0000, &log, b"")),
        ("seed-valid-fixcrc-rp", input(0b0011_0011, &log, b"0\n4\n")),
        ("seed-torn-tail", input(0b0010_0010, torn, b"0\n2\n")),
        (
            "seed-corrupt-below-rp",
            input(0b0010_0010, &corrupt, b"0\n99\n"),
        ),
        ("seed-base-1000-fixcrc", based),
    ]
}

/// A shape: config bytes (segment, interval, index entries, reserved), then batches.
fn shape(batches: &[(u8, u8, u8)]) -> Writer {
    let mut w = Writer::default()
        .u8(2)
        .u8(60)
        .u8(7)
        .u8(0)
        .u8(batches.len() as u8 - 1);
    for &(records, value_len, ts) in batches {
        w = w.u8(records).u8(value_len).u8(ts);
    }
    w
}

fn some_batches() -> Vec<(u8, u8, u8)> {
    (0..14u8)
        .map(|i| (i % 4, 10 + i * 3, i * 9 % 200))
        .collect()
}

fn index_files() -> Vec<(&'static str, Vec<u8>)> {
    let b = some_batches();
    let keep = Writer::default().u8(0).raw(&shape(&b).out).out;
    let garbage = Writer::default()
        .u8(0)
        .raw(&shape(&b).out)
        .u8(3)
        .section(&[0xff; 24])
        .section(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0])
        .out;
    vec![("seed-keep", keep), ("seed-garbage-first", garbage)]
}

fn checkpoint_file() -> Vec<(&'static str, Vec<u8>)> {
    let b = some_batches();
    let with = |flags: u8, rp: &[u8]| Writer::default().u8(flags).raw(&shape(&b).out).raw(rp).out;
    vec![
        ("seed-zero", with(1, b"0\n0\n")),
        ("seed-mid", with(1, b"0\n11\n")),
        ("seed-beyond", with(1, b"0\n9223372036854775807\n")),
        ("seed-bad-version", with(0, b"1\n5\n")),
        ("seed-removed", with(3, b"")),
    ]
}

/// Inputs for `log_ops` that decode into long, varied operation sequences: drawn from a fixed
/// pseudo-random stream and kept if they use most operation kinds.
fn log_ops_seeds() -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut picked = Vec::new();
    for _ in 0..20_000 {
        if picked.len() == 4 {
            break;
        }
        let bytes: Vec<u8> = (0..600)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let Some(input) = ops::Input::decode(&bytes) else {
            continue;
        };
        let ops = &input.ops[..input.ops.len().min(ops::MAX_OPS)];
        let mut kinds: Vec<u8> = ops.iter().map(kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let appends = ops.iter().filter(|o| kind(o) == 0).count();
        if kinds.len() >= 10 && appends >= 6 && ops.iter().any(|o| kind(o) == 9) {
            picked.push(bytes);
        }
    }
    picked
}

fn kind(op: &ops::Op) -> u8 {
    use ops::Op::*;
    match op {
        Append { .. } => 0,
        BeginFlush => 1,
        ExecuteFlush => 2,
        CompleteFlush => 3,
        Flush => 4,
        Roll => 5,
        TruncateTo { .. } => 6,
        Retention { .. } => 7,
        Checkpoint => 8,
        Crash { .. } => 9,
        Reopen => 10,
        Tick { .. } => 11,
        Probe { .. } => 12,
    }
}

/// Inputs for `producer_ops`, drawn like `log_ops_seeds`: kept if they use most operation kinds
/// and most sequence choices, with a leader change, a crash and a retention pass.
fn producer_ops_seeds() -> Vec<Vec<u8>> {
    use crate::producer_ops::{Choice, Input, MAX_OPS, Op};
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut picked = Vec::new();
    for _ in 0..50_000 {
        if picked.len() == 4 {
            break;
        }
        let bytes: Vec<u8> = (0..700)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let Some(input) = Input::decode(&bytes) else {
            continue;
        };
        let ops = &input.ops[..input.ops.len().min(MAX_OPS)];
        let kind = |op: &Op| match op {
            Op::Produce(_) => 0u8,
            Op::Replicate { .. } => 1,
            Op::LeaderChange => 2,
            Op::TruncateFollower { .. } => 3,
            Op::Flush(_) => 4,
            Op::Roll(_) => 5,
            Op::Checkpoint(_) => 6,
            Op::Retention { .. } => 7,
            Op::Expire(_) => 8,
            Op::Tick { .. } | Op::TickTo { .. } => 9,
            Op::Crash { .. } => 10,
            Op::Reopen(_) => 11,
        };
        let mut kinds: Vec<u8> = ops.iter().map(kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let mut choices: Vec<u8> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Produce(specs) => Some(specs),
                _ => None,
            })
            .flatten()
            .map(|s| match s.choice {
                Choice::Next => 0u8,
                Choice::ClientNext => 1,
                Choice::Retry(_) => 2,
                Choice::Gap(_) => 3,
                Choice::NewEpoch => 4,
                Choice::NewEpochAt(_) => 5,
                Choice::OldEpoch => 6,
                Choice::NearWrap(_) => 7,
                Choice::NoProducer => 8,
            })
            .collect();
        choices.sort_unstable();
        choices.dedup();
        let has = |k: u8| kinds.contains(&k);
        if kinds.len() >= 10 && choices.len() >= 7 && has(2) && has(7) && has(10) {
            picked.push(bytes);
        }
    }
    picked
}
