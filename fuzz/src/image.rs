//! Shared pieces of the log targets: the log directory and its file names, opening a log on a
//! [`MemStorage`], building valid logs with [`build_batch`], and reading a whole log back with
//! every property a reader relies on checked along the way.

use std::path::PathBuf;
use std::sync::Arc;

use strata_core::batch::{BatchIter, build_batch, validate_batch};
use strata_core::log::{LogConfig, LogError, PartitionLog, RecoveryReport};
use strata_core::storage::{MemStorage, Storage};
use strata_core::{LeaderEpoch, Offset};

use crate::input::Reader;

/// The partition directory every target uses.
pub fn dir() -> PathBuf {
    PathBuf::from("/fuzz/t-0")
}

pub fn log_path(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

pub fn index_path(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.index"))
}

pub fn time_index_path(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.timeindex"))
}

pub fn recovery_point_path() -> PathBuf {
    dir().join("recovery-point")
}

/// Opens (recovering) the log in [`dir`]. Property: `open` fails only on IO errors, and the
/// storage here has none, so it must succeed.
pub fn open(storage: Arc<dyn Storage>, config: LogConfig) -> (PartitionLog, RecoveryReport) {
    match PartitionLog::open(storage, dir(), config, 0) {
        Ok(opened) => opened,
        Err(e) => panic!("PartitionLog::open failed without any IO error: {e}"),
    }
}

/// `log_start_offset <= flushed_offset <= log_end_offset`.
pub fn check_offsets(log: &PartitionLog) {
    let (start, flushed, end) = (
        log.log_start_offset(),
        log.flushed_offset(),
        log.log_end_offset(),
    );
    assert!(
        start <= flushed && flushed <= end,
        "offsets out of order: start {start}, flushed {flushed}, end {end}"
    );
}

/// One batch as a reader got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub base: Offset,
    pub last: Offset,
    pub bytes: Vec<u8>,
}

/// Bytes asked for per read: small, so reads cross many batches and index lookups.
const READ_BYTES: usize = 700;

/// Reads every batch from the log start to the log end, as a consumer would. Checks that every
/// served batch is whole and CRC-valid, that the first batch of a read is the first one ending at
/// or after the offset asked for (the one holding it, or the next after a gap: offsets are kept,
/// gaps allowed, issue #16), that offsets strictly increase, and that no read comes back empty
/// below the log end. Density is the model's to check (`log_ops` compares every batch). A
/// corrupt batch (a `Corrupt` error or `corrupt_at`) is passed to `on_corrupt`, which returns the
/// offset to resume at or panics if it is unexplained.
pub fn read_all(log: &PartitionLog, mut on_corrupt: impl FnMut(Offset) -> Offset) -> Vec<Served> {
    let end = log.log_end_offset();
    let mut at = log.log_start_offset();
    let mut out: Vec<Served> = Vec::new();
    let mut reads = 0u32;
    while at < end {
        reads += 1;
        assert!(reads < 100_000, "full read does not terminate (at {at})");
        let r = match log.read(at, READ_BYTES, end) {
            Ok(r) => r,
            Err(LogError::Corrupt { .. }) => {
                at = resume(at, &mut on_corrupt);
                continue;
            }
            Err(e) => panic!("read at {at} (log end {end}) failed: {e}"),
        };
        if r.records.is_empty() {
            assert!(
                r.corrupt_at.is_some(),
                "read at {at} returned nothing below the log end {end}"
            );
            at = resume(at, &mut on_corrupt);
            continue;
        }
        let mut first = true;
        let mut iter = BatchIter::new(&r.records);
        for item in iter.by_ref() {
            let (pos, h) = item.unwrap_or_else(|e| panic!("read at {at} served a non-batch: {e}"));
            let raw = &r.records[pos..pos + h.total_size()];
            if let Err(e) = validate_batch(raw) {
                panic!(
                    "read at {at} served an invalid batch at offset {}: {e}",
                    h.base_offset
                );
            }
            if first {
                assert!(
                    at <= h.last_offset(),
                    "read at {at} starts with batch {}..={}, which ends before it",
                    h.base_offset,
                    h.last_offset()
                );
            } else {
                assert!(h.base_offset >= at, "batches of one read go back");
            }
            if let Some(prev) = out.last() {
                assert!(h.base_offset > prev.last, "offsets go back");
            }
            assert!(
                h.last_offset() < end,
                "served a batch past the log end {end}"
            );
            out.push(Served {
                base: h.base_offset,
                last: h.last_offset(),
                bytes: raw.to_vec(),
            });
            at = h.next_offset();
            first = false;
        }
        assert_eq!(
            iter.position(),
            r.records.len(),
            "reads return whole batches"
        );
    }
    out
}

