//! `segment_recovery`: an arbitrary segment (`.log`, `.index`, `.timeindex`) and optionally an
//! arbitrary `recovery-point` file in a [`MemStorage`] directory, then [`PartitionLog::open`].
//!
//! Input: a flags byte (bit 0: recompute the CRC of every whole batch in the `.log` bytes, so
//! mutations get past the checksum; bit 1: write the `recovery-point` file; bit 2: the segment's
//! base offset is a `u32` that follows; bits 4-6: `index.interval.bytes`), then the `.log`,
//! `.index` and `.timeindex` bytes as `u16`-length sections, then the `recovery-point` bytes.
//!
//! Properties: open succeeds (MemStorage has no IO errors); `log_start <= flushed <= log_end`;
//! a full read serves only whole CRC-valid batches with increasing offsets, and refuses a batch
//! as corrupt only if recovery reported corruption; an append after recovery gets the old log
//! end offset and reads back byte for byte there.

use std::sync::Arc;

use strata_core::Offset;
use strata_core::batch::{BatchIter, compute_crc};
use strata_core::log::{LogConfig, RecoveryReport};
use strata_core::storage::{MemStorage, Storage};

use crate::image::{self, Served};
use crate::input::Reader;

const INTERVALS: [u32; 8] = [1, 16, 64, 128, 256, 512, 4096, 1 << 20];

pub fn segment_recovery(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let base = if flags & 0b100 != 0 {
        i64::from(r.u32())
    } else {
        0
    };
    let mut log = r.section().to_vec();
    let index = r.section();
    let time_index = r.section();
    let recovery_point = r.rest();
    if flags & 1 != 0 {
        fix_crcs(&mut log);
    }
    let storage = MemStorage::new();
    write(&storage, &image::log_path(base), &log);
    write(&storage, &image::index_path(base), index);
    write(&storage, &image::time_index_path(base), time_index);
    if flags & 0b10 != 0 {
        write(&storage, &image::recovery_point_path(), recovery_point);
    }
    let config = LogConfig {
        index_interval_bytes: INTERVALS[usize::from(flags >> 4) & 7],
        ..LogConfig::default()
    };
    check_recovered(&storage, config, base);
}

/// Opens the log in `storage` and checks everything a reader and a producer rely on.
pub fn check_recovered(storage: &MemStorage, config: LogConfig, base: i64) {
    let (mut log, report) = image::open(Arc::new(storage.clone()), config);
    image::check_offsets(&log);
    assert_eq!(
        log.log_start_offset(),
        Offset(base),
        "one segment, at its base"
    );
    let end = log.log_end_offset();
    let resume = |at| resume_after_corrupt(storage, &report, at);
    let served = image::read_all(&log, resume);
    if let Some(last) = served.last() {
        assert!(last.last < end);
    }
    let batch = image::make_batch(7, 3, 10, 1_000);
    // A leader appends in an epoch no older than any batch of its log (the log refuses an
    // older one); the arbitrary `.log` may carry any `partitionLeaderEpoch`.
    let epoch = strata_core::LeaderEpoch(log.latest_epoch().map_or(9, |e| e.0.max(9)));
    let info = log
        .append(&batch, epoch, 0)
        .unwrap_or_else(|e| panic!("append after recovery failed: {e}"));
    assert_eq!(
        info.first_offset, end,
        "append continues at the recovered log end"
    );
    image::check_offsets(&log);
    let mut stamped = batch;
    strata_core::batch::assign_offset(&mut stamped, end, epoch);
    let read = log
        .read(end, 1, log.log_end_offset())
        .unwrap_or_else(|e| panic!("read of the appended batch failed: {e}"));
    assert_eq!(
        &read.records[..],
        &stamped[..],
        "the appended batch reads back"
    );
    let again = image::read_all(&log, resume);
    assert_eq!(
        again.last().map(|s: &Served| s.bytes.clone()),
        Some(stamped)
    );
}

/// A corrupt batch is acceptable only if recovery reported corruption; the read resumes at the
/// next batch in the (recovered) segment file.
fn resume_after_corrupt(storage: &MemStorage, report: &RecoveryReport, at: Offset) -> Offset {
    assert!(
        !report.corrupt_batches.is_empty(),
        "read at {at} hit a corrupt batch that recovery did not report: {report:?}"
    );
    let mut next: Option<Offset> = None;
    for path in storage.paths() {
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let bytes = storage
            .file(&path)
            .map(|f| f.contents())
            .unwrap_or_default();
        for (_, h) in BatchIter::new(&bytes).map_while(Result::ok) {
            if h.base_offset > at && next.is_none_or(|n| h.base_offset < n) {
                next = Some(h.base_offset);
            }
        }
    }
    next.unwrap_or_else(|| panic!("corrupt batch at {at} with nothing readable after it"))
}

/// Recomputes the CRC of every whole batch, so mutated headers and records get past it.
pub fn fix_crcs(log: &mut [u8]) {
    let spans: Vec<(usize, usize)> = BatchIter::new(log)
        .map_while(Result::ok)
        .map(|(pos, h)| (pos, h.total_size()))
        .collect();
    for (pos, size) in spans {
        let b = &mut log[pos..pos + size];
        let crc = compute_crc(b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

fn write(storage: &MemStorage, path: &std::path::Path, bytes: &[u8]) {
    let file = storage.open(path).expect("MemStorage opens any path");
    file.write_at(bytes, 0)
        .expect("MemStorage writes cannot fail");
}
