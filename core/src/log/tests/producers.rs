//! Tests of idempotent producers inside the partition log (KIP-98): deduplication of leader
//! appends, the state followers build from replicated batches, rebuilds after truncation, and
//! the snapshots recovery starts from (written at roll and checkpoint, deleted above a cut or
//! above the recovered log end, skipped when corrupt). The rules themselves are tested in
//! `tests/producer_state.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{BatchIter, build_batch_with_producer};
use crate::log::producer_snapshots::parse_snapshot_name;
use crate::log::*;
use crate::storage::{MemStorage, Storage};
use crate::types::{LeaderEpoch, ProducerEpoch, ProducerId};

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

fn open(s: &MemStorage) -> PartitionLog {
    PartitionLog::open(Arc::new(s.clone()), dir(), config(), 0)
        .expect("open")
        .0
}

/// A batch of `n` records of producer `pid` (epoch `epoch`) starting at sequence `seq`.
pub(super) fn pbatch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("p{pid}-e{epoch}-s{}-{}", seq + i as i32, "x".repeat(40)).into_bytes())
        .collect();
    let recs: Vec<(&[u8], Option<&[u8]>)> = values.iter().map(|v| (v.as_slice(), None)).collect();
    build_batch_with_producer(&recs, 1_000, pid, epoch, seq)
}

fn append(log: &mut PartitionLog, b: &[u8]) -> Result<AppendInfo, LogError> {
    log.append(b, LeaderEpoch(0), 0)
}

/// Appends batches of 2 records for producer 7, sequences `from..from + 2n`.
fn produce(log: &mut PartitionLog, from: i32, n: usize) -> Vec<AppendInfo> {
    (0..n)
        .map(|i| append(log, &pbatch(7, 0, from + 2 * i as i32, 2)).expect("append"))
        .collect()
}

fn snapshots(s: &MemStorage) -> Vec<Offset> {
    let mut v: Vec<Offset> = s
        .list_dir(&dir())
        .expect("list")
        .iter()
        .filter_map(|n| parse_snapshot_name(n))
        .collect();
    v.sort();
    v
}

fn last_seq(log: &PartitionLog, pid: i64) -> Option<i32> {
    log.producer_state()
        .entry(ProducerId(pid))
        .map(|e| e.last_seq().0)
}

fn all_batches(log: &PartitionLog) -> Bytes {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let r = log.read(at, 1 << 20, log.log_end_offset()).expect("read");
        for item in BatchIter::new(&r.records) {
            at = item.expect("whole").1.next_offset();
        }
        out.extend_from_slice(&r.records);
    }
    Bytes::from(out)
}

#[test]
fn retry_of_a_cached_batch_is_answered_with_its_offsets_and_not_written() {
    let s = MemStorage::new();
    let mut log = open(&s);
    let infos = produce(&mut log, 0, 5);
    let end = log.log_end_offset();
    // Any of the last five batches, retried, comes back with its own offsets.
    for (i, original) in infos.iter().enumerate() {
        let again = append(&mut log, &pbatch(7, 0, 2 * i as i32, 2)).expect("duplicate");
        assert!(again.duplicate);
        assert_eq!(
            (again.first_offset, again.last_offset),
            (original.first_offset, original.last_offset)
        );
        assert_eq!(again.bytes, 0);
    }
    assert_eq!(log.log_end_offset(), end, "nothing was written");
    // The sequence goes on where it was.
    let next = append(&mut log, &pbatch(7, 0, 10, 2)).expect("next");
    assert!(!next.duplicate);
    assert_eq!(next.first_offset, end);
}

