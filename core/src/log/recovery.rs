//! Opening a log: finding segments, scanning what may be torn, cutting torn tails, rebuilding
//! indexes, the `recovery-point` checkpoint, and bringing the leader epoch cache in line with
//! the recovered log. The rules are in the parent module's docs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::{Storage, read_vec};
use crate::types::Offset;

use super::index::SegmentExtent;
use super::leader_epoch_cache::{self, CheckpointState, EpochEntry, LeaderEpochCache};
use super::producer_state::ProducerStateManager;
use super::segment::{Segment, index_path, log_path, parse_log_name, time_index_path};
use super::{CorruptBatch, LogConfig, LogError, PartitionLog, RecoveryReport, io_err};

const RECOVERY_POINT: &str = "recovery-point";
const RECOVERY_POINT_TMP: &str = "recovery-point.tmp";

/// What the `recovery-point` file says: `"0\n<recovery point>\n<indexes durable below>\n"`
/// (format version, then every offset below the recovery point is fsynced, then every segment
/// that ends at or below the second offset has fsynced `.index` / `.timeindex` files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub recovery_point: Offset,
    pub indexes_durable_below: Offset,
}

/// Reads the `recovery-point` file. A missing or unreadable file means nothing is known to be
/// durable; a file without the third line, that no index is.
pub fn read_checkpoint(storage: &dyn Storage, dir: &Path) -> Option<Checkpoint> {
    let names = storage.list_dir(dir).ok()?;
    if !names.iter().any(|n| n == RECOVERY_POINT) {
        return None;
    }
    let file = storage.open(&dir.join(RECOVERY_POINT)).ok()?;
    let len = file.len().ok()?;
    let raw = read_vec(&*file, 0, usize::try_from(len.min(128)).ok()?).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let offset: i64 = lines.next()?.trim().parse().ok()?;
    if offset < 0 {
        return None;
    }
    let indexes: i64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    Some(Checkpoint {
        recovery_point: Offset(offset),
        indexes_durable_below: Offset(indexes.clamp(0, offset)),
    })
}

