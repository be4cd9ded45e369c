//! Tests of moving the log start: [`PartitionLog::delete_segments_below`] (which segments go at
//! every kind of boundary; the log start offset, the leader epoch cache and the producer state
//! move as they do for retention and survive a restart) and
//! [`PartitionLog::truncate_fully_and_start_at`] (including a crash at every step). Retention
//! itself is tested in `tests`.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::producers::pbatch;
use super::{dir, read_all, small_config};
use crate::log::*;
use crate::storage::{MemStorage, Storage, StorageFile};
use crate::types::{LeaderEpoch, ProducerId};

fn open(s: &MemStorage) -> PartitionLog {
    PartitionLog::open(Arc::new(s.clone()), dir(), small_config(), 0)
        .expect("open")
        .0
}

/// A log of 40 two-record batches of producer 7: epoch 1 writes the first 20, epoch 2 the
/// rest. Several segments.
fn filled(s: &MemStorage) -> PartitionLog {
    let mut log = open(s);
    for i in 0..40 {
        let epoch = LeaderEpoch(if i < 20 { 1 } else { 2 });
        log.append(&pbatch(7, 0, 2 * i, 2), epoch, 0)
            .expect("append");
    }
    assert!(log.segment_count() >= 4, "several segments");
    log
}

fn bases(log: &PartitionLog) -> Vec<Offset> {
    log.segments.keys().copied().collect()
}

/// At every kind of boundary, exactly the segments that end at or below the offset go: the
/// log start becomes the base of the segment holding the offset (the active segment's when the
/// offset is at or past it), the log end does not move, and what is kept reads as before.
#[test]
fn only_whole_segments_ending_at_or_below_the_offset_go() {
    let reference = filled(&MemStorage::new());
    let b = bases(&reference);
    let end = reference.log_end_offset();
    let active = *b.last().expect("a segment");
    let cases = [
        ("zero", Offset(0)),
        ("inside the first segment", Offset(b[1].0 - 1)),
        ("the second segment's base", b[1]),
        ("just past it", b[1].next()),
        ("inside the third segment", Offset(b[2].0 + 1)),
        ("the active segment's base", active),
        ("the log end", end),
        ("beyond the log end", Offset(end.0 + 1_000)),
    ];
    for (name, offset) in cases {
        let s = MemStorage::new();
        let mut log = filled(&s);
        let before = read_all(&log, Offset(0));
        let expected_start = *b
            .iter()
            .rev()
            .find(|base| **base <= offset)
            .unwrap_or(&b[0]);
        let report = log.delete_segments_below(offset).expect("delete");
        assert_eq!(log.log_start_offset(), expected_start, "{name}");
        assert_eq!(report.log_start_offset, expected_start, "{name}");
        assert_eq!(
            report.deleted_segments,
            b.iter().filter(|base| **base < expected_start).count(),
            "{name}"
        );
        assert!(log.log_start_offset() <= offset.max(b[0]), "{name}");
        assert_eq!(log.log_end_offset(), end, "{name}: the log end stays");
        assert!(log.segment_count() >= 1, "{name}: the active segment stays");
        let kept: Vec<_> = before
            .iter()
            .copied()
            .filter(|(base, _)| *base >= expected_start)
            .collect();
        assert_eq!(read_all(&log, expected_start), kept, "{name}");
        if expected_start > Offset(0) {
            assert!(
                matches!(
                    log.read(Offset(expected_start.0 - 1), 100, end),
                    Err(LogError::OffsetOutOfRange { .. })
                ),
                "{name}: below the log start is out of range"
            );
        }
        // Idempotent: the same offset again deletes nothing.
        let again = log.delete_segments_below(offset).expect("again");
        assert_eq!(again.deleted_segments, 0, "{name}");
        assert_eq!(again.log_start_offset, expected_start, "{name}");
    }
}

/// As for retention: the epoch cache's first entry moves up to the new log start, producers
/// whose batches went stay known, and all of it — with the log start — survives a restart.
#[test]
fn the_log_start_epochs_and_producers_move_and_survive_a_restart() {
    let s = MemStorage::new();
    let mut log = filled(&s);
    let b = bases(&log);
    let epoch2_start = log
        .epoch_start_offset(LeaderEpoch(2))
        .expect("epoch 2 wrote");
    // Cut inside epoch 2: epoch 1's data goes entirely.
    let target = *b
        .iter()
        .find(|base| **base > epoch2_start)
        .expect("a segment starts inside epoch 2");
    let report = log.delete_segments_below(target).expect("delete");
    assert!(report.deleted_segments > 0);
    assert_eq!(log.log_start_offset(), target);
    let entries = log.leader_epoch_entries().to_vec();
    assert_eq!(entries, [EpochEntry::new(2, target.0)]);
    let last_seq = |log: &PartitionLog| {
        log.producer_state()
            .entry(ProducerId(7))
            .map(|e| e.last_seq().0)
    };
    assert_eq!(last_seq(&log), Some(79));
    let kept = read_all(&log, target);
    drop(log);

    let log = open(&s);
    assert_eq!(
        log.log_start_offset(),
        target,
        "the log start is the first file"
    );
    assert_eq!(log.leader_epoch_entries(), entries);
    assert_eq!(last_seq(&log), Some(79), "producer state survives");
    assert_eq!(read_all(&log, target), kept);
}

