//! Tests of the leader epoch cache inside the partition log (KIP-101/279): leader appends,
//! follower appends, truncation, retention, recovery (including rebuilding from batch headers)
//! and crash images taken between the checkpoint write and the data write.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::batch::{BatchIter, build_batch, compute_crc};
use crate::log::leader_epoch_cache::{LEADER_EPOCH_CHECKPOINT, UNDEFINED_EPOCH};
use crate::log::*;
use crate::storage::{MemStorage, Storage, StorageFile};
use crate::types::LeaderEpoch;

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

fn open_on(storage: Arc<dyn Storage>) -> PartitionLog {
    PartitionLog::open(storage, dir(), small_config(), 0)
        .expect("open")
        .0
}

fn open(s: &MemStorage) -> PartitionLog {
    open_on(Arc::new(s.clone()))
}

fn batch(tag: usize, n: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("b{tag}-r{i}-{}", "x".repeat(tag % 30)).into_bytes())
        .collect();
    let recs: Vec<(&[u8], Option<&[u8]>)> = values.iter().map(|v| (v.as_slice(), None)).collect();
    build_batch(&recs, 1_000 + tag as i64)
}

fn flush(log: &mut PartitionLog) {
    if let Some(plan) = log.begin_flush() {
        plan.execute().expect("flush");
        log.complete_flush(&plan);
    }
}

fn e(epoch: i32, start: i64) -> EpochEntry {
    EpochEntry::new(epoch, start)
}

/// Appends `n` two-record batches as leader of `epoch`.
fn lead(log: &mut PartitionLog, epoch: i32, n: usize) {
    for i in 0..n {
        log.append(&batch(i, 2), LeaderEpoch(epoch), 0)
            .expect("append");
    }
}

/// Every batch in `log` from `from`, as the leader would serve them to a follower.
fn fetch_all(log: &PartitionLog, from: Offset) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.log_end_offset() {
        let r = log.read(at, 100_000, log.log_end_offset()).expect("read");
        assert!(!r.records.is_empty());
        for item in BatchIter::new(&r.records) {
            at = item.expect("whole").1.next_offset();
        }
        out.extend_from_slice(&r.records);
    }
    out
}

fn checkpoint_text(s: &MemStorage) -> String {
    let f = s.file(&dir().join(LEADER_EPOCH_CHECKPOINT)).expect("file");
    String::from_utf8(f.contents()).expect("utf8")
}

#[test]
fn leader_appends_assign_each_new_epoch_at_its_first_offset() {
    let s = MemStorage::new();
    let mut log = open(&s);
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(0)),
        EpochEndOffset::UNDEFINED
    );
    lead(&mut log, 3, 5); // offsets 0..10
    lead(&mut log, 5, 5); // 10..20
    lead(&mut log, 7, 2); // 20..24
    let want = [e(3, 0), e(5, 10), e(7, 20)];
    assert_eq!(log.leader_epoch_entries(), want);
    assert_eq!(checkpoint_text(&s), "0\n3\n3 0\n5 10\n7 20\n");
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(7)));
    assert_eq!(log.epoch_start_offset(LeaderEpoch(5)), Some(Offset(10)));
    // OffsetForLeaderEpoch (KIP-101): a known epoch ends where the next starts; the latest at
    // the log end; an unknown one maps to the largest smaller epoch (KIP-279).
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(3)),
        EpochEndOffset::new(3, 10)
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(6)),
        EpochEndOffset::new(5, 20)
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(7)),
        EpochEndOffset::new(7, 24)
    );
    assert_eq!(
        log.end_offset_for_epoch(UNDEFINED_EPOCH),
        EpochEndOffset::UNDEFINED
    );
    flush(&mut log);
    drop(log);
    assert_eq!(open(&s).leader_epoch_entries(), want, "a reopen keeps them");
}

#[test]
fn a_fenced_leader_cannot_append() {
    let s = MemStorage::new();
    let mut log = open(&s);
    lead(&mut log, 5, 2);
    let err = log
        .append(&batch(9, 1), LeaderEpoch(4), 0)
        .expect_err("older epoch");
    assert!(matches!(err, LogError::StaleLeaderEpoch { .. }), "{err}");
    assert_eq!(err.error_code(), crate::ErrorCode::FENCED_LEADER_EPOCH);
    assert_eq!(log.log_end_offset(), Offset(4), "nothing written");
    assert_eq!(
        log.maybe_assign_leader_epoch(LeaderEpoch(4))
            .expect_err("older epoch")
            .error_code(),
        crate::ErrorCode::FENCED_LEADER_EPOCH
    );
}

