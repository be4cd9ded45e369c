//! The leader epoch cache (Kafka's `LeaderEpochFileCache`, KIP-101/279): for each leader epoch
//! that wrote to this log, the offset of its first record. It answers OffsetForLeaderEpoch
//! ([`LeaderEpochCache::end_offset_for`]) and drives follower truncation
//! (`crate::replica::truncation`).
//!
//! ## Invariants
//! - Entries are strictly increasing in both `epoch` and `start_offset`.
//! - Every epoch and start offset is `>= 0` (`-1` is Kafka's "no epoch", never stored).
//! - The file on disk holds exactly the in-memory entries after every mutating call returns
//!   `Ok`; on `Err` the in-memory entries are unchanged (stage, then commit).
//! - Owned by a [`super::PartitionLog`], which keeps every entry's `start_offset` below its log end
//!   offset, except for the entry a new leader assigns at its log end before writing (Kafka's
//!   `maybeAssignEpochStartOffset` on election), and at or after its log start offset.
//!
//! ## File format: `leader-epoch-checkpoint` in the partition directory
//! Kafka's text checkpoint format (`CheckpointFile`, version 0), ASCII, each line ended by `\n`:
//!
//! ```text
//! line 1   "0"                          format version
//! line 2   "<count>"                    number of entries, decimal
//! line 3.. "<epoch> <start_offset>"     count lines: two decimal integers, one space between
//! ```
//!
//! Example: `0\n2\n0 0\n3 120\n` says epoch 0 began at offset 0 and epoch 3 at offset 120.
//!
//! Written atomically: the text goes to `leader-epoch-checkpoint.tmp` (truncated first), which is
//! `sync_data`ed, renamed over `leader-epoch-checkpoint`, and the directory is `sync_dir`ed. A
//! crash leaves the old file or the new one. A file that does not parse exactly (wrong version,
//! wrong count, trailing garbage, negative or non-increasing entries) is *malformed*: the log
//! rebuilds the cache from the `partitionLeaderEpoch` of its batch headers (bytes 12..16 of every
//! v2 batch) instead of trusting it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::{Storage, read_vec};
use crate::types::{LeaderEpoch, Offset};

use super::{LogError, io_err};

/// Name of the checkpoint file in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Temporary file the checkpoint is written to before it is renamed into place.
pub const LEADER_EPOCH_CHECKPOINT_TMP: &str = "leader-epoch-checkpoint.tmp";
/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: LeaderEpoch = LeaderEpoch(-1);
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: Offset = Offset(-1);
/// Largest checkpoint file read; anything bigger is malformed (a million epochs fit easily).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// One leader epoch and the offset of its first record (Kafka's `EpochEntry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

impl EpochEntry {
    pub fn new(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch: LeaderEpoch(epoch),
            start_offset: Offset(start_offset),
        }
    }
}

/// An OffsetForLeaderEpoch answer: the largest epoch `<=` the requested one that the log knows,
/// and the offset where it ends (Kafka's `EpochEndOffset` response fields `leader_epoch`,
/// `end_offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub leader_epoch: LeaderEpoch,
    pub end_offset: Offset,
}

impl EpochEndOffset {
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        leader_epoch: UNDEFINED_EPOCH,
        end_offset: UNDEFINED_EPOCH_OFFSET,
    };

    pub fn new(leader_epoch: i32, end_offset: i64) -> EpochEndOffset {
        EpochEndOffset {
            leader_epoch: LeaderEpoch(leader_epoch),
            end_offset: Offset(end_offset),
        }
    }
}

/// What [`LeaderEpochCache::load`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointState {
    /// The file parsed; the cache holds its entries.
    Loaded,
    /// No file: the cache is empty.
    Missing,
    /// The file did not parse: the cache is empty and the file must not be trusted.
    Malformed,
}

/// The cache and its checkpoint file. See the module docs.
#[derive(Debug)]
pub struct LeaderEpochCache {
    /// Strictly increasing in epoch and start offset.
    entries: Vec<EpochEntry>,
    /// The disk, through the storage seam.
    storage: Arc<dyn Storage>,
    /// The partition directory holding the checkpoint file.
    dir: PathBuf,
}