/// A failed log refuses, as every other operation does.
#[test]
fn a_failed_log_refuses() {
    let s = MemStorage::new();
    let mut log = filled(&s);
    let start = log.log_start_offset();
    log.fail();
    assert!(matches!(
        log.delete_segments_below(log.log_end_offset()),
        Err(LogError::Failed(_))
    ));
    assert_eq!(log.log_start_offset(), start);
}

/// A follower whose whole log lies below its leader's log start starts afresh there (Kafka's
/// `truncateFullyAndStartAt`): an empty log at the offset, no epochs, no producers, no
/// snapshots; it takes the leader's batches from there, and all of it survives a restart.
#[test]
fn truncate_fully_starts_an_empty_log_at_the_offset() {
    let s = MemStorage::new();
    let mut log = filled(&s);
    let end = log.log_end_offset();
    assert!(
        !log.truncate_fully_and_start_at(end).expect("at the end"),
        "nothing to do at or below the log end"
    );
    assert_eq!(log.log_start_offset(), Offset(0));

    let start = Offset(end.0 + 100);
    assert!(log.truncate_fully_and_start_at(start).expect("replace"));
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (start, start)
    );
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.flushed_offset(), start);
    assert!(log.leader_epoch_entries().is_empty());
    assert!(log.producer_state().entry(ProducerId(7)).is_none());
    assert!(
        s.list_dir(&dir())
            .expect("list")
            .iter()
            .all(|n| !n.ends_with(".snapshot")),
        "no producer snapshot describes the old log"
    );
    // The leader's batch at the new start.
    let mut b = pbatch(8, 0, 0, 2);
    crate::batch::assign_offset(&mut b, start, LeaderEpoch(5));
    log.append_replicated(bytes::Bytes::from(b), 0)
        .expect("the leader's batch");
    assert_eq!(log.leader_epoch_entries(), [EpochEntry::new(5, start.0)]);
    let kept = read_all(&log, start);
    drop(log);

    let log = open(&s);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(read_all(&log, start), kept);
    assert_eq!(log.leader_epoch_entries(), [EpochEntry::new(5, start.0)]);
    assert!(log.producer_state().entry(ProducerId(8)).is_some());
}

/// A storage that takes a crash image (a deep copy of every file) before every directory
/// operation while `armed`: creations, removals, renames, directory syncs.
#[derive(Debug)]
struct ImageEveryDirOp {
    inner: MemStorage,
    armed: AtomicBool,
    images: Mutex<Vec<MemStorage>>,
}

impl ImageEveryDirOp {
    fn image(&self) {
        if self.armed.load(Ordering::SeqCst) {
            let image = self.inner.deep_clone();
            self.images.lock().expect("images").push(image);
        }
    }
}

impl Storage for ImageEveryDirOp {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.image();
        self.inner.open(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.image();
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.image();
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.image();
        self.inner.sync_dir(dir)
    }
}

/// A crash at any step of `truncate_fully_and_start_at` leaves a log that opens and is one of:
/// a suffix of the old log (whole segments, reading as before), an empty log at 0, or the new
/// empty log — never a hole, never the old producers in the new log, and no epoch entry there
/// that names old data.
#[test]
fn a_crash_anywhere_in_truncate_fully_leaves_a_log_that_opens() {
    let inner = MemStorage::new();
    let storage = Arc::new(ImageEveryDirOp {
        inner: inner.clone(),
        armed: AtomicBool::new(false),
        images: Mutex::new(Vec::new()),
    });
    let mut log = PartitionLog::open(storage.clone(), dir(), small_config(), 0)
        .expect("open")
        .0;
    for i in 0..40 {
        log.append(&pbatch(7, 0, 2 * i, 2), LeaderEpoch(1), 0)
            .expect("append");
    }
    log.checkpoint_recovery_point().expect("checkpoint");
    let before = read_all(&log, Offset(0));
    let bases = bases(&log);
    let end = log.log_end_offset();
    let start = Offset(end.0 + 100);
    storage.armed.store(true, Ordering::SeqCst);
    log.truncate_fully_and_start_at(start).expect("replace");
    storage.armed.store(false, Ordering::SeqCst);
    let images = std::mem::take(&mut *storage.images.lock().expect("images"));
    assert!(images.len() > 5, "{} crash points", images.len());
    for (i, image) in images.into_iter().chain([inner]).enumerate() {
        let log = open(&image);
        let first = log.log_start_offset();
        if first == start {
            assert_eq!(log.log_end_offset(), start, "image {i}: the new log");
            // A crash before the epoch checkpoint is rewritten: recovery moves the old epoch's
            // entry up to the log start, naming no data (as after retention).
            assert!(
                log.leader_epoch_entries()
                    .iter()
                    .all(|e| e.start_offset == start),
                "image {i}: {:?}",
                log.leader_epoch_entries()
            );
            assert!(
                log.producer_state().entry(ProducerId(7)).is_none(),
                "image {i}"
            );
        } else if log.log_end_offset() == Offset(0) {
            // Every old segment gone, the new one not yet created.
        } else {
            assert!(
                bases.contains(&first),
                "image {i}: starts at an old segment"
            );
            assert_eq!(log.log_end_offset(), end, "image {i}: the old log's end");
            let kept: Vec<_> = before
                .iter()
                .copied()
                .filter(|(b, _)| *b >= first)
                .collect();
            assert_eq!(
                read_all(&log, first),
                kept,
                "image {i}: a suffix of the old log"
            );
        }
    }
}