/// Kafka's `makeLeader`: the new epoch starts at the log end before anything is appended, so the
/// previous epoch's end is known at once. The entry has no data and does not survive a restart.
#[test]
fn new_leader_assigns_its_epoch_at_the_log_end() {
    let s = MemStorage::new();
    let mut log = open(&s);
    lead(&mut log, 1, 3);
    log.maybe_assign_leader_epoch(LeaderEpoch(2))
        .expect("assign");
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(2, 6)]);
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(1)),
        EpochEndOffset::new(1, 6)
    );
    log.maybe_assign_leader_epoch(LeaderEpoch(2))
        .expect("again: no-op");
    lead(&mut log, 2, 1);
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(2, 6)]);
    log.maybe_assign_leader_epoch(LeaderEpoch(4))
        .expect("assign");
    flush(&mut log);
    drop(log);
    let log = open(&s);
    assert_eq!(
        log.leader_epoch_entries(),
        [e(1, 0), e(2, 6)],
        "recovery truncates entries at the log end"
    );
    assert_eq!(checkpoint_text(&s), "0\n2\n1 0\n2 6\n");
}

#[test]
fn truncate_to_truncates_the_cache_from_the_end() {
    let s = MemStorage::new();
    let mut log = open(&s);
    lead(&mut log, 1, 5); // 0..10
    lead(&mut log, 2, 5); // 10..20
    lead(&mut log, 3, 5); // 20..30
    flush(&mut log);
    log.truncate_to(Offset(21)).expect("truncate");
    assert_eq!(log.log_end_offset(), Offset(20), "cut at the batch start");
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(2, 10)]);
    log.truncate_to(Offset(10)).expect("truncate");
    assert_eq!(log.leader_epoch_entries(), [e(1, 0)]);
    assert_eq!(checkpoint_text(&s), "0\n1\n1 0\n");
    lead(&mut log, 4, 1);
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(4, 10)]);
    flush(&mut log);
    drop(log);
    assert_eq!(open(&s).leader_epoch_entries(), [e(1, 0), e(4, 10)]);
}

#[test]
fn retention_truncates_the_cache_from_the_start() {
    let s = MemStorage::new();
    let mut log = open(&s);
    for epoch in 1..=6 {
        lead(&mut log, epoch, 10);
    }
    flush(&mut log);
    let before = log.leader_epoch_entries().to_vec();
    assert_eq!(before.len(), 6);
    let mut config = small_config();
    config.retention_bytes = 2_500;
    log.set_config(config);
    let report = log.enforce_retention(0).expect("retention");
    assert!(report.deleted_segments > 0);
    let start = log.log_start_offset();
    let entries = log.leader_epoch_entries().to_vec();
    assert_eq!(
        entries[0].start_offset, start,
        "the first entry moved to the log start"
    );
    let covering = before
        .iter()
        .rev()
        .find(|x| x.start_offset <= start)
        .expect("an epoch covers the new start");
    assert_eq!(entries[0].epoch, covering.epoch);
    assert_eq!(&entries[1..], &before[before.len() - entries.len() + 1..]);
    drop(log);
    assert_eq!(open(&s).leader_epoch_entries(), entries);
}

/// A missing or malformed `leader-epoch-checkpoint` is rebuilt from the `partitionLeaderEpoch`
/// of every batch header, never a panic.
#[test]
fn recovery_rebuilds_the_cache_from_batch_headers() {
    let s = MemStorage::new();
    let mut log = open(&s);
    lead(&mut log, 0, 4);
    lead(&mut log, 2, 30); // several segments
    lead(&mut log, 9, 3);
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    let want = log.leader_epoch_entries().to_vec();
    assert_eq!(want, [e(0, 0), e(2, 8), e(9, 68)]);
    assert!(log.segment_count() > 2);
    drop(log);
    let path = dir().join(LEADER_EPOCH_CHECKPOINT);
    for damage in [
        "missing",
        "",
        "0\n3\n0 0\n",
        "0\n2\n5 5\n1 9\n",
        "garbage\u{0}",
    ] {
        let image = s.deep_clone();
        if damage == "missing" {
            image.remove_file(&path).expect("remove");
        } else {
            image
                .file(&path)
                .expect("file")
                .replace(damage.as_bytes().to_vec());
        }
        let log = open(&image);
        assert_eq!(log.leader_epoch_entries(), want, "{damage:?}");
        assert_eq!(
            checkpoint_text(&image),
            "0\n3\n0 0\n2 8\n9 68\n",
            "{damage:?}"
        );
    }
    // A malformed file on an empty log: rewritten empty.
    let empty = MemStorage::new();
    empty
        .open(&path)
        .expect("open")
        .write_at(b"nonsense", 0)
        .expect("write");
    let log = open(&empty);
    assert!(log.leader_epoch_entries().is_empty());
    assert_eq!(checkpoint_text(&empty), "0\n0\n");
}