impl LeaderEpochCache {
    /// Reads the checkpoint in `dir`. A missing or malformed file gives an empty cache and says
    /// so; only an IO error is an `Err`. Removes a leftover temporary file.
    pub fn load(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
    ) -> Result<(LeaderEpochCache, CheckpointState), LogError> {
        let names = storage
            .list_dir(&dir)
            .map_err(io_err("list log dir", &dir))?;
        if names.iter().any(|n| n == LEADER_EPOCH_CHECKPOINT_TMP) {
            let tmp = dir.join(LEADER_EPOCH_CHECKPOINT_TMP);
            storage
                .remove_file(&tmp)
                .map_err(io_err("remove orphan", &tmp))?;
        }
        let mut cache = LeaderEpochCache {
            entries: Vec::new(),
            storage,
            dir,
        };
        if !names.iter().any(|n| n == LEADER_EPOCH_CHECKPOINT) {
            return Ok((cache, CheckpointState::Missing));
        }
        let path = cache.dir.join(LEADER_EPOCH_CHECKPOINT);
        let file = cache
            .storage
            .open(&path)
            .map_err(io_err("read leader epochs", &path))?;
        let len = file.len().map_err(io_err("read leader epochs", &path))?;
        if len > MAX_FILE_BYTES {
            return Ok((cache, CheckpointState::Malformed));
        }
        let raw = read_vec(&*file, 0, len as usize).map_err(io_err("read leader epochs", &path))?;
        match parse_checkpoint(&raw) {
            Some(entries) => {
                cache.entries = entries;
                cache.assert_invariants();
                Ok((cache, CheckpointState::Loaded))
            }
            None => Ok((cache, CheckpointState::Malformed)),
        }
    }

