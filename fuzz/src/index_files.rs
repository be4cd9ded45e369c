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
    run(data, true);
}

fn run(data: &[u8], strict: bool) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let checkpoint = flags & 1 == 0;
    let shape = Shape::read(&mut r);
    let storage = MemStorage::new();
    let before = shape.build(&storage, checkpoint);
    let bases = segment_bases(&storage);
    let mut lying = false;
    for (i, &base) in bases.iter().enumerate() {
        let which = r.u8();
        // With a checkpoint at the log end, recovery trusts every sealed segment's indexes.
        let trusted = checkpoint && i + 1 < bases.len();
        if which & 1 != 0 {
            let bytes = r.section();
            lying |= trusted && lying_offset_index(bytes, base, bases.get(i + 1), &before);
            replace(&storage, &image::index_path(base), bytes);
        }
        if which & 2 != 0 {
            let bytes = r.section();
            lying |= trusted && lying_time_index(bytes, base, bases.get(i + 1), &before);
            replace(&storage, &image::time_index_path(base), bytes);
        }
    }
    if lying && !strict {
        // Known bug (see `lying_trusted_index`): only check that open and reads do not panic.
        let (log, _) = image::open(Arc::new(storage.clone()), shape.config.clone());
        for b in &before {
            let _ = log.read(b.base, 1, log.log_end_offset());
            let _ = log.offset_for_timestamp(max_timestamp(b));
        }
        return;
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

/// Open bug in strata-core: recovery trusts a sealed segment's `.index` / `.timeindex` below the
/// recovery point if its entries are sorted (and the last `.index` position is inside the log),
/// and lookups then believe every entry. An entry that does not point at the start of the batch
/// it names makes valid batches unreadable (`Corrupt`) or serves the wrong batch; a `.timeindex`
/// whose last timestamp is below the segment's newest makes `offset_for_timestamp` skip it.
/// These predicates say whether replaced index bytes lie in that way (entries that are not
/// sorted are rebuilt by recovery, so they never lie).
fn lying_offset_index(bytes: &[u8], base: i64, next: Option<&i64>, batches: &[Served]) -> bool {
    let entries: Vec<(i64, u64)> = bytes
        .chunks_exact(8)
        .map(|e| {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            (i64::from(rel), u64::from(pos))
        })
        .collect();
    if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
        return false;
    }
    let mut starts = Vec::new();
    let mut pos = 0u64;
    for b in batches.iter().filter(|b| in_segment(b, base, next)) {
        starts.push((b.base.0 - base, pos));
        pos += b.bytes.len() as u64;
    }
    if entries.last().is_some_and(|e| e.1 >= pos) {
        return false; // out of bounds: recovery rebuilds it
    }
    entries.iter().any(|e| !starts.contains(e))
}

fn lying_time_index(bytes: &[u8], base: i64, next: Option<&i64>, batches: &[Served]) -> bool {
    let entries: Vec<(i64, i64)> = bytes
        .chunks_exact(12)
        .map(|e| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            (i64::from_be_bytes(ts), base + i64::from(rel))
        })
        .collect();
    if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
        return false;
    }
    let seg: Vec<&Served> = batches
        .iter()
        .filter(|b| in_segment(b, base, next))
        .collect();
    let newest = seg.iter().map(|b| max_timestamp(b)).max().unwrap_or(-1);
    if entries.last().map_or(-1, |e| e.0) < newest {
        return true;
    }
    entries.iter().any(|&(ts, at)| {
        seg.iter()
            .filter(|b| b.base.0 <= at)
            .any(|b| max_timestamp(b) > ts)
    })
}

/// Whether batch `b` lies in the segment based at `base` (segments end where the next begins).
fn in_segment(b: &Served, base: i64, next: Option<&i64>) -> bool {
    b.base.0 >= base && next.is_none_or(|n| b.base.0 < *n)
}