/// Data above the recovery point whose epoch the checkpoint lacks (a truncation's cache write
/// became durable, its unsynced `set_len` did not) gets its epoch back from its headers.
#[test]
fn recovery_assigns_epochs_of_batches_above_the_recovery_point() {
    let s = MemStorage::new();
    let mut log = open(&s);
    lead(&mut log, 1, 3);
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint"); // recovery point 6
    lead(&mut log, 2, 3);
    flush(&mut log);
    drop(log);
    s.file(&dir().join(LEADER_EPOCH_CHECKPOINT))
        .expect("file")
        .replace(b"0\n1\n1 0\n".to_vec());
    let log = open(&s);
    assert_eq!(log.log_end_offset(), Offset(12));
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(2, 6)]);
}

/// A storage that takes a crash image (a deep copy of every file) just before the next write to
/// a `.log` file: the moment between the epoch checkpoint write and the data write.
#[derive(Debug)]
struct ImageBeforeLogWrite {
    inner: MemStorage,
    armed: Arc<AtomicBool>,
    image: Arc<Mutex<Option<MemStorage>>>,
}

#[derive(Debug)]
struct ImagingFile {
    inner: Arc<dyn StorageFile>,
    storage: MemStorage,
    armed: Arc<AtomicBool>,
    image: Arc<Mutex<Option<MemStorage>>>,
}

impl Storage for ImageBeforeLogWrite {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(path)?;
        if path.extension().is_some_and(|x| x == "log") {
            return Ok(Arc::new(ImagingFile {
                inner,
                storage: self.inner.clone(),
                armed: self.armed.clone(),
                image: self.image.clone(),
            }));
        }
        Ok(inner)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

impl StorageFile for ImagingFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.armed.swap(false, Ordering::SeqCst) {
            *self.image.lock().expect("image lock") = Some(self.storage.deep_clone());
        }
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
}

fn imaging_storage() -> (ImageBeforeLogWrite, MemStorage) {
    let inner = MemStorage::new();
    let s = ImageBeforeLogWrite {
        inner: inner.clone(),
        armed: Arc::new(AtomicBool::new(false)),
        image: Arc::new(Mutex::new(None)),
    };
    (s, inner)
}

/// Crash after the new epoch's checkpoint is durable and before its first batch is written:
/// recovery drops the entry, whose start offset is the recovered log end.
#[test]
fn crash_between_epoch_checkpoint_and_leader_append() {
    let (storage, _) = imaging_storage();
    let (armed, image) = (storage.armed.clone(), storage.image.clone());
    let mut log = open_on(Arc::new(storage));
    lead(&mut log, 1, 4);
    flush(&mut log);
    armed.store(true, Ordering::SeqCst);
    log.append(&batch(50, 3), LeaderEpoch(2), 0)
        .expect("append");
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(2, 8)]);
    let image = image.lock().expect("lock").take().expect("image taken");
    assert!(
        checkpoint_text(&image).contains("2 8"),
        "the checkpoint was written before the data"
    );
    let recovered = open(&image);
    assert_eq!(recovered.log_end_offset(), Offset(8));
    assert_eq!(recovered.leader_epoch_entries(), [e(1, 0)]);
    assert_eq!(checkpoint_text(&image), "0\n1\n1 0\n");
    assert_eq!(
        recovered.end_offset_for_epoch(LeaderEpoch(1)),
        EpochEndOffset::new(1, 8)
    );
}

/// The same crash on a follower, mid-way through a replicated append of two epochs.
#[test]
fn crash_between_epoch_checkpoint_and_follower_append() {
    let s = MemStorage::new();
    let mut leader = open(&s);
    lead(&mut leader, 1, 2);
    lead(&mut leader, 3, 2);
    lead(&mut leader, 4, 1);
    let (storage, _) = imaging_storage();
    let (armed, image) = (storage.armed.clone(), storage.image.clone());
    let mut follower = open_on(Arc::new(storage));
    armed.store(true, Ordering::SeqCst);
    follower
        .append_replicated(Bytes::from(fetch_all(&leader, Offset(0))), 0)
        .expect("append");
    assert_eq!(
        follower.leader_epoch_entries(),
        leader.leader_epoch_entries()
    );
    let image = image.lock().expect("lock").take().expect("image taken");
    assert_eq!(checkpoint_text(&image), "0\n3\n1 0\n3 4\n4 8\n");
    let recovered = open(&image);
    assert_eq!(recovered.log_end_offset(), Offset(0));
    assert!(recovered.leader_epoch_entries().is_empty());
}

