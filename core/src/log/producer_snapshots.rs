//! Where the idempotent-producer state ([`super::producer_state`]) lives on disk, and how it is
//! rebuilt: `<offset>.snapshot` files in the log directory, each holding the state after every
//! batch below `offset` (the byte format is in `producer_state`'s docs).
//!
//! ## When snapshots are written
//! - At every roll, at the new segment's base offset (Kafka's `UnifiedLog.roll`): a rebuild then
//!   replays at most one segment.
//! - At every recovery-point checkpoint (periodic and at clean shutdown), at the log end offset,
//!   unless one is already there; it replaces the previous checkpoint snapshot inside the active
//!   segment. After a clean shutdown, the restart replays nothing.
//!
//! - Before retention deletes segments, unless a snapshot already lies between the new log start
//!   and the log end: at the log end (otherwise the producers whose batches are all in the
//!   deleted segments would live only in memory, and be forgotten at the next restart).
//!
//! Every snapshot is made durable when written (file fsynced, then the directory), before an
//! older one is deleted: the state of producers whose batches retention deleted exists nowhere
//! else. Snapshots are written at most once per roll, per checkpoint interval and per retention
//! pass, so the fsyncs are few. A write failure is logged and the file removed; a torn or
//! missing snapshot (a crash during the write) fails its CRC or is not found, and an older one
//! (or the log start) serves instead.
//!
//! ## Invariants
//! - A snapshot at offset `o` describes the batches now in the log below `o`. So before a
//!   truncation cuts the log below a snapshot, the snapshot is deleted *durably* (directory
//!   synced): a snapshot of the replaced batches must never describe the ones appended after.
//!   Recovery deletes every snapshot above the recovered log end the same way before the log is
//!   used (a power loss can keep a snapshot and lose the log tail below it).
//! - Retention deletes snapshots below the new log start, after making sure a durable one lies
//!   at or above it (see above): the newest snapshot at or below the log end then always covers
//!   every producer the log still remembers.
//!
//! ## Rebuild
//! The newest snapshot at or below the log end that loads (corrupt ones are deleted), else an
//! empty state at the log start; then every batch header from the snapshot's offset to the log
//! end is applied as a replicated batch. Batches recovery found corrupt are skipped (they are
//! never served either); a snapshot older than the log start leaves the state covering what the
//! log still holds. Kafka does the same in `ProducerStateManager.truncateAndReload` and
//! `UnifiedLog.rebuildProducerState`.

use std::io;
use std::path::PathBuf;

use crate::storage::read_vec;
use crate::types::Offset;

use super::producer_state::{ProducerStateManager, snapshot_file_name};
use super::segment::log_path;
use super::{LogError, PartitionLog, io_err};

/// Largest snapshot read: 2^31 producers would not fit anyway; this bounds a corrupt length.
const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

/// The offset a snapshot file name stands for: `00000000000000000042.snapshot` is 42.
pub(super) fn parse_snapshot_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".snapshot")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok().map(Offset)
}

impl PartitionLog {
    fn snapshot_path(&self, offset: Offset) -> PathBuf {
        self.dir.join(snapshot_file_name(offset))
    }

    /// The offsets of every snapshot file in the directory, in increasing order.
    fn producer_snapshot_offsets(&self) -> Result<Vec<Offset>, LogError> {
        let names = self
            .storage
            .list_dir(&self.dir)
            .map_err(io_err("list producer snapshots", &self.dir))?;
        let mut offsets: Vec<Offset> = names
            .iter()
            .filter_map(|n| parse_snapshot_name(n))
            .collect();
        offsets.sort();
        Ok(offsets)
    }