#[test]
fn gaps_and_fenced_epochs_get_kafkas_error_codes() {
    let s = MemStorage::new();
    let mut log = open(&s);
    produce(&mut log, 0, 2);
    let gap = append(&mut log, &pbatch(7, 0, 6, 2)).expect_err("gap");
    assert_eq!(gap.error_code(), ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
    // A retry older than the five cached batches is out of order too (KAFKA-5494).
    produce(&mut log, 4, 5);
    let old = append(&mut log, &pbatch(7, 0, 0, 2)).expect_err("old retry");
    assert_eq!(old.error_code(), ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
    // A new epoch starts at 0; then the old epoch is fenced.
    append(&mut log, &pbatch(7, 1, 0, 1)).expect("new epoch");
    let fenced = append(&mut log, &pbatch(7, 0, 14, 1)).expect_err("old epoch");
    assert_eq!(fenced.error_code(), ErrorCode::INVALID_PRODUCER_EPOCH);
    let end = log.log_end_offset();
    assert_eq!(end, Offset(2 * 7 + 1), "refused batches were not written");
}

#[test]
fn a_follower_deduplicates_as_its_leader_did() {
    let leader_disk = MemStorage::new();
    let mut leader = open(&leader_disk);
    let infos = produce(&mut leader, 0, 6);
    let follower_disk = MemStorage::new();
    let mut follower = open(&follower_disk);
    follower
        .append_replicated(all_batches(&leader), 0)
        .expect("replicate");
    assert_eq!(last_seq(&follower, 7), Some(11));
    // Leadership moves: the producer's retry of its last batch reaches the follower.
    follower
        .maybe_assign_leader_epoch(LeaderEpoch(1))
        .expect("lead");
    let retry = follower
        .append(&pbatch(7, 0, 10, 2), LeaderEpoch(1), 0)
        .expect("duplicate");
    assert!(retry.duplicate);
    assert_eq!(retry.first_offset, infos[5].first_offset);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
}

#[test]
fn truncation_forgets_removed_batches_and_keeps_the_rest() {
    let s = MemStorage::new();
    let mut log = open(&s);
    let infos = produce(&mut log, 0, 6);
    // The last two batches go (an unreplicated tail cut by KIP-101 truncation).
    log.truncate_to(infos[4].first_offset).expect("truncate");
    assert_eq!(log.log_end_offset(), infos[4].first_offset);
    assert_eq!(last_seq(&log, 7), Some(7));
    // A kept batch is still a duplicate; a removed one is written anew, in order.
    let kept = append(&mut log, &pbatch(7, 0, 6, 2)).expect("kept");
    assert!(kept.duplicate);
    let removed = append(&mut log, &pbatch(7, 0, 8, 2)).expect("removed");
    assert!(!removed.duplicate);
    assert_eq!(removed.first_offset, infos[4].first_offset);
}

#[test]
fn truncating_below_every_batch_of_a_producer_forgets_it() {
    let s = MemStorage::new();
    let mut log = open(&s);
    append(&mut log, &pbatch(1, 0, 0, 3)).expect("other producer");
    let cut = log.log_end_offset();
    produce(&mut log, 0, 3);
    log.truncate_to(cut).expect("truncate");
    assert_eq!(last_seq(&log, 7), None);
    assert_eq!(last_seq(&log, 1), Some(2));
}

#[test]
fn rolls_write_snapshots_and_a_restart_keeps_deduplicating() {
    let s = MemStorage::new();
    let mut log = open(&s);
    let infos = produce(&mut log, 0, 40);
    assert!(log.segment_count() > 2);
    let bases: Vec<Offset> = snapshots(&s);
    assert!(!bases.is_empty(), "every roll writes a snapshot");
    assert!(
        bases
            .iter()
            .all(|b| *b > Offset::ZERO && *b < log.log_end_offset())
    );
    drop(log);
    // A crash: no checkpoint at the end, so recovery replays the active segment.
    let mut log = open(&s);
    assert_eq!(last_seq(&log, 7), Some(79));
    let retry = append(&mut log, &pbatch(7, 0, 78, 2)).expect("duplicate");
    assert!(retry.duplicate);
    assert_eq!(retry.first_offset, infos[39].first_offset);
}

#[test]
fn a_checkpoint_snapshots_the_log_end_and_replaces_its_previous_one() {
    let s = MemStorage::new();
    let mut log = open(&s);
    produce(&mut log, 0, 2);
    log.checkpoint_recovery_point().expect("checkpoint");
    let first = log.log_end_offset();
    assert!(snapshots(&s).contains(&first));
    produce(&mut log, 4, 1);
    log.checkpoint_recovery_point().expect("checkpoint");
    let second = log.log_end_offset();
    let now = snapshots(&s);
    assert!(now.contains(&second));
    assert!(
        !now.contains(&first),
        "the older checkpoint snapshot went: {now:?}"
    );
}

#[test]
fn recovery_deletes_snapshots_above_the_log_end() {
    let s = MemStorage::new();
    let mut log = open(&s);
    let infos = produce(&mut log, 0, 4);
    log.checkpoint_recovery_point().expect("checkpoint");
    drop(log);
    // A power loss kept the snapshot and lost the log tail below it: cut the last two batches
    // off the file by hand.
    let seg = dir().join("00000000000000000000.log");
    let file = s.file(&seg).expect("segment");
    let mut bytes = file.contents();
    let keep: usize = BatchIter::new(&bytes)
        .take(2)
        .map(|b| b.expect("whole").1.total_size())
        .sum();
    bytes.truncate(keep);
    file.replace(bytes);
    let mut log = open(&s);
    assert_eq!(log.log_end_offset(), infos[2].first_offset);
    assert!(
        snapshots(&s).iter().all(|o| *o <= log.log_end_offset()),
        "{:?}",
        snapshots(&s)
    );
    assert_eq!(last_seq(&log, 7), Some(3));
    // The lost batches are written anew, not answered from the stale snapshot.
    let again = append(&mut log, &pbatch(7, 0, 4, 2)).expect("append");
    assert!(!again.duplicate);
}

#[test]
fn a_corrupt_snapshot_is_deleted_and_an_older_one_or_the_log_serves() {
    let s = MemStorage::new();
    let mut log = open(&s);
    produce(&mut log, 0, 30);
    log.checkpoint_recovery_point().expect("checkpoint");
    let newest = *snapshots(&s).last().expect("snapshot");
    assert_eq!(newest, log.log_end_offset());
    drop(log);
    let path = dir().join(producer_state::snapshot_file_name(newest));
    let file = s.file(&path).expect("snapshot file");
    let mut bytes = file.contents();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    file.replace(bytes);
    let log = open(&s);
    assert!(
        !snapshots(&s).contains(&newest),
        "the corrupt snapshot was deleted"
    );
    assert_eq!(last_seq(&log, 7), Some(59));
}

#[test]
fn a_truncation_deletes_snapshots_past_the_cut() {
    let s = MemStorage::new();
    let mut log = open(&s);
    let infos = produce(&mut log, 0, 30);
    log.checkpoint_recovery_point().expect("checkpoint");
    let cut = infos[10].first_offset;
    log.truncate_to(cut).expect("truncate");
    assert!(snapshots(&s).iter().all(|o| *o <= log.log_end_offset()));
    // Different batches now take the removed offsets (another producer): after a restart the
    // state must describe them, not the removed ones.
    for i in 0..20 {
        append(&mut log, &pbatch(9, 0, 2 * i, 2)).expect("append");
    }
    drop(log);
    let log = open(&s);
    assert_eq!(last_seq(&log, 7), Some(19));
    assert_eq!(last_seq(&log, 9), Some(39));
}

#[test]
fn retention_keeps_producers_and_expiry_forgets_idle_ones() {
    let s = MemStorage::new();
    let mut cfg = config();
    cfg.retention_bytes = 0;
    cfg.producer_id_expiration_ms = 10_000;
    let mut log = PartitionLog::open(Arc::new(s.clone()), dir(), cfg, 0)
        .expect("open")
        .0;
    produce(&mut log, 0, 30);
    // Batches are stamped 1_000: at 5_000 the producer is not idle long enough yet.
    let report = log.enforce_retention(5_000).expect("retention");
    assert!(report.deleted_segments > 0);
    assert!(snapshots(&s).iter().all(|o| *o >= log.log_start_offset()));
    assert_eq!(
        last_seq(&log, 7),
        Some(59),
        "retention alone keeps producers"
    );
    log.enforce_retention(11_000).expect("retention");
    assert_eq!(
        last_seq(&log, 7),
        None,
        "idle for producer.id.expiration.ms"
    );
    // An unknown producer is accepted at any sequence (KIP-360).
    let info = append(&mut log, &pbatch(7, 0, 60, 2)).expect("accepted");
    assert!(!info.duplicate);
}

#[test]
fn producer_state_is_rebuilt_from_the_log_without_any_snapshot() {
    let s = MemStorage::new();
    let mut log = open(&s);
    produce(&mut log, 0, 30);
    append(&mut log, &pbatch(3, 2, 0, 1)).expect("append");
    drop(log);
    for o in snapshots(&s) {
        s.remove_file(&dir().join(producer_state::snapshot_file_name(o)))
            .expect("remove");
    }
    let log = open(&s);
    assert_eq!(last_seq(&log, 7), Some(59));
    assert_eq!(
        log.producer_state()
            .entry(ProducerId(3))
            .map(|e| e.producer_epoch()),
        Some(ProducerEpoch(2))
    );
}

#[test]
fn a_truncation_that_fails_half_way_fails_the_log_and_recovery_mends_it() {
    let s = MemStorage::new();
    let mut log = open(&s);
    let infos = produce(&mut log, 0, 4);
    if let Some(plan) = log.begin_flush() {
        plan.execute().expect("flush");
        log.complete_flush(&plan);
    }
    log.checkpoint_recovery_point().expect("checkpoint");
    for o in snapshots(&s) {
        s.remove_file(&dir().join(producer_state::snapshot_file_name(o)))
            .expect("remove");
    }
    // The segment is cut, then lowering the recovery point fails (cluster seed 500): the epoch
    // cache and the producer state were never brought along, so the log must refuse service
    // rather than serve (or assert on) a state that disagrees with it.
    s.fail_syncs(true);
    let err = log
        .truncate_to(infos[1].first_offset)
        .expect_err("EIO on the recovery point");
    assert_eq!(err.error_code(), ErrorCode::KAFKA_STORAGE_ERROR);
    assert!(log.is_failed());
    assert!(log.begin_flush().is_none());
    assert!(append(&mut log, &pbatch(7, 0, 2, 2)).is_err());
    drop(log);
    s.fail_syncs(false);
    let mut log = open(&s);
    assert_eq!(log.log_end_offset(), infos[1].first_offset);
    assert_eq!(last_seq(&log, 7), Some(1));
    let again = append(&mut log, &pbatch(7, 0, 2, 2)).expect("written anew");
    assert!(!again.duplicate);
}

#[test]
fn retention_leaves_a_snapshot_that_remembers_producers_of_deleted_segments() {
    let s = MemStorage::new();
    let mut log = open(&s);
    append(&mut log, &pbatch(3, 0, 0, 2)).expect("producer 3");
    produce(&mut log, 0, 30);
    // No snapshot survived (say every write failed): retention must not leave producer 3, whose
    // only batch is in the first segment, known to memory alone.
    for o in snapshots(&s) {
        s.remove_file(&dir().join(producer_state::snapshot_file_name(o)))
            .expect("remove");
    }
    let mut cfg = config();
    cfg.retention_bytes = 2_500;
    log.set_config(cfg);
    let report = log.enforce_retention(0).expect("retention");
    assert!(report.deleted_segments > 0);
    assert!(
        log.log_start_offset() > Offset(1),
        "producer 3's batch is gone"
    );
    let start = log.log_start_offset();
    assert!(
        snapshots(&s)
            .iter()
            .any(|o| *o >= start && *o <= log.log_end_offset()),
        "a snapshot lies at or above the new log start: {:?}",
        snapshots(&s)
    );
    drop(log);
    let mut log = open(&s);
    assert_eq!(
        last_seq(&log, 3),
        Some(1),
        "a restart still knows producer 3"
    );
    let retry = append(&mut log, &pbatch(3, 0, 0, 2)).expect("duplicate");
    assert!(retry.duplicate);
    assert_eq!(retry.first_offset, Offset(0));
}

/// [`MemStorage`] whose directory fsyncs fail once `fail` is set (file fsyncs still succeed).
#[derive(Debug)]
struct DirSyncFails {
    inner: MemStorage,
    fail: std::sync::atomic::AtomicBool,
}

impl Storage for DirSyncFails {
    fn open(
        &self,
        path: &std::path::Path,
    ) -> std::io::Result<Arc<dyn crate::storage::StorageFile>> {
        self.inner.open(path)
    }
    fn list_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.inner.remove_dir_all(dir)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::other("injected EIO on a directory fsync"));
        }
        self.inner.sync_dir(dir)
    }
}

#[test]
fn a_failed_directory_fsync_while_snapshotting_fails_the_log() {
    let storage = Arc::new(DirSyncFails {
        inner: MemStorage::new(),
        fail: false.into(),
    });
    let mut log = PartitionLog::open(storage.clone(), dir(), config(), 0)
        .expect("open")
        .0;
    produce(&mut log, 0, 2);
    // The roll's snapshot: its directory fsync fails, and the kernel may have forgotten the
    // directory's other pending changes with it, so nothing more may be trusted (fsyncgate).
    storage
        .fail
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let err = log.roll().expect_err("the roll's directory fsync failed");
    assert_eq!(err.error_code(), ErrorCode::KAFKA_STORAGE_ERROR);
    assert!(log.is_failed());
    assert!(append(&mut log, &pbatch(7, 0, 4, 2)).is_err());
}