/// Writes the `recovery-point` file atomically (temp file, sync, rename, directory sync).
pub fn write_recovery_point(
    storage: &dyn Storage,
    dir: &Path,
    checkpoint: Checkpoint,
) -> Result<(), LogError> {
    let tmp = dir.join(RECOVERY_POINT_TMP);
    let file = storage.open(&tmp).map_err(io_err("checkpoint", &tmp))?;
    let text = format!(
        "0\n{}\n{}\n",
        checkpoint.recovery_point.0, checkpoint.indexes_durable_below.0
    );
    file.set_len(0).map_err(io_err("checkpoint", &tmp))?;
    file.write_at(text.as_bytes(), 0)
        .map_err(io_err("checkpoint", &tmp))?;
    file.sync_data().map_err(io_err("checkpoint", &tmp))?;
    let dst = dir.join(RECOVERY_POINT);
    storage
        .rename(&tmp, &dst)
        .map_err(io_err("checkpoint", &dst))?;
    storage.sync_dir(dir).map_err(io_err("checkpoint", dir))
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir`. See the module docs.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        assert_valid_config(&config);
        // Segment ages come from batch timestamps after a restart, as in Kafka; `now_ms` only
        // expires producers found in a snapshot.
        storage
            .create_dir_all(&dir)
            .map_err(io_err("create log dir", &dir))?;
        // A cleaning's swap cut short by a crash is finished (committed) or rolled back before
        // the segments are listed (`cleaner::swap`).
        super::cleaner::recover_swap(&*storage, &dir)?;
        let names = storage
            .list_dir(&dir)
            .map_err(io_err("list log dir", &dir))?;
        let bases: Vec<Offset> = names.iter().filter_map(|n| parse_log_name(n)).collect();
        remove_orphans(&*storage, &dir, &names, &bases)?;
        let checkpoint = read_checkpoint(&*storage, &dir);
        let recovery_point = checkpoint.map(|c| c.recovery_point);
        let checkpointed = recovery_point.unwrap_or(Offset::ZERO);
        let indexes_durable_below = checkpoint.map_or(Offset::ZERO, |c| c.indexes_durable_below);

        let mut report = RecoveryReport {
            segments: bases.len(),
            ..Default::default()
        };
        let mut segments = BTreeMap::new();
        // Gaps are allowed in a compacted log, or one a cleaner ever swapped (its checkpoint).
        let gaps = config.cleanup_policy.compact
            || super::cleaner::read_cleaner_checkpoint(&*storage, &dir).is_some();
        if bases.is_empty() {
            let mut seg = Segment::create(&*storage, &dir, Offset::ZERO)
                .map_err(io_err("create segment", &dir))?;
            seg.gaps = gaps;
            segments.insert(Offset::ZERO, seg);
        }

        // Offsets below the recovery point were fsynced once; without a checkpoint, none are known.
        let recovery_point =
            recovery_point.unwrap_or(bases.first().copied().unwrap_or(Offset::ZERO));
        let mut cut_rest = false;
        for (i, &base) in bases.iter().enumerate() {
            let path = log_path(&dir, base);
            if cut_rest {
                for p in [
                    path.clone(),
                    index_path(&dir, base),
                    time_index_path(&dir, base),
                ] {
                    // A crash may have kept the `.log`'s creation and lost its indexes'.
                    match storage.remove_file(&p) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(io_err("remove torn segment", &p)(e));
                        }
                        _ => {}
                    }
                }
                continue;
            }
            let is_last = i + 1 == bases.len();
            let next_base = bases.get(i + 1).copied();
            let (mut seg, sound) = Segment::open(&*storage, &dir, base, is_last)
                .map_err(io_err("open segment", &path))?;
            seg.gaps = gaps;
            let may_be_unflushed = next_base.is_none_or(|n| n > recovery_point);
            // Index files are synced once, after the segment is sealed: only segments the
            // checkpoint says were past that point may keep theirs without a scan. The active
            // segment's are synced by a clean shutdown, which says so with an
            // `indexes_durable_below` above its base (`checkpoint_clean_shutdown`).
            let indexes_durable = next_base.is_some_and(|n| n <= indexes_durable_below);
            let trusted = sound
                && match next_base {
                    Some(n) => {
                        !may_be_unflushed && indexes_durable && segment_matches(&mut seg, n, true)?
                    }
                    None => {
                        base < indexes_durable_below
                            && segment_matches(&mut seg, indexes_durable_below, false)?
                    }
                };
            if !trusted && !may_be_unflushed && indexes_durable {
                tracing::warn!(dir = %dir.display(), segment = base.0, "indexes do not match the log: rebuilding");
                report.rebuilt_indexes += 1;
            } else if !sound {
                report.rebuilt_indexes += 1;
            }
            if !trusted {
                seg.offset_index
                    .clear()
                    .map_err(io_err("rebuild index", &index_path(&dir, base)))?;
                seg.time_index
                    .clear()
                    .map_err(io_err("rebuild index", &time_index_path(&dir, base)))?;
                let scan = seg
                    .scan(0, base, recovery_point, true, config.index_interval_bytes)
                    .map_err(io_err("scan segment", &path))?;
                for (position, offset) in &scan.corrupt {
                    tracing::error!(dir = %dir.display(), segment = base.0, position, offset = offset.0, "corrupt batch in fsynced data: kept, never served");
                    report.corrupt_batches.push(CorruptBatch {
                        segment: base,
                        position: *position,
                        offset: *offset,
                    });
                }
                let file_len = seg.log.len().map_err(io_err("scan segment", &path))?;
                if scan.torn {
                    let cut = file_len - scan.valid_end;
                    let lost_durable = seg.next_offset < recovery_point;
                    if lost_durable {
                        tracing::error!(dir = %dir.display(), segment = base.0, position = scan.valid_end, offset = seg.next_offset.0, bytes = cut, "damaged batch below the recovery point: cutting the segment here");
                        report.corrupt_batches.push(CorruptBatch {
                            segment: base,
                            position: scan.valid_end,
                            offset: seg.next_offset,
                        });
                    } else {
                        tracing::warn!(dir = %dir.display(), segment = base.0, position = scan.valid_end, bytes = cut, "torn tail cut");
                    }
                    report.truncated_bytes += cut;
                    let next = seg.next_offset;
                    seg.truncate(scan.valid_end, next)
                        .map_err(io_err("truncate torn tail", &path))?;
                    // Later segments can hold acknowledged data only if this tail was durable.
                    cut_rest = !lost_durable;
                } else if let Some(n) = next_base
                    && seg.next_offset != n
                    && seg.next_offset >= recovery_point
                {
                    // The segment ends cleanly but short of the next one, above the recovery
                    // point: a power loss took its unsynced tail (rolls start the next segment
                    // at the log end, and the cleaner installs only below the recovery point,
                    // so this is no gap). Nothing after that tail was acknowledged
                    // (acknowledgement waits for a flush covering every file), so the later
                    // segments go too. Below the recovery point a short segment is the
                    // cleaner's gap, kept (module docs, "Recovery").
                    tracing::warn!(dir = %dir.display(), segment = base.0, end = seg.next_offset.0, next_segment = n.0, "unflushed tail lost: removing later segments");
                    cut_rest = true;
                }
                // What a crashed process left in the page cache is not durable yet: make it so
                // before it counts as flushed (and becomes visible below the high watermark).
                // Rewrite it first: after an fsync EIO, Linux keeps the pages it failed to write
                // cached but *clean*, so a plain fsync now would succeed without writing them
                // ("fsyncgate"). Rewriting dirties them again, as a database replays its WAL.
                // A segment that ends at or below the recovery point, uncut, was fsynced whole.
                if scan.torn || seg.next_offset > recovery_point {
                    rewrite_above(&seg, recovery_point)
                        .map_err(io_err("rewrite recovered tail", &path))?;
                    seg.log
                        .sync_data()
                        .map_err(io_err("sync recovered segment", &path))?;
                }
                seg.synced_size = seg.size;
                if !is_last {
                    seg.seal()
                        .map_err(io_err("seal", &time_index_path(&dir, base)))?;
                }
            }
            // Else trusted: fully below the recovery point, soundly indexed, and checked by
            // `segment_matches` (which set its end and newest timestamp).
            segments.insert(base, seg);
        }
        let log_start_offset = *segments.keys().next().expect("at least one segment");
        // Segment files the previous process created may never have been dir-synced (it was
        // killed before its next flush), and they now count as flushed. Not those below the
        // recovery point: a segment holds offsets below it only if it existed when that
        // checkpoint was written, which synced the directory last (a truncation or a fresh
        // start below a segment lowers the checkpoint before the segment can come back).
        let fresh = bases.is_empty() || bases.iter().any(|b| *b >= recovery_point);
        if fresh || cut_rest {
            storage
                .sync_dir(&dir)
                .map_err(io_err("sync log dir", &dir))?;
        }
        let log_end_offset = segments
            .values()
            .next_back()
            .expect("at least one segment")
            .next_offset;
        let (epochs, epochs_state) = LeaderEpochCache::load(storage.clone(), dir.clone())?;
        let mut log = PartitionLog {
            epochs,
            producers: ProducerStateManager::new(config.producer_id_expiration_ms),
            storage,
            dir,
            config,
            segments,
            log_start_offset,
            // Every scanned segment was synced above; trusted ones lie below the recovery point.
            flushed_offset: log_end_offset,
            dir_generation: 0,
            dir_synced_generation: 0,
            truncations: 0,
            checkpointed,
            failed: false,
            scratch: Vec::new(),
        };
        log.recover_leader_epochs(epochs_state, recovery_point)?;
        log.load_producer_state(now_ms)?;
        log.lower_stale_recovery_point()?;
        assert_recovered(&log, &report);
        Ok((log, report))
    }

    /// If recovery cut fsynced data (damage below the recovery point, or segment files gone),
    /// the `recovery-point` file still names offsets above the log end: it comes down to the
    /// log end before anything is appended, or the next recovery would take the unsynced
    /// appends there for fsynced data (keeping a torn one as corruption, a lost tail as a gap),
    /// as `cut_to` does after a truncation.
    fn lower_stale_recovery_point(&mut self) -> Result<(), LogError> {
        if self.checkpointed <= self.log_end_offset() {
            return Ok(());
        }
        tracing::warn!(
            dir = %self.dir.display(),
            recovery_point = self.checkpointed.0,
            log_end = self.log_end_offset().0,
            "recovered log ends below the recovery point: lowering it"
        );
        write_recovery_point(&*self.storage, &self.dir, self.checkpoint())?;
        self.checkpointed = self.flushed_offset;
        Ok(())
    }

    /// Brings the leader epoch cache in line with the recovered log, as Kafka's `LogLoader` and
    /// `LogSegment.recover` do:
    /// 1. Batches that recovery may have scanned (from the segment holding the recovery point)
    ///    assign their `partitionLeaderEpoch` when it is newer than the latest entry: data that
    ///    survived a crash after a truncation lowered the cache keeps its epoch. If the checkpoint
    ///    file is missing or malformed and the log is not empty, *every* batch is walked: the
    ///    cache is rebuilt from the headers (bytes 12..16 of each batch).
    /// 2. Entries at or above the log end offset go (their data did not survive, or never
    ///    existed: a leader's entry for an epoch it never wrote to).
    /// 3. Entries below the log start offset go; the one covering it moves to it.
    ///
    /// The file is rewritten only if this changed anything (or was malformed).
    fn recover_leader_epochs(
        &mut self,
        state: CheckpointState,
        recovery_point: Offset,
    ) -> Result<(), LogError> {
        let loaded = self.epochs.entries().to_vec();
        let mut entries = loaded.clone();
        let from = match state {
            CheckpointState::Loaded => recovery_point.max(self.log_start_offset),
            CheckpointState::Missing | CheckpointState::Malformed => self.log_start_offset,
        };
        let first = self.segment_base_holding(from);
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            let path = log_path(&self.dir, seg.base_offset);
            seg.walk_headers(0, seg.base_offset, |h| {
                let epoch = h.partition_leader_epoch;
                if epoch.0 >= 0 && entries.last().is_none_or(|l| epoch > l.epoch) {
                    leader_epoch_cache::assign_entry(
                        &mut entries,
                        EpochEntry {
                            epoch,
                            start_offset: h.base_offset,
                        },
                    );
                }
            })
            .map_err(io_err("read leader epochs", &path))?;
        }
        leader_epoch_cache::truncate_from_end(&mut entries, self.log_end_offset());
        leader_epoch_cache::truncate_from_start(&mut entries, self.log_start_offset);
        let rewrite = match state {
            CheckpointState::Loaded => entries != loaded,
            CheckpointState::Missing => !entries.is_empty(),
            CheckpointState::Malformed => true,
        };
        if state == CheckpointState::Malformed {
            tracing::warn!(dir = %self.dir.display(), entries = entries.len(), "malformed leader-epoch-checkpoint: rebuilt from batch headers");
        }
        if rewrite {
            self.epochs.replace(entries)?;
        }
        Ok(())
    }
}

/// Sanity check of a segment recovery may trust without a scan (a sealed segment below the
/// recovery point with durable indexes, or the active segment after a clean shutdown), as
/// Kafka's index sanity check: walking its batch headers reaches exactly the end of the file, and
/// offsets up to `end` (a sealed segment: at or below the next segment's base offset, a gap
/// before it being the cleaner's; the active one: exactly where the checkpoint says the synced
/// indexes end), the `.timeindex` matches the headers (`Segment::walk_tail`), and both indexes
/// hold their invariants (`Index::find_violation`: sorted, inside the segment, the file what
/// memory says).
/// On success sets the segment's end, last batch and newest timestamp (and, for the active
/// segment, what appends continue from). An `.index` entry that is well-formed but points at
/// the wrong batch is caught when it is used (`Segment::walk_start` verifies each entry it
/// relies on).
fn segment_matches(seg: &mut Segment, end: Offset, sealed: bool) -> Result<bool, LogError> {
    let walk = seg
        .walk_tail(sealed)
        .map_err(io_err("check segment", &seg_path(seg)))?;
    let Some(walk) = walk else {
        return Ok(false);
    };
    let time_ok = !sealed
        || match (walk.last, seg.time_index.last()) {
            (None, _) => true,
            (Some(b), Some(e)) => {
                let entry_offset = seg.base_offset.0 + i64::from(e.relative_offset);
                e.timestamp >= b.max_timestamp && entry_offset <= b.base_offset.0
            }
            (Some(b), None) => b.max_timestamp < 0,
        };
    let end_ok = if sealed {
        walk.next_offset <= end
    } else {
        walk.next_offset == end
    };
    if !end_ok || !time_ok {
        return Ok(false);
    }
    // The indexes must hold the invariants `Segment::check_invariants` asserts, as read now
    // (in memory and in the file): a damaged one is rebuilt, never asserted on.
    let extent = SegmentExtent {
        base: seg.base_offset,
        offsets: walk.next_offset.0 - seg.base_offset.0,
        size: seg.size,
    };
    let violations = [
        seg.offset_index.find_violation(extent),
        seg.time_index.find_violation(extent),
    ];
    for violation in violations {
        if let Some(why) = violation.map_err(io_err("check segment", &seg_path(seg)))? {
            tracing::warn!(segment = seg.base_offset.0, %why, "index breaks its invariants");
            return Ok(false);
        }
    }
    seg.next_offset = walk.next_offset;
    seg.last_batch_offset = walk.last.map(|b| b.base_offset);
    seg.max_timestamp = walk.newest;
    if !sealed {
        // What `on_batch` would have left after these batches: appends go on from here.
        seg.first_batch_time_ms = walk.first.map(|h| h.max_timestamp);
        let indexed = seg.offset_index.last().map_or(0, |e| u64::from(e.position));
        seg.bytes_since_index = seg.size - indexed;
    }
    Ok(true)
}

/// The precondition of [`PartitionLog::open`] on its settings (the node validates topic configs
/// long before): every `.index` position is a `u32`, and a batch starts at most `segment.bytes`
/// into its segment (`maybe_roll`), so a segment ends below 4 GiB; expiry is not negative.
fn assert_valid_config(config: &LogConfig) {
    assert!(
        config.segment_bytes <= u64::from(u32::MAX),
        "segment.bytes {} fits the u32 positions of .index",
        config.segment_bytes
    );
    assert!(
        config.producer_id_expiration_ms >= 0,
        "producer.id.expiration.ms {} is not negative",
        config.producer_id_expiration_ms
    );
}

/// The postconditions of [`PartitionLog::open`]: the log's invariants (segments, indexes, epoch
/// cache up to the log end, producer state covering exactly the log), and what recovery
/// promises besides: everything kept is synced, the recovery point is not above the log end,
/// the epoch cache starts at or after the log start, and every gap between segments starts
/// below the recovery point (above it, a segment that ends short lost its unsynced tail, and
/// the segments after it were removed).
pub(super) fn assert_recovered(log: &PartitionLog, report: &RecoveryReport) {
    log.assert_invariants();
    let (start, end) = (log.log_start_offset, log.log_end_offset());
    assert_eq!(
        log.flushed_offset, end,
        "recovery syncs everything it keeps: flushed {} == log end {end}",
        log.flushed_offset
    );
    assert!(
        log.checkpointed <= end,
        "the recovery point {} is at or below the recovered log end {end}",
        log.checkpointed
    );
    if let Some(first) = log.epochs.entries().first() {
        assert!(
            first.start_offset >= start,
            "the first epoch entry {first:?} starts at or after the log start {start}"
        );
    }
    let mut previous_end = None;
    for seg in log.segments.values() {
        if let Some(gap) = previous_end.filter(|e| *e != seg.base_offset) {
            assert!(
                gap < log.checkpointed,
                "the gap [{gap}, {}) between segments starts below the recovery point {} \
                 (report {report:?})",
                seg.base_offset,
                log.checkpointed
            );
        }
        previous_end = Some(seg.next_offset);
    }
}

fn seg_path(seg: &Segment) -> PathBuf {
    PathBuf::from(format!("{:020}.log", seg.base_offset.0))
}

/// Writes the segment's bytes from the batch holding `recovery_point` to its end back in place,
/// in 1 MiB pieces, so the next `sync_data` writes them whatever the page cache thinks of them.
/// Only what lies above the recovery point can be unsynced, so that is all it rewrites.
fn rewrite_above(seg: &Segment, recovery_point: Offset) -> std::io::Result<()> {
    let start = match seg.position_of(recovery_point)? {
        Some(p) => p,
        None if seg.next_offset <= recovery_point => return Ok(()),
        None => 0,
    };
    let mut pos = start;
    while pos < seg.size {
        let len = (seg.size - pos).min(1 << 20) as usize;
        let chunk = crate::storage::read_vec(&*seg.log, pos, len)?;
        seg.log.write_at(&chunk, pos)?;
        pos += chunk.len().max(1) as u64;
    }
    Ok(())
}

/// Removes index files without a `.log` and leftover temporary files.
fn remove_orphans(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    bases: &[Offset],
) -> Result<(), LogError> {
    for name in names {
        let stem = name
            .strip_suffix(".index")
            .or_else(|| name.strip_suffix(".timeindex"));
        let orphan_index = stem.is_some_and(|s| {
            parse_log_name(&format!("{s}.log")).is_none_or(|b| !bases.contains(&b))
        });
        if orphan_index || name == RECOVERY_POINT_TMP {
            let p = dir.join(name);
            storage
                .remove_file(&p)
                .map_err(io_err("remove orphan", &p))?;
        }
    }
    Ok(())
}