    /// Writes the producer state as `<log end offset>.snapshot`, durably (file, then directory).
    /// Best effort: a failure is logged, the partial file removed, and `false` returned.
    pub(super) fn write_producer_snapshot(&mut self) -> bool {
        assert_eq!(
            self.producers.map_end_offset(),
            self.log_end_offset(),
            "a snapshot is taken of the state of the whole log"
        );
        let path = self.snapshot_path(self.producers.map_end_offset());
        let bytes = self.producers.snapshot();
        let written = self.storage.open(&path).and_then(|f| {
            f.set_len(0)?;
            f.write_at(&bytes, 0)?;
            f.sync_data()
        });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "producer state snapshot not written");
            let _ = self.storage.remove_file(&path);
            self.dir_generation += 1;
            return false;
        }
        self.sync_log_dir()
    }

    /// Syncs the log directory. A failure fails the log: the kernel reports a failed directory
    /// fsync once and may forget the changes it covered (segment creations and removals too),
    /// so a later sync that succeeds proves nothing ("fsyncgate", as for data files).
    fn sync_log_dir(&mut self) -> bool {
        match self.storage.sync_dir(&self.dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "directory fsync failed: the log refuses everything until a restart");
                self.failed = true;
                false
            }
        }
    }

    /// At a recovery-point checkpoint: a snapshot at the log end unless one is there, replacing
    /// the previous checkpoint snapshot inside the active segment. Best effort, as above.
    pub(super) fn checkpoint_producer_state(&mut self) {
        let end = self.log_end_offset();
        let active_base = self.active().base_offset;
        let offsets = match self.producer_snapshot_offsets() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "producer snapshots not listed");
                return;
            }
        };
        if offsets.contains(&end) || !self.write_producer_snapshot() {
            return;
        }
        for o in offsets.into_iter().filter(|o| *o > active_base && *o < end) {
            let path = self.snapshot_path(o);
            if let Err(e) = self.storage.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "old producer snapshot not removed");
            }
        }
    }

    /// Deletes every snapshot above `offset`, durably (the truncation invariant in the module
    /// docs). Must succeed before the log is cut.
    pub(super) fn delete_producer_snapshots_above(
        &mut self,
        offset: Offset,
    ) -> Result<(), LogError> {
        let doomed: Vec<Offset> = self
            .producer_snapshot_offsets()?
            .into_iter()
            .filter(|o| *o > offset)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        for o in doomed {
            let path = self.snapshot_path(o);
            match self.storage.remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove producer snapshot", &path)(e));
                }
                _ => {}
            }
        }
        if self.sync_log_dir() {
            Ok(())
        } else {
            Err(LogError::Failed(self.dir.clone()))
        }
    }

    /// Before retention moves the log start to `new_start`: makes sure a snapshot lies in
    /// `new_start..=log end`, writing one at the log end if none does. `false` if none could be
    /// written: retention must then wait, or the producers of the deleted segments would live
    /// only in memory.
    pub(super) fn ensure_producer_snapshot_from(&mut self, new_start: Offset) -> bool {
        let end = self.log_end_offset();
        match self.producer_snapshot_offsets() {
            Ok(offsets) if offsets.iter().any(|o| *o >= new_start && *o <= end) => true,
            Ok(_) => self.write_producer_snapshot(),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "producer snapshots not listed");
                false
            }
        }
    }

    /// Retention: deletes snapshots below the new log start. Best effort (a leftover one is
    /// never the newest at or below the log end: see [`Self::ensure_producer_snapshot_from`]).
    pub(super) fn delete_producer_snapshots_below(&mut self, offset: Offset) {
        let Ok(offsets) = self.producer_snapshot_offsets() else {
            return;
        };
        for o in offsets.into_iter().filter(|o| *o < offset) {
            let path = self.snapshot_path(o);
            if let Err(e) = self.storage.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "old producer snapshot not removed");
            } else {
                self.dir_generation += 1;
            }
        }
    }

    /// Recovery: deletes snapshots above the recovered log end (durably), then rebuilds.
    pub(super) fn load_producer_state(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.delete_producer_snapshots_above(self.log_end_offset())?;
        self.rebuild_producer_state(now_ms)
    }

    /// Replaces the producer state by the newest loadable snapshot at or below the log end (or
    /// an empty state at the log start) plus the batches after it. `now_ms` expires producers
    /// found in a snapshot (`i64::MIN`: expire none).
    pub(super) fn rebuild_producer_state(&mut self, now_ms: i64) -> Result<(), LogError> {
        let end = self.log_end_offset();
        let expiration_ms = self.config.producer_id_expiration_ms;
        let mut state = None;
        for o in self.producer_snapshot_offsets()?.into_iter().rev() {
            if o > end {
                continue;
            }
            let path = self.snapshot_path(o);
            match self.read_producer_snapshot(&path, expiration_ms, now_ms, o) {
                Ok(s) => {
                    state = Some(s);
                    break;
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "unusable producer snapshot deleted");
                    let _ = self.storage.remove_file(&path);
                }
            }
        }
        let mut state = state.unwrap_or_else(|| {
            let mut s = ProducerStateManager::new(expiration_ms);
            s.truncate_fully_and_start_at(self.log_start_offset);
            s
        });
        state.on_log_start_moved(self.log_start_offset);
        self.replay_producer_batches(&mut state)?;
        assert_eq!(
            state.map_end_offset(),
            end,
            "a rebuild replays up to the log end"
        );
        self.producers = state;
        Ok(())
    }

    fn read_producer_snapshot(
        &self,
        path: &std::path::Path,
        expiration_ms: i64,
        now_ms: i64,
        named: Offset,
    ) -> Result<ProducerStateManager, String> {
        let file = self.storage.open(path).map_err(|e| e.to_string())?;
        let len = file.len().map_err(|e| e.to_string())?;
        if len > MAX_SNAPSHOT_BYTES {
            return Err(format!("{len} bytes"));
        }
        let bytes = read_vec(&*file, 0, len as usize).map_err(|e| e.to_string())?;
        let (state, covers) = ProducerStateManager::load_snapshot(&bytes, expiration_ms, now_ms)
            .map_err(|e| e.to_string())?;
        if covers != named {
            return Err(format!("covers offset {covers}, named {named}"));
        }
        Ok(state)
    }

    /// Applies every batch from the state's map end to the log end, as replicated batches.
    fn replay_producer_batches(&self, state: &mut ProducerStateManager) -> Result<(), LogError> {
        let from = state.map_end_offset();
        let first = self.segment_base_holding(from);
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            let path = log_path(&self.dir, seg.base_offset);
            let (pos, expected) = if from > seg.base_offset {
                seg.walk_start(from)
                    .map_err(io_err("replay producer state", &path))?
            } else {
                (0, seg.base_offset)
            };
            seg.walk_headers(pos, expected, |h| state.apply_replicated(h))
                .map_err(io_err("replay producer state", &path))?;
            // Whatever the segment held (corrupt spans, a hole before the next segment), the
            // state covers it: nothing there can be served or deduplicated against.
            state.on_log_start_moved(seg.next_offset);
        }
        Ok(())
    }
}
