//! Tests of the log cleaner: the pieces (`units`), each rule on a real log (`rules`), crashes
//! at every storage operation of a swap (`crash`, with the power-loss disk of `disk`), and the
//! issue's property test (`property`). Shared fixtures live here.

mod crash;
mod disk;
mod property;
mod rules;
mod units;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::super::{LogConfig, PartitionLog};
use super::records::{Record, decode_batch, encode_batch};
use super::{CleanReport, CleanTask};
use crate::batch::{BatchHeader, BatchIter, build_batch_with_producer};
use crate::log::CleanupPolicy;
use crate::storage::{Storage, read_vec};
use crate::types::{LeaderEpoch, Offset};

pub(super) const EPOCH: LeaderEpoch = LeaderEpoch(0);
/// A budget no test fills.
pub(super) const BIG_BUDGET: usize = 1 << 30;

pub(super) fn dir() -> PathBuf {
    PathBuf::from("/data/compacted-0")
}

/// A compacted log with small segments, cleaned as soon as anything is dirty.
pub(super) fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_000,
        index_interval_bytes: 200,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

pub(super) fn open(storage: Arc<dyn Storage>, config: LogConfig) -> PartitionLog {
    super::swap::recover_swap(&*storage, &dir()).expect("recover swap");
    PartitionLog::open(storage, dir(), config, 0)
        .expect("open")
        .0
}

/// `(key, value)`: `None` key = keyless, `None` value = tombstone.
pub(super) type Kv<'a> = (Option<&'a str>, Option<&'a str>);

/// A batch of keyed records (of producer `pid` from sequence `seq` if `pid >= 0`), with
/// timestamp `ts`, compressed with `codec`.
pub(super) fn kbatch_with(records: &[Kv], ts: i64, pid: i64, seq: i32, codec: i16) -> Vec<u8> {
    assert!(!records.is_empty());
    let template = build_batch_with_producer(&[(b"x", None)], ts, pid, 0, seq);
    let mut header = BatchHeader::parse(&template).expect("template");
    header.last_offset_delta = records.len() as i32 - 1;
    header.attributes |= codec;
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            offset: Offset(i as i64),
            timestamp: ts,
            attributes: 0,
            key: k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&header, &recs, None).expect("encode")
}

pub(super) fn kbatch(records: &[Kv], ts: i64) -> Vec<u8> {
    kbatch_with(records, ts, -1, -1, 0)
}

pub(super) fn append(log: &mut PartitionLog, records: &[Kv], ts: i64) -> Offset {
    log.append(&kbatch(records, ts), EPOCH, ts)
        .expect("append")
        .first_offset
}

/// Flushes and checkpoints, so everything appended may be cleaned (the recovery point bounds
/// the cleanable range).
pub(super) fn settle(log: &mut PartitionLog) {
    if let Some(plan) = log.begin_flush() {
        plan.execute().expect("flush");
        log.complete_flush(&plan);
    }
    log.checkpoint_recovery_point().expect("checkpoint");
}

/// Runs a whole cleaning; `None` if none was due.
pub(super) fn clean(log: &mut PartitionLog, now: i64, hw: Offset) -> Option<CleanReport> {
    clean_with(log, now, hw, BIG_BUDGET)
}

/// Runs a whole cleaning with the high watermark at the log end.
pub(super) fn clean_all(log: &mut PartitionLog, now: i64) -> Option<CleanReport> {
    let end = log.log_end_offset();
    clean(log, now, end)
}

pub(super) fn clean_with(
    log: &mut PartitionLog,
    now: i64,
    hw: Offset,
    budget: usize,
) -> Option<CleanReport> {
    let mut task = log.begin_clean(now, hw, budget).expect("begin")?;
    run(&mut task);
    Some(log.finish_clean(task).expect("finish"))
}

pub(super) fn run(task: &mut CleanTask) {
    for _ in 0..10_000 {
        if task.step().expect("step").done {
            return;
        }
    }
    panic!("a cleaning ends");
}

/// Every batch in the log's segment files, in order, as `(raw bytes, header)`; read straight
/// from the files (gaps and all).
pub(super) fn batches(log: &PartitionLog) -> Vec<(Vec<u8>, BatchHeader)> {
    let mut out = Vec::new();
    for seg in log.segments.values() {
        let raw = read_vec(&*seg.log, 0, seg.size as usize).expect("read");
        for item in BatchIter::new(&raw) {
            let (at, h) = item.expect("whole batches");
            out.push((raw[at..at + h.total_size()].to_vec(), h));
        }
    }
    out
}

/// Every record a consumer fetching from the log start gets (`PartitionLog::read`, which
/// steps over gaps), checking that each read starts at or after where the last one ended.
pub(super) fn fetch_all(log: &PartitionLog) -> Vec<Record> {
    let (mut at, end) = (log.log_start_offset(), log.log_end_offset());
    let mut out = Vec::new();
    while at < end {
        let r = log.read(at, 500, end).expect("read");
        assert!(
            r.corrupt_at.is_none() && !r.records.is_empty(),
            "a read at {at}"
        );
        for item in BatchIter::new(&r.records) {
            let (pos, h) = item.expect("whole batches");
            assert!(
                h.last_offset() >= at,
                "a read at {at} returned batch {}",
                h.base_offset
            );
            let raw = &r.records[pos..pos + h.total_size()];
            out.extend(decode_batch(raw).expect("decode").records);
            at = h.next_offset();
        }
    }
    out
}

/// Every record of the log, in order.
pub(super) fn records(log: &PartitionLog) -> Vec<Record> {
    batches(log)
        .iter()
        .flat_map(|(raw, _)| decode_batch(raw).expect("decode").records)
        .collect()
}

/// What a consumer reading from the start ends with: key -> last value (`None`: tombstone).
pub(super) fn table(records: &[Record]) -> BTreeMap<String, Option<String>> {
    let mut t = BTreeMap::new();
    for r in records {
        if let Some(k) = &r.key {
            let v = r
                .value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned());
            t.insert(String::from_utf8_lossy(k).into_owned(), v);
        }
    }
    t
}

/// `(key, value)` of every record, as strings, for readable assertions.
pub(super) fn kvs(records: &[Record]) -> Vec<(Option<String>, Option<String>)> {
    let s = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    records.iter().map(|r| (s(&r.key), s(&r.value))).collect()
}

/// Asserts offsets strictly increase across all batches and records.
pub(super) fn assert_increasing(log: &PartitionLog) {
    assert_eq!(
        fetch_all(log),
        records(log),
        "a consumer reads what the files hold"
    );
    let mut next = Offset(i64::MIN);
    for (_, h) in batches(log) {
        assert!(
            h.base_offset >= next,
            "batch {} overlaps the one before",
            h.base_offset
        );
        next = h.next_offset();
    }
    let offsets: Vec<Offset> = records(log).iter().map(|r| r.offset).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
}