    /// All entries, oldest first (for tests, debugging and the follower truncation rule).
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry (Kafka's `latestEntry`).
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The newest epoch that wrote (or, for a new leader, is about to write) to the log.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The start offset of `epoch`, if the cache has an entry for it.
    pub fn start_offset_of(&self, epoch: LeaderEpoch) -> Option<Offset> {
        self.entries
            .iter()
            .find(|e| e.epoch == epoch)
            .map(|e| e.start_offset)
    }

    /// Records that `epoch` starts at `start_offset`, with Kafka's `assign` semantics (see
    /// [`assign_entry`]), and persists the change. `Ok(true)` if the entries changed.
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> Result<bool, LogError> {
        let mut staged = self.entries.clone();
        if !assign_entry(
            &mut staged,
            EpochEntry {
                epoch,
                start_offset,
            },
        ) {
            return Ok(false);
        }
        self.replace(staged)?;
        Ok(true)
    }

    /// Kafka's `endOffsetFor`: see [`end_offset_for`].
    pub fn end_offset_for(&self, requested: LeaderEpoch, log_end_offset: Offset) -> EpochEndOffset {
        end_offset_for(&self.entries, requested, log_end_offset)
    }

    /// The epoch of the record at `offset`: the entry with the largest start offset `<= offset`
    /// (Kafka's `epochForOffset`). `None` below the first entry.
    pub fn epoch_for_offset(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries
            .iter()
            .take_while(|e| e.start_offset <= offset)
            .last()
            .map(|e| e.epoch)
    }

    /// Removes every entry whose start offset is `>= end_offset` (the log was truncated to
    /// `end_offset`; Kafka's `truncateFromEnd`). `Ok(true)` if the entries changed.
    pub fn truncate_from_end(&mut self, end_offset: Offset) -> Result<bool, LogError> {
        let mut staged = self.entries.clone();
        if !truncate_from_end(&mut staged, end_offset) {
            return Ok(false);
        }
        self.replace(staged)?;
        Ok(true)
    }

    /// Drops entries wholly below `start_offset` and moves the one covering it to start there
    /// (the log start offset moved; Kafka's `truncateFromStart`). `Ok(true)` if they changed.
    pub fn truncate_from_start(&mut self, start_offset: Offset) -> Result<bool, LogError> {
        let mut staged = self.entries.clone();
        if !truncate_from_start(&mut staged, start_offset) {
            return Ok(false);
        }
        self.replace(staged)?;
        Ok(true)
    }

    /// Replaces every entry with `entries` (already valid) and writes the checkpoint, even if they
    /// are unchanged (used to overwrite a malformed file). Memory changes only once the file did.
    pub fn replace(&mut self, entries: Vec<EpochEntry>) -> Result<(), LogError> {
        assert_valid(&entries);
        write_checkpoint(&*self.storage, &self.dir, &entries)?;
        self.entries = entries;
        Ok(())
    }

    fn assert_invariants(&self) {
        assert_valid(&self.entries);
    }
}

/// Asserts the module invariants on a list of entries.
fn assert_valid(entries: &[EpochEntry]) {
    for e in entries {
        assert!(
            e.epoch.0 >= 0 && e.start_offset.0 >= 0,
            "negative epoch entry {e:?}"
        );
    }
    for w in entries.windows(2) {
        assert!(
            w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset,
            "epoch entries not strictly increasing: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// Kafka's `LeaderEpochFileCache.assign`, on a staged copy. Returns whether `entries` changed.
///
/// - Empty cache: the entry is the first.
/// - Same epoch as the latest, at or after its start: nothing to do. This is every append but the
///   first of an epoch, so it must be cheap.
/// - Same epoch as the latest, *before* its start: Kafka takes it as a correction and moves the
///   start back. The log's own calls never produce it (its appends only move forward, and a
///   truncation first removes every entry at or above the cut), but the rule stays Kafka's.
/// - Any other epoch: entries that would break monotonicity go first — every trailing entry whose
///   epoch is `>=` the new one or whose start offset is `>=` the new start. Usually that removes
///   nothing, or only an entry a leader assigned at its log end and never wrote to (same start
///   offset); anything else is a conflict Kafka logs and resolves the same way: the newest
///   information wins.
pub fn assign_entry(entries: &mut Vec<EpochEntry>, entry: EpochEntry) -> bool {
    assert!(
        entry.epoch.0 >= 0 && entry.start_offset.0 >= 0,
        "invalid partition leader epoch entry {entry:?}"
    );
    let update_needed = entries.last().is_none_or(|latest| {
        entry.epoch != latest.epoch || entry.start_offset < latest.start_offset
    });
    if !update_needed {
        return false;
    }
    let mut removed = Vec::new();
    while let Some(last) = entries.last().copied() {
        if last.epoch >= entry.epoch || last.start_offset >= entry.start_offset {
            removed.push(last);
            entries.pop();
        } else {
            break;
        }
    }
    if removed.len() > 1
        || removed
            .first()
            .is_some_and(|r| r.start_offset != entry.start_offset)
    {
        tracing::warn!(new = ?entry, ?removed, "new epoch entry truncated conflicting entries");
    }
    entries.push(entry);
    true
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest epoch `<=` `requested` that
/// `entries` know, and where it ends (the start of the next known epoch, or the log end offset
/// for the latest one).
pub fn end_offset_for(
    entries: &[EpochEntry],
    requested: LeaderEpoch,
    log_end_offset: Offset,
) -> EpochEndOffset {
    if requested == UNDEFINED_EPOCH {
        // A bootstrapping follower with no epoch of its own asks with -1: there is nothing to
        // compare, so nothing is defined.
        return EpochEndOffset::UNDEFINED;
    }
    let latest = entries.last();
    if latest.is_some_and(|l| l.epoch == requested) {
        // For the leader the latest epoch is its current one, still being written to: it ends at
        // the log end. Followers have no reason to ask for the current epoch, but a consumer
        // validating its position after a leader change (KIP-320) may.
        return EpochEndOffset {
            leader_epoch: requested,
            end_offset: log_end_offset,
        };
    }
    let Some(higher) = entries.iter().find(|e| e.epoch > requested) else {
        // The requested epoch is newer than any we know (or we know none). The latest cached
        // epoch is always the largest the leader has, so an honest follower cannot ask this; an
        // empty cache (a log with no epochs yet) answers the same.
        return EpochEndOffset::UNDEFINED;
    };
    match entries.iter().rev().find(|e| e.epoch <= requested) {
        // The requested epoch is older than any we know: its data was deleted (retention moved
        // the log start and truncated the cache from the start). Answer with the start of the
        // first known epoch, so the follower replicates from there; epochs in between may be
        // missing, but their data is gone from this log anyway.
        None => EpochEndOffset {
            leader_epoch: requested,
            end_offset: higher.start_offset,
        },
        // The usual case: a known epoch at or below the requested one (it may be smaller when
        // the requested epoch never wrote here, e.g. a leader elected and replaced before it
        // appended), ending where the next known epoch starts.
        Some(floor) => EpochEndOffset {
            leader_epoch: floor.epoch,
            end_offset: higher.start_offset,
        },
    }
}

/// Kafka's `truncateFromEnd`: removes entries starting at or after `end_offset`.
pub(super) fn truncate_from_end(entries: &mut Vec<EpochEntry>, end_offset: Offset) -> bool {
    let before = entries.len();
    if end_offset.0 >= 0 {
        while entries.last().is_some_and(|e| e.start_offset >= end_offset) {
            entries.pop();
        }
    }
    entries.len() != before
}

/// Kafka's `truncateFromStart`: removes every entry starting at or before `start_offset`, then
/// puts the last removed one back starting exactly at `start_offset` (it covers the new log
/// start). Exclusive: an entry starting at `start_offset` stays as it is.
pub(super) fn truncate_from_start(entries: &mut Vec<EpochEntry>, start_offset: Offset) -> bool {
    let n = entries
        .iter()
        .take_while(|e| e.start_offset <= start_offset)
        .count();
    let Some(covering) = n.checked_sub(1).map(|i| entries[i]) else {
        return false;
    };
    if n == 1 && covering.start_offset == start_offset {
        return false;
    }
    entries.drain(..n);
    entries.insert(
        0,
        EpochEntry {
            epoch: covering.epoch,
            start_offset,
        },
    );
    true
}

/// Parses the checkpoint text; `None` if it is not exactly the format in the module docs.
fn parse_checkpoint(raw: &[u8]) -> Option<Vec<EpochEntry>> {
    let text = std::str::from_utf8(raw).ok()?;
    let body = text.strip_suffix('\n')?;
    let mut lines = body.split('\n');
    if lines.next()? != "0" {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for line in lines {
        let (epoch, offset) = line.split_once(' ')?;
        let epoch: i32 = epoch.parse().ok()?;
        let offset: i64 = offset.parse().ok()?;
        if epoch < 0 || offset < 0 {
            return None;
        }
        if entries
            .last()
            .is_some_and(|l: &EpochEntry| l.epoch.0 >= epoch || l.start_offset.0 >= offset)
        {
            return None;
        }
        entries.push(EpochEntry::new(epoch, offset));
    }
    (entries.len() == count).then_some(entries)
}

/// The checkpoint text for `entries` (the format in the module docs).
fn format_checkpoint(entries: &[EpochEntry]) -> String {
    let mut text = format!("0\n{}\n", entries.len());
    for e in entries {
        text.push_str(&format!("{} {}\n", e.epoch.0, e.start_offset.0));
    }
    text
}

/// Writes the checkpoint atomically: temporary file, `sync_data`, rename, `sync_dir`.
fn write_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    entries: &[EpochEntry],
) -> Result<(), LogError> {
    let tmp = dir.join(LEADER_EPOCH_CHECKPOINT_TMP);
    let text = format_checkpoint(entries);
    let write = |f: &dyn crate::storage::StorageFile| -> io::Result<()> {
        f.set_len(0)?;
        f.write_at(text.as_bytes(), 0)?;
        f.sync_data()
    };
    let file = storage
        .open(&tmp)
        .map_err(io_err("write leader epochs", &tmp))?;
    write(&*file).map_err(io_err("write leader epochs", &tmp))?;
    let dst = dir.join(LEADER_EPOCH_CHECKPOINT);
    storage
        .rename(&tmp, &dst)
        .map_err(io_err("write leader epochs", &dst))?;
    storage
        .sync_dir(dir)
        .map_err(io_err("write leader epochs", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use proptest::prelude::*;

    fn e(epoch: i32, start: i64) -> EpochEntry {
        EpochEntry::new(epoch, start)
    }

    fn dir() -> PathBuf {
        PathBuf::from("/data/t-0")
    }

    fn cache_with(s: &MemStorage, entries: &[EpochEntry]) -> LeaderEpochCache {
        let (mut c, state) = LeaderEpochCache::load(Arc::new(s.clone()), dir()).expect("load");
        assert_eq!(state, CheckpointState::Missing);
        c.replace(entries.to_vec()).expect("replace");
        c
    }

    fn file_text(s: &MemStorage) -> String {
        let f = s.file(&dir().join(LEADER_EPOCH_CHECKPOINT)).expect("file");
        String::from_utf8(f.contents()).expect("utf8")
    }

    /// Kafka's `assign` cases, one row each: (entries before, assigned, changed, entries after).
    #[test]
    fn assign_follows_kafka() {
        let rows: &[(&[EpochEntry], EpochEntry, bool, &[EpochEntry])] = &[
            // First entry of an empty cache.
            (&[], e(0, 0), true, &[e(0, 0)]),
            // Same epoch later in the log: every append after the first of an epoch.
            (&[e(1, 10)], e(1, 15), false, &[e(1, 10)]),
            (&[e(1, 10)], e(1, 10), false, &[e(1, 10)]),
            // Same epoch earlier than recorded: the start moves back.
            (&[e(0, 0), e(1, 10)], e(1, 5), true, &[e(0, 0), e(1, 5)]),
            // A new epoch after the latest.
            (&[e(1, 10)], e(3, 20), true, &[e(1, 10), e(3, 20)]),
            // A new epoch at the start of a leader's empty epoch replaces it (no data was lost).
            (&[e(1, 10), e(2, 20)], e(3, 20), true, &[e(1, 10), e(3, 20)]),
            // A new epoch starting before the latest start: conflicting entries go.
            (
                &[e(1, 0), e(2, 10), e(3, 20)],
                e(5, 15),
                true,
                &[e(1, 0), e(2, 10), e(5, 15)],
            ),
            // An older epoch than the latest: every entry with epoch >= it goes (Kafka keeps the
            // newest information; the log never calls this, see PartitionLog::append_replicated).
            (&[e(1, 0), e(4, 10)], e(2, 30), true, &[e(1, 0), e(2, 30)]),
        ];
        for (i, (before, entry, changed, after)) in rows.iter().enumerate() {
            let s = MemStorage::new();
            let mut c = cache_with(&s, before);
            assert_eq!(
                c.assign(entry.epoch, entry.start_offset).expect("assign"),
                *changed,
                "row {i}"
            );
            assert_eq!(c.entries(), *after, "row {i}");
            let (reloaded, _) = LeaderEpochCache::load(Arc::new(s.clone()), dir()).expect("load");
            assert_eq!(
                reloaded.entries(),
                *after,
                "row {i}: the file says the same"
            );
        }
    }

    /// Kafka's `endOffsetFor`, one row per case it comments.
    #[test]
    fn end_offset_for_follows_kafka() {
        let entries = [e(1, 0), e(3, 10), e(6, 25)];
        let leo = Offset(40);
        let rows: &[(&[EpochEntry], i32, (i32, i64))] = &[
            // Undefined epoch requested.
            (&entries, -1, (-1, -1)),
            // The latest epoch: ends at the log end offset.
            (&entries, 6, (6, 40)),
            // A known older epoch ends where the next one starts.
            (&entries, 3, (3, 25)),
            (&entries, 1, (1, 10)),
            // An epoch the log never saw: the largest smaller epoch, ending at the next start
            // (KIP-279: the follower learns the epoch the leader really has).
            (&entries, 4, (3, 25)),
            (&entries, 2, (1, 10)),
            // Older than every entry: the requested epoch with the first start offset.
            (&entries, 0, (0, 0)),
            (&[e(5, 100), e(7, 150)], 2, (2, 100)),
            // Newer than every entry, or no entries at all: undefined.
            (&entries, 9, (-1, -1)),
            (&[], 0, (-1, -1)),
        ];
        for (i, (entries, requested, (epoch, offset))) in rows.iter().enumerate() {
            assert_eq!(
                end_offset_for(entries, LeaderEpoch(*requested), leo),
                EpochEndOffset::new(*epoch, *offset),
                "row {i}: requested {requested}"
            );
        }
    }

    #[test]
    fn truncation_from_both_ends() {
        let s = MemStorage::new();
        let mut c = cache_with(&s, &[e(1, 0), e(3, 10), e(6, 25)]);
        assert!(!c.truncate_from_end(Offset(26)).expect("end"));
        assert!(c.truncate_from_end(Offset(25)).expect("end"));
        assert_eq!(c.entries(), &[e(1, 0), e(3, 10)]);
        // Exclusive: an entry starting exactly at the new log start stays.
        assert!(!c.truncate_from_start(Offset(0)).expect("start"));
        assert!(c.truncate_from_start(Offset(12)).expect("start"));
        assert_eq!(c.entries(), &[e(3, 12)]);
        assert!(!c.truncate_from_start(Offset(12)).expect("start"));
        assert!(c.truncate_from_end(Offset(5)).expect("end"));
        assert!(c.entries().is_empty());
        assert_eq!(file_text(&s), "0\n0\n");
    }

    #[test]
    fn epoch_for_offset_and_file_format() {
        let s = MemStorage::new();
        let c = cache_with(&s, &[e(0, 0), e(3, 120)]);
        assert_eq!(file_text(&s), "0\n2\n0 0\n3 120\n");
        assert_eq!(c.epoch_for_offset(Offset(0)), Some(LeaderEpoch(0)));
        assert_eq!(c.epoch_for_offset(Offset(119)), Some(LeaderEpoch(0)));
        assert_eq!(c.epoch_for_offset(Offset(120)), Some(LeaderEpoch(3)));
        assert_eq!(c.epoch_for_offset(Offset(10_000)), Some(LeaderEpoch(3)));
        let later = cache_with(&MemStorage::new(), &[e(2, 50)]);
        assert_eq!(later.epoch_for_offset(Offset(49)), None);
        assert_eq!(c.start_offset_of(LeaderEpoch(3)), Some(Offset(120)));
        assert_eq!(c.start_offset_of(LeaderEpoch(2)), None);
    }

    #[test]
    fn malformed_files_load_empty_and_say_so() {
        let bad: &[&str] = &[
            "",
            "0\n",
            "1\n0\n",
            "0\n1\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n1\n0 0",
            "0\n1\n0  0\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 -5\n",
            "0\n2\n3 10\n2 20\n",
            "0\n2\n2 10\n3 10\n",
            "0\n1\n0 0\n\n",
            "0\n1\nx y\n",
            "0\n99999999999999999999\n",
            "\u{0}\u{0}\u{0}",
        ];
        for text in bad {
            let s = MemStorage::new();
            let path = dir().join(LEADER_EPOCH_CHECKPOINT);
            s.open(&path)
                .expect("open")
                .write_at(text.as_bytes(), 0)
                .expect("write");
            let (c, state) = LeaderEpochCache::load(Arc::new(s.clone()), dir()).expect("load");
            assert_eq!(state, CheckpointState::Malformed, "{text:?}");
            assert!(c.entries().is_empty());
        }
    }

    #[test]
    fn leftover_tmp_file_is_removed() {
        let s = MemStorage::new();
        let tmp = dir().join(LEADER_EPOCH_CHECKPOINT_TMP);
        s.open(&tmp)
            .expect("open")
            .write_at(b"0\n1\n9 9\n", 0)
            .expect("write");
        let (c, state) = LeaderEpochCache::load(Arc::new(s.clone()), dir()).expect("load");
        assert_eq!(state, CheckpointState::Missing);
        assert!(c.entries().is_empty());
        assert!(s.file(&tmp).is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_checkpoint(&data);
        }

        #[test]
        fn format_parse_round_trip(steps in proptest::collection::vec((0i32..50, 0i64..1000), 0..30)) {
            let mut entries = Vec::new();
            for (epoch, start) in steps {
                assign_entry(&mut entries, e(epoch, start));
                assert_valid(&entries);
            }
            prop_assert_eq!(parse_checkpoint(format_checkpoint(&entries).as_bytes()), Some(entries));
        }
    }
}