#[test]
fn follower_appends_the_leaders_batches_verbatim() {
    let s = MemStorage::new();
    let mut leader = open(&s);
    lead(&mut leader, 1, 8);
    lead(&mut leader, 4, 20);
    lead(&mut leader, 6, 5);
    let f = MemStorage::new();
    let mut follower = open(&f);
    // In two fetches, the second starting at the follower's log end.
    let first = fetch_all(&leader, Offset(0));
    let cut = BatchIter::new(&first)
        .take(10)
        .map(|b| b.expect("whole").1.total_size())
        .sum::<usize>();
    let info = follower
        .append_replicated(Bytes::copy_from_slice(&first[..cut]), 0)
        .expect("append");
    assert_eq!(
        (info.first_offset, info.last_offset),
        (Offset(0), Offset(19))
    );
    assert_eq!(follower.leader_epoch_entries(), [e(1, 0), e(4, 16)]);
    follower
        .append_replicated(Bytes::copy_from_slice(&first[cut..]), 0)
        .expect("append");
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(
        follower.leader_epoch_entries(),
        leader.leader_epoch_entries()
    );
    assert_eq!(fetch_all(&follower, Offset(0)), first, "byte for byte");
    for epoch in 0..8 {
        assert_eq!(
            follower.end_offset_for_epoch(LeaderEpoch(epoch)),
            leader.end_offset_for_epoch(LeaderEpoch(epoch)),
            "epoch {epoch}"
        );
    }
    drop(follower);
    assert_eq!(
        open(&f).leader_epoch_entries(),
        leader.leader_epoch_entries()
    );
}

/// Stamps `base_offset` and `epoch` into a copy of a built batch.
fn stamped(tag: usize, n: usize, base_offset: i64, epoch: i32) -> Vec<u8> {
    let mut b = batch(tag, n);
    crate::batch::assign_offset(&mut b, Offset(base_offset), LeaderEpoch(epoch));
    b
}

/// Gaps are allowed in a compacted log (its leader's has them), going back or overlapping is
/// not.
/// Kafka refuses only an offset below the log end (`UnexpectedAppendOffsetException`) or
/// batches out of order within the fetch (`OffsetsOutOfOrderException`).
#[test]
fn follower_append_refuses_overlaps_damage_and_older_epochs() {
    let s = MemStorage::new();
    let mut log = open(&s);
    log.append_replicated(Bytes::from(stamped(0, 2, 0, 3)), 0)
        .expect("append");
    // Must start at or after the log end offset (2) and never go back.
    for (bytes, expected, got) in [
        (stamped(1, 1, 1, 3), 2, 1),
        (stamped(1, 1, 0, 3), 2, 0),
        ([stamped(1, 2, 2, 3), stamped(2, 1, 3, 3)].concat(), 4, 3),
        ([stamped(1, 1, 2, 3), stamped(2, 1, 2, 3)].concat(), 3, 2),
    ] {
        let err = log
            .append_replicated(Bytes::from(bytes), 0)
            .expect_err("goes back");
        assert_eq!(err.error_code(), crate::ErrorCode::UNKNOWN_SERVER_ERROR);
        match err {
            LogError::OffsetMismatch {
                expected: x,
                got: g,
            } => {
                assert_eq!((x, g), (Offset(expected), Offset(got)));
            }
            other => panic!("{other}"),
        }
        assert_eq!(log.log_end_offset(), Offset(2), "nothing written");
    }
    // A gap in a log that is not compacted: its leader has none, so the answer was damaged.
    let err = log
        .append_replicated(Bytes::from(stamped(1, 1, 5, 3)), 0)
        .expect_err("a gap in a dense log");
    assert!(
        matches!(err, LogError::OffsetMismatch { expected, got }
            if expected == Offset(2) && got == Offset(5)),
        "{err}"
    );
    // A compacted log takes gaps, but not more than `i32::MAX` offsets above the log end: no
    // segment could index it.
    let mut config = small_config();
    config.cleanup_policy = CleanupPolicy::COMPACT;
    log.set_config(config);
    let far = stamped(1, 1, 2 + i64::from(i32::MAX), 3);
    let err = log
        .append_replicated(Bytes::from(far), 0)
        .expect_err("too far");
    assert!(matches!(err, LogError::OffsetGapTooLarge { .. }), "{err}");
    // A damaged batch (CRC) and trailing bytes are corrupt.
    let mut bad = stamped(1, 1, 2, 3);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        log.append_replicated(Bytes::from(bad), 0)
            .expect_err("crc")
            .error_code(),
        crate::ErrorCode::CORRUPT_MESSAGE
    );
    let mut trailing = stamped(1, 1, 2, 3);
    trailing.extend_from_slice(&[0; 7]);
    assert!(log.append_replicated(Bytes::from(trailing), 0).is_err());
    // An older epoch after a newer one with data: the follower must truncate again.
    let err = log
        .append_replicated(Bytes::from(stamped(1, 1, 2, 2)), 0)
        .expect_err("older epoch");
    assert!(matches!(err, LogError::StaleLeaderEpoch { .. }), "{err}");
    // Decreasing epochs inside one fetch are refused too, and nothing of it is written.
    let two = [stamped(1, 1, 2, 5), stamped(2, 1, 3, 4)].concat();
    assert!(log.append_replicated(Bytes::from(two), 0).is_err());
    assert_eq!(log.log_end_offset(), Offset(2));
    assert_eq!(log.leader_epoch_entries(), [e(3, 0)]);
}

