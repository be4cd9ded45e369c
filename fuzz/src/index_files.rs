//! `index_files`: arbitrary `.index` / `.timeindex` contents next to a valid log.
//!
//! Input: a flags byte (bit 0 set: no `recovery-point` checkpoint, so recovery rescans every
//! segment), a [`Shape`] (config and batches, appended through the real log, flushed and by
//! default checkpointed), then per segment in offset order a byte saying which index files to
//! replace (bit 0 `.index`, bit 1 `.timeindex`) followed by their bytes as `u16`-length sections.
//!
//! Properties after reopening: nothing is lost or reported corrupt; a read at *every* offset
//! starts with the batch that holds it, byte for byte as a linear scan of the `.log` files finds
//! it; `offset_for_timestamp` agrees with a linear search; appends still work.

use std::sync::Arc;

use strata_core::Offset;
use strata_core::log::TimestampOffset;
use strata_core::storage::{MemStorage, Storage};

use crate::image::{self, Served, Shape};
use crate::input::Reader;

pub fn index_files(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let checkpoint = flags & 1 == 0;
    let shape = Shape::read(&mut r);
    let storage = MemStorage::new();
    let before = shape.build(&storage, checkpoint);
    for base in segment_bases(&storage) {
        let which = r.u8();
        if which & 1 != 0 {
            replace(&storage, &image::index_path(base), r.section());
        }
        if which & 2 != 0 {
            replace(&storage, &image::time_index_path(base), r.section());
        }
    }
    let (mut log, _report) = image::open(Arc::new(storage.clone()), shape.config.clone());
    image::check_offsets(&log);
    let after = image::read_all(&log, image::no_corruption);
    assert_eq!(
        after, before,
        "reopening with damaged indexes lost or changed batches"
    );
    check_every_offset(&log, &before);
    check_timestamps(&log, &before);
    let end = log.log_end_offset();
    let info = log
        .append(
            &image::make_batch(1, 2, 3, 5),
            strata_core::LeaderEpoch(2),
            0,
        )
        .unwrap_or_else(|e| panic!("append after reopening failed: {e}"));
    assert_eq!(info.first_offset, end);
}

/// Reads at every offset of the log start with the batch that holds it (the index lookup path).
pub fn check_every_offset(log: &strata_core::log::PartitionLog, batches: &[Served]) {
    let end = log.log_end_offset();
    for b in batches {
        for off in b.base.0..=b.last.0 {
            let r = log
                .read(Offset(off), 1, end)
                .unwrap_or_else(|e| panic!("read at {off} failed: {e}"));
            assert_eq!(
                &r.records[..],
                &b.bytes[..],
                "read at {off} must serve exactly the batch {}..={}",
                b.base,
                b.last
            );
        }
    }
}

/// `offset_for_timestamp` agrees with a linear search (every record of a batch built here has
/// the batch's timestamp).
pub fn check_timestamps(log: &strata_core::log::PartitionLog, batches: &[Served]) {
    let mut targets = vec![i64::MIN, -1, 0, i64::MAX];
    for b in batches {
        let ts = max_timestamp(b);
        targets.extend([ts.saturating_sub(1), ts, ts.saturating_add(1)]);
    }
    for target in targets {
        let expect = batches
            .iter()
            .find(|b| max_timestamp(b) >= target)
            .map(|b| TimestampOffset {
                offset: b.base,
                timestamp: max_timestamp(b),
            });
        let got = log
            .offset_for_timestamp(target)
            .unwrap_or_else(|e| panic!("offset_for_timestamp({target}) failed: {e}"));
        assert_eq!(got, expect, "offset_for_timestamp({target})");
    }
}

fn max_timestamp(b: &Served) -> i64 {
    strata_core::batch::BatchHeader::parse(&b.bytes).map_or(-1, |h| h.max_timestamp)
}

/// Base offsets of the segments in `storage`, ascending.
pub fn segment_bases(storage: &MemStorage) -> Vec<i64> {
    storage
        .paths()
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.strip_suffix(".log")?.parse().ok())
        .collect()
}

fn replace(storage: &MemStorage, path: &std::path::Path, bytes: &[u8]) {
    match storage.file(path) {
        Some(f) => f.replace(bytes.to_vec()),
        None => {
            let f = storage.open(path).expect("MemStorage opens any path");
            f.write_at(bytes, 0).expect("MemStorage writes cannot fail");
        }
    }
}