fn resume(at: Offset, on_corrupt: &mut impl FnMut(Offset) -> Offset) -> Offset {
    let next = on_corrupt(at);
    assert!(
        next > at,
        "resuming at {next} after a corrupt batch at {at}"
    );
    next
}

/// For logs that hold no corrupt data: any corrupt batch is a failure.
pub fn no_corruption(at: Offset) -> Offset {
    panic!("a log without damaged data reported a corrupt batch at {at}")
}

/// The batches in the `.log` files of `storage`, walked byte by byte without any index: the
/// oracle that index-based reads are compared with. Checks that every batch is valid.
pub fn linear_scan(storage: &MemStorage) -> Vec<Served> {
    let mut out = Vec::new();
    for path in storage.paths() {
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let bytes = storage
            .file(&path)
            .map(|f| f.contents())
            .unwrap_or_default();
        let mut iter = BatchIter::new(&bytes);
        for item in iter.by_ref() {
            let (pos, h) = item.unwrap_or_else(|e| panic!("{}: not a batch: {e}", path.display()));
            let raw = &bytes[pos..pos + h.total_size()];
            assert!(
                validate_batch(raw).is_ok(),
                "{}: invalid batch",
                path.display()
            );
            out.push(Served {
                base: h.base_offset,
                last: h.last_offset(),
                bytes: raw.to_vec(),
            });
        }
        assert_eq!(
            iter.position(),
            bytes.len(),
            "{}: trailing bytes",
            path.display()
        );
    }
    out
}

/// A batch of `records` records with `value_len`-byte values tagged `tag`, all at `ts`.
pub fn make_batch(tag: u32, records: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            let mut v = format!("{tag}-{i}-").into_bytes();
            v.resize(v.len().max(value_len), b'x');
            v
        })
        .collect();
    let recs: Vec<(&[u8], Option<&[u8]>)> = values.iter().map(|v| (v.as_slice(), None)).collect();
    build_batch(&recs, ts)
}

/// The shape of a valid log, drawn from input bytes: how it is configured and what is appended.
#[derive(Debug, Clone)]
pub struct Shape {
    pub config: LogConfig,
    /// `(records, value length, timestamp)` per appended batch.
    pub batches: Vec<(usize, usize, i64)>,
}

impl Shape {
    /// Reads a shape: 4 config bytes, a batch count, then 3 bytes per batch.
    pub fn read(r: &mut Reader<'_>) -> Shape {
        let config = LogConfig {
            segment_bytes: 150 + u64::from(r.u8()) * 8,
            index_interval_bytes: 1 + u32::from(r.u8()),
            segment_index_bytes: 8 * (1 + u32::from(r.u8() % 32)),
            retention_ms: -1,
            ..LogConfig::default()
        };
        let _reserved = r.u8();
        let n = 1 + usize::from(r.u8() % 40);
        let batches = (0..n)
            .map(|_| {
                let records = 1 + usize::from(r.u8() % 4);
                let value_len = usize::from(r.u8() % 64);
                let ts = match r.u8() {
                    255 => -1,
                    t => 1_000 + i64::from(t) * 10,
                };
                (records, value_len, ts)
            })
            .collect();
        Shape { config, batches }
    }

    /// Appends the shape's batches to a new log in `storage`, flushes and, if `checkpoint`,
    /// writes the recovery point. Returns what a full read of the log serves.
    pub fn build(&self, storage: &MemStorage, checkpoint: bool) -> Vec<Served> {
        let (mut log, _) = open(Arc::new(storage.clone()), self.config.clone());
        for (i, (records, value_len, ts)) in self.batches.iter().enumerate() {
            let tag = u32::try_from(i).unwrap_or(u32::MAX);
            let b = make_batch(tag, *records, *value_len, *ts);
            if let Err(e) = log.append(&b, LeaderEpoch(1), 0) {
                panic!("append of a valid batch failed: {e}");
            }
        }
        if let Some(plan) = log.begin_flush() {
            plan.execute().expect("MemStorage syncs cannot fail");
            log.complete_flush(&plan);
        }
        if checkpoint {
            log.checkpoint_recovery_point()
                .expect("MemStorage writes cannot fail");
        }
        let served = read_all(&log, no_corruption);
        assert_eq!(
            served,
            linear_scan(storage),
            "reads agree with a linear scan"
        );
        served
    }
}