/// A control (transaction marker) batch from the leader is stored as is, and an entry this
/// replica assigned as a leader but never wrote to yields to the real leader's older epoch.
#[test]
fn follower_accepts_control_batches_and_replaces_an_empty_leader_entry() {
    let s = MemStorage::new();
    let mut log = open(&s);
    log.append_replicated(Bytes::from(stamped(0, 2, 0, 3)), 0)
        .expect("append");
    log.maybe_assign_leader_epoch(LeaderEpoch(7))
        .expect("was leader");
    assert_eq!(log.leader_epoch_entries(), [e(3, 0), e(7, 2)]);
    let mut control = stamped(1, 1, 2, 5);
    control[22] |= (1 << 5) | (1 << 4); // control + transactional
    let crc = compute_crc(&control);
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append_replicated(Bytes::from(control.clone()), 0)
        .expect("control batch");
    assert_eq!(log.leader_epoch_entries(), [e(3, 0), e(5, 2)]);
    let read = log.read(Offset(2), 10_000, Offset(3)).expect("read");
    assert_eq!(&read.records[..], &control[..]);
}

/// A failed data write takes back the epoch entries it assigned.
#[test]
fn failed_write_takes_back_its_epoch_entry() {
    #[derive(Debug)]
    struct FailLogWrites(MemStorage, Arc<AtomicBool>);
    #[derive(Debug)]
    struct FailingFile(Arc<dyn StorageFile>, Arc<AtomicBool>);
    impl Storage for FailLogWrites {
        fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
            let f = self.0.open(path)?;
            if path.extension().is_some_and(|x| x == "log") {
                return Ok(Arc::new(FailingFile(f, self.1.clone())));
            }
            Ok(f)
        }
        fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
            self.0.list_dir(dir)
        }
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            self.0.create_dir_all(dir)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.0.remove_file(path)
        }
        fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
            self.0.remove_dir_all(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.0.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.0.sync_dir(dir)
        }
    }
    impl StorageFile for FailingFile {
        fn len(&self) -> io::Result<u64> {
            self.0.len()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.0.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            if self.1.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected"));
            }
            self.0.write_at(buf, offset)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.0.sync_data()
        }
    }
    let inner = MemStorage::new();
    let fail = Arc::new(AtomicBool::new(false));
    let mut log = open_on(Arc::new(FailLogWrites(inner.clone(), fail.clone())));
    lead(&mut log, 1, 2);
    log.maybe_assign_leader_epoch(LeaderEpoch(2))
        .expect("leader");
    fail.store(true, Ordering::SeqCst);
    assert!(log.append(&batch(9, 1), LeaderEpoch(3), 0).is_err());
    assert_eq!(
        log.leader_epoch_entries(),
        [e(1, 0), e(2, 4)],
        "the leader's own entry survives"
    );
    assert!(
        log.append_replicated(Bytes::from(stamped(0, 1, 4, 6)), 0)
            .is_err()
    );
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(2, 4)]);
    assert_eq!(checkpoint_text(&inner), "0\n2\n1 0\n2 4\n");
    fail.store(false, Ordering::SeqCst);
    lead(&mut log, 3, 1);
    // The leader's empty entry for epoch 2 yields to epoch 3 at the same offset (Kafka's assign).
    assert_eq!(log.leader_epoch_entries(), [e(1, 0), e(3, 4)]);
}
