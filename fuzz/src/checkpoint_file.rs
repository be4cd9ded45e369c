//! `checkpoint_file`: an arbitrary `recovery-point` file next to a valid log.
//!
//! Input: a flags byte (bit 0: the log was checkpointed before the file is replaced; bit 1: the
//! file is removed instead of replaced), a [`Shape`], then the file's bytes (the rest).
//!
//! Properties: open succeeds, recovery cuts and reports nothing, every batch reads back at the
//! same offsets with the same bytes (a read at every offset, too), and appends still work.

use std::sync::Arc;

use strata_core::storage::{MemStorage, Storage};

use crate::image::{self, Shape};
use crate::input::Reader;

pub fn checkpoint_file(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let shape = Shape::read(&mut r);
    let contents = r.rest();
    let storage = MemStorage::new();
    let before = shape.build(&storage, flags & 1 != 0);
    let path = image::recovery_point_path();
    if flags & 2 != 0 {
        let _ = storage.remove_file(&path);
    } else {
        let f = storage.open(&path).expect("MemStorage opens any path");
        f.set_len(0).expect("MemStorage writes cannot fail");
        f.write_at(contents, 0)
            .expect("MemStorage writes cannot fail");
    }
    let (mut log, report) = image::open(Arc::new(storage.clone()), shape.config.clone());
    image::check_offsets(&log);
    assert_eq!(
        report.truncated_bytes, 0,
        "nothing to cut in a valid log: {report:?}"
    );
    assert!(
        report.corrupt_batches.is_empty(),
        "no corruption in a valid log: {report:?}"
    );
    // The indexes are the ones the log wrote: whatever the checkpoint says, none is refused.
    assert_eq!(
        report.rebuilt_indexes, 0,
        "intact indexes were rebuilt: {report:?}"
    );
    let after = image::read_all(&log, image::no_corruption);
    assert_eq!(
        after, before,
        "a recovery-point file changed what the log holds"
    );
    crate::index_files::check_every_offset(&log, &before);
    let end = log.log_end_offset();
    let info = log
        .append(
            &image::make_batch(3, 1, 4, 9),
            strata_core::LeaderEpoch(2),
            0,
        )
        .unwrap_or_else(|e| panic!("append after reopening failed: {e}"));
    assert_eq!(info.first_offset, end);
}
