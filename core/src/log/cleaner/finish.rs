//! [`PartitionLog::finish_clean`] and [`PartitionLog::abort_clean`]: the end of a cleaning,
//! under the log's lock. The swap happens only if every source segment is still in the log,
//! unchanged; otherwise (retention, a truncation or a failure overtook the cleaning) the
//! `.cleaned` files are deleted and the cleaning is abandoned.

use std::sync::Arc;

use crate::types::Offset;

use super::super::segment::Segment;
use super::super::{LogError, PartitionLog, io_err};
use super::checkpoint::write_cleaner_checkpoint;
use super::swap::{self, SwapGroup, SwapMarker};
use super::task::{CleanTask, TaskStats};
use super::writer::{WrittenSegment, cleaned_path, segment_paths};

/// What a finished cleaning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// The sources were gone or changed (or the task unfinished): nothing was swapped.
    pub abandoned: bool,
    /// Source segments replaced.
    pub segments_cleaned: usize,
    /// Segments that replace them.
    pub segments_written: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The dirty section this cleaning covered: `[first dirty, next first dirty)`.
    pub dirty_range: (Offset, Offset),
    /// Keys in the offset map, and the bytes of its budget they took.
    pub map_keys: usize,
    pub map_bytes: usize,
    pub stats: TaskStats,
}

impl PartitionLog {
    /// Swaps a finished cleaning's segments in, crash-safely (module docs, "Swap"), if its
    /// sources are all still there unchanged, and moves the cleaner checkpoint to the end of
    /// the dirty section it covered; else abandons it. Offsets, the producer state and the
    /// leader epoch cache are unchanged by a swap. An IO error during the swap fails the log
    /// (recovery at the next open finishes or rolls back the swap).
    pub fn finish_clean(&mut self, task: CleanTask) -> Result<CleanReport, LogError> {
        self.check_not_failed()?;
        let mut report = CleanReport {
            dirty_range: task.dirty_range(),
            map_keys: task.map.len(),
            map_bytes: task.map.used_bytes(),
            stats: task.stats(),
            ..CleanReport::default()
        };
        if !task.is_done() || !self.sources_unchanged(&task) {
            self.abort_clean(task)?;
            report.abandoned = true;
            return Ok(report);
        }
        let marker = SwapMarker {
            groups: task
                .groups
                .iter()
                .map(|g| SwapGroup {
                    sources: task.sources[g.sources.clone()]
                        .iter()
                        .map(|s| s.base_offset)
                        .collect(),
                    has_output: g.output.is_some(),
                })
                .collect(),
        };
        report.bytes_before = task.sources.iter().map(|s| s.size).sum();
        report.segments_cleaned = task.sources.len();
        let result = swap::commit(&*self.storage, &self.dir, &marker)
            .and_then(|()| self.install(&task, &marker));
        if result.is_err() {
            // Memory and disk may disagree: recovery at the next open sorts it out.
            self.failed = true;
        }
        result?;
        for g in &task.groups {
            if let Some(w) = g.output {
                report.segments_written += 1;
                report.bytes_after += w.size;
            }
        }
        // After the swap: a crash before this cleans the same range again, harmlessly.
        write_cleaner_checkpoint(&*self.storage, &self.dir, task.map.end())?;
        self.assert_invariants();
        tracing::info!(dir = %self.dir.display(), ?report, "cleaned");
        Ok(report)
    }

    /// Drops a cleaning: deletes whatever `.cleaned` files it wrote. The log is unchanged.
    pub fn abort_clean(&mut self, task: CleanTask) -> Result<(), LogError> {
        for g in &task.groups {
            let base = task.sources[g.sources.start].base_offset;
            for path in segment_paths(&self.dir, base) {
                let path = cleaned_path(&path);
                match self.storage.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove cleaned segment", &path)(e)),
                }
            }
        }
        Ok(())
    }

    /// Every source is still a sealed segment of the log, the same file at the same size, and
    /// no truncation happened since the task began.
    fn sources_unchanged(&self, task: &CleanTask) -> bool {
        let active = self.active().base_offset;
        task.truncations == self.truncations
            && task.sources.iter().all(|s| {
                self.segments.get(&s.base_offset).is_some_and(|seg| {
                    seg.base_offset != active && Arc::ptr_eq(&seg.log, &s.log) && seg.size == s.size
                })
            })
    }

    /// Replaces the sources by the outputs in memory, once the swap is durable.
    fn install(&mut self, task: &CleanTask, marker: &SwapMarker) -> Result<(), LogError> {
        for (g, sg) in task.groups.iter().zip(&marker.groups) {
            for base in &sg.sources {
                self.segments.remove(base);
            }
            if let Some(w) = g.output {
                let seg = self.open_cleaned(w)?;
                self.segments.insert(w.base_offset, seg);
            }
        }
        Ok(())
    }

    /// Opens a swapped-in segment and sets what its writer knows about it (no scan needed: it
    /// was written and fsynced by this process, indexes included).
    fn open_cleaned(&self, w: WrittenSegment) -> Result<Segment, LogError> {
        let path = &segment_paths(&self.dir, w.base_offset)[0];
        let (mut seg, sound) = Segment::open(&*self.storage, &self.dir, w.base_offset, false)
            .map_err(io_err("open cleaned segment", path))?;
        if !sound || seg.size != w.size {
            let why = format!(
                "the cleaned segment is not what the cleaning wrote ({} bytes, {} on disk)",
                w.size, seg.size
            );
            let e = std::io::Error::new(std::io::ErrorKind::InvalidData, why);
            return Err(io_err("open cleaned segment", path)(e));
        }
        seg.gaps = true;
        seg.next_offset = w.next_offset;
        seg.last_batch_offset = w.last_batch_offset;
        seg.max_timestamp = w.max_timestamp;
        seg.synced_size = w.size;
        seg.index_sync_pending = false;
        Ok(seg)
    }
}
