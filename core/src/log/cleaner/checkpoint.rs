//! The cleaner checkpoint: `cleaner-offset-checkpoint` in the partition directory, text
//! `"0\n<first dirty offset>\n"` (format version, then the offset where the dirty section
//! starts: every record below it was seen by a cleaning's offset map). Kafka keeps one such
//! file per log directory for all its partitions; one per partition needs no coordination.
//!
//! Written like `recovery-point`: a temporary file, fsynced, renamed over the old one, the
//! directory fsynced, so a crash leaves the old or the new value. A missing or malformed file
//! reads as "nothing cleaned yet" (the log start): harmless, the next cleaning does more work.

use std::path::Path;

use crate::storage::{Storage, read_vec};
use crate::types::Offset;

use super::super::{LogError, io_err};

pub const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";
const CLEANER_CHECKPOINT_TMP: &str = "cleaner-offset-checkpoint.tmp";

/// The first dirty offset the checkpoint names, if the file is there and well-formed.
pub fn read_cleaner_checkpoint(storage: &dyn Storage, dir: &Path) -> Option<Offset> {
    let names = storage.list_dir(dir).ok()?;
    if !names.iter().any(|n| n == CLEANER_CHECKPOINT) {
        return None;
    }
    let file = storage.open(&dir.join(CLEANER_CHECKPOINT)).ok()?;
    let len = file.len().ok()?;
    let raw = read_vec(&*file, 0, usize::try_from(len.min(64)).ok()?).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let offset: i64 = lines.next()?.trim().parse().ok()?;
    (offset >= 0 && lines.next().is_none()).then_some(Offset(offset))
}

/// Writes the checkpoint durably (temporary file, fsync, rename, directory fsync).
pub fn write_cleaner_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    first_dirty: Offset,
) -> Result<(), LogError> {
    let tmp = dir.join(CLEANER_CHECKPOINT_TMP);
    let file = storage
        .open(&tmp)
        .map_err(io_err("cleaner checkpoint", &tmp))?;
    let text = format!("0\n{}\n", first_dirty.0);
    file.set_len(0)
        .and_then(|()| file.write_at(text.as_bytes(), 0))
        .and_then(|()| file.sync_data())
        .map_err(io_err("cleaner checkpoint", &tmp))?;
    let dst = dir.join(CLEANER_CHECKPOINT);
    storage
        .rename(&tmp, &dst)
        .map_err(io_err("cleaner checkpoint", &dst))?;
    storage
        .sync_dir(dir)
        .map_err(io_err("cleaner checkpoint", dir))
}

/// Lowers the checkpoint to `log_end_offset` if it names an offset beyond it: called after a
/// truncation (Kafka's `LogCleanerManager.maybeTruncateCheckpoint`). Without it, batches
/// appended at the truncated offsets would sit below the checkpoint, in the clean section,
/// without ever entering an offset map: their older values would survive a tombstone's expiry.
pub fn truncate_cleaner_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    log_end_offset: Offset,
) -> Result<(), LogError> {
    match read_cleaner_checkpoint(storage, dir) {
        Some(o) if o > log_end_offset => write_cleaner_checkpoint(storage, dir, log_end_offset),
        _ => Ok(()),
    }
}
