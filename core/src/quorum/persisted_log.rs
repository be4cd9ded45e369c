//! [`PersistedLog`]: raft-rs's `Storage` over Strata's [`Storage`] seam.
//!
//! Holds in memory exactly what is durable: the hard state, the latest snapshot, and every log
//! entry after the snapshot (compaction bounds their number). raft-rs reads only from here;
//! every mutation writes and syncs the files first and updates memory after, so the in-memory
//! view never runs ahead of the disk.
//!
//! Invariants:
//! - `entries[i].index == snapshot.index + 1 + i`, terms non-decreasing.
//! - `positions[i]` is the file position of `entries[i]`'s frame in `raft.log`; `log_len` is
//!   the end of the last frame. Frames for indexes `<= snapshot.index` are never in the file
//!   after [`PersistedLog::open`] returns.
//! - `hard_state.commit` is within `[snapshot.index, last_index]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::QuorumError;
use super::files::{
    self, HARD_STATE_FILE, HardStateSlot, LOG_FILE, LOG_TMP, SNAPSHOT_FILE, SNAPSHOT_TMP,
    SnapshotFile,
};
use crate::storage::{Storage, StorageFile};

/// The durable Raft state of one controller.
#[derive(Debug)]
pub(super) struct PersistedLog {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    /// Raft ids of the voters (fixed: membership changes are not supported).
    voters: Vec<u64>,
    hard_state: HardState,
    /// Sequence number of the last hard-state slot written.
    hs_seq: u64,
    hs_file: Arc<dyn StorageFile>,
    /// Index 0 (and no data) before the first compaction.
    snapshot: SnapshotFile,
    entries: Vec<Entry>,
    positions: Vec<u64>,
    log_file: Arc<dyn StorageFile>,
    log_len: u64,
}

impl PersistedLog {
    /// Recovers the files under `dir` (creating them on first start). Returns the log and the
    /// snapshot the state machine must start from, if any.
    pub(super) fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        voters: Vec<u64>,
    ) -> Result<(PersistedLog, Option<SnapshotFile>), QuorumError> {
        storage.create_dir_all(dir)?;
        let log_file = storage.open(&dir.join(LOG_FILE))?;
        let hs_file = storage.open(&dir.join(HARD_STATE_FILE))?;
        let snap_file = storage.open(&dir.join(SNAPSHOT_FILE))?;
        // Make the files' creation durable before anything is written into them.
        storage.sync_dir(dir)?;

        let snapshot = files::decode_snapshot(&files::read_all(&*snap_file)?).map_err(|why| {
            QuorumError::Corrupt(format!("{}: {why}", dir.join(SNAPSHOT_FILE).display()))
        })?;
        let recovered_snapshot = snapshot.clone();
        let snapshot = snapshot.unwrap_or(SnapshotFile {
            index: 0,
            term: 0,
            data: Vec::new(),
        });

        let scan = files::scan_log(&files::read_all(&*log_file)?);
        if let Some(why) = &scan.stopped {
            // Only an unsynced tail can be damaged: every acknowledged frame was synced before
            // any message depending on it left this node.
            tracing::warn!(dir = %dir.display(), valid_len = scan.valid_len, entries = scan.entries.len(),
                "quorum log: dropping the tail after a bad frame: {why}");
            log_file.set_len(scan.valid_len)?;
            log_file.sync_data()?;
        }
        let mut entries = scan.entries;
        let mut positions = scan.positions;
        let mut log_len = scan.valid_len;
        let mut rewrite = false;
        if let Some(first) = entries.first().map(|e| e.index) {
            if first > snapshot.index + 1 {
                tracing::warn!(
                    first,
                    snapshot = snapshot.index,
                    "quorum log starts after a gap: dropped"
                );
                entries.clear();
                rewrite = true;
            } else {
                // Frames at or below the snapshot remain after a crash between the snapshot's
                // rename and the log's rewrite.
                let skip = (snapshot.index + 1 - first) as usize;
                if skip > 0 {
                    if skip > entries.len() {
                        entries.clear();
                    } else if entries[skip - 1].term != snapshot.term {
                        // The snapshot came from a leader whose log differs from ours there:
                        // everything after it in our log is a stale suffix.
                        tracing::warn!(
                            index = snapshot.index,
                            "quorum log conflicts with the snapshot: dropped"
                        );
                        entries.clear();
                    } else {
                        entries.drain(..skip);
                    }
                    rewrite = true;
                }
            }
        }
        // What we just read may sit in the page cache without being on disk: after a failed
        // fsync Linux marks the pages clean, and a restart that kept the cache (a process kill)
        // shows them as if written. Raft must never count on entries or a vote it cannot keep,
        // so recovery writes everything it read again, synced, before the node takes part
        // (found by the cluster sweep, seed 399: a restarted voter later lost entries it had
        // acknowledged, and raft-rs panicked on a commit index beyond its log).
        if !entries.is_empty() {
            rewrite = true;
        }
        let log_file = if rewrite {
            let (file, new_positions, len) = rewrite_log(&*storage, dir, &entries)?;
            positions = new_positions;
            log_len = len;
            file
        } else {
            log_file
        };

        let slot = files::read_hard_state(&*hs_file)?.unwrap_or_default();
        let mut hard_state = HardState {
            term: slot.term,
            vote: slot.vote,
            commit: slot.commit.max(snapshot.index),
            ..Default::default()
        };
        let last_index = snapshot.index + entries.len() as u64;
        if hard_state.commit > last_index {
            tracing::warn!(
                commit = hard_state.commit,
                last_index,
                "quorum commit index beyond the log: lowered"
            );
            hard_state.commit = last_index;
        }
        let last_term = entries.last().map_or(snapshot.term, |e| e.term);
        if last_term > hard_state.term {
            // The entries were synced, the hard state written after them was not. No message
            // based on that hard state was sent (messages leave only after every write of their
            // Ready is synced), so no vote of that term left this node.
            tracing::warn!(
                last_term,
                term = hard_state.term,
                "quorum hard state older than the log: term raised"
            );
            hard_state.term = last_term;
            hard_state.vote = 0;
        }

        // Same for the hard state: write it again (next slot, synced).
        let resync = HardStateSlot {
            seq: slot.seq + 1,
            term: hard_state.term,
            vote: hard_state.vote,
            commit: hard_state.commit,
        };
        files::write_hard_state(&*hs_file, &resync)?;
        let slot = resync;
        let log = PersistedLog {
            storage,
            dir: dir.to_path_buf(),
            voters,
            hard_state,
            hs_seq: slot.seq,
            hs_file,
            snapshot,
            entries,
            positions,
            log_file,
            log_len,
        };
        log.check_invariants();
        Ok((log, recovered_snapshot))
    }

    fn check_invariants(&self) {
        assert_eq!(self.entries.len(), self.positions.len());
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(
                e.index,
                self.snapshot.index + 1 + i as u64,
                "quorum log entries are dense"
            );
        }
        assert!(
            self.hard_state.commit >= self.snapshot.index && self.hard_state.commit <= self.last(),
            "commit {} within [{}, {}]",
            self.hard_state.commit,
            self.snapshot.index,
            self.last()
        );
    }

    pub(super) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub(super) fn snapshot_index(&self) -> u64 {
        self.snapshot.index
    }

    /// Entries held after the snapshot.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn first(&self) -> u64 {
        self.snapshot.index + 1
    }

    fn last(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    /// Appends `new` (consecutive entries) after truncating any suffix it overwrites (Raft §5.3:
    /// a conflicting entry and all that follow it are deleted), then syncs.
    pub(super) fn append(&mut self, new: &[Entry]) -> Result<(), QuorumError> {
        let Some(first) = new.first().map(|e| e.index) else {
            return Ok(());
        };
        assert!(
            first > self.snapshot.index && first <= self.last() + 1,
            "raft appends {first} within ({}, {}]",
            self.snapshot.index,
            self.last() + 1
        );
        let keep = (first - self.first()) as usize;
        let start = self.positions.get(keep).copied().unwrap_or(self.log_len);
        if start < self.log_len {
            self.log_file.set_len(start)?;
        }
        let mut buf = Vec::new();
        let mut new_positions = Vec::with_capacity(new.len());
        for e in new {
            new_positions.push(start + buf.len() as u64);
            files::encode_frame(e, &mut buf);
        }
        self.log_file.write_at(&buf, start)?;
        self.log_file.sync_data()?;
        self.entries.truncate(keep);
        self.positions.truncate(keep);
        self.entries.extend_from_slice(new);
        self.positions.extend(new_positions);
        self.log_len = start + buf.len() as u64;
        Ok(())
    }

    /// Persists `hs` (synced) if it differs from the durable one.
    pub(super) fn set_hard_state(&mut self, hs: &HardState) -> Result<(), QuorumError> {
        if *hs == self.hard_state {
            return Ok(());
        }
        assert!(hs.term >= self.hard_state.term, "the term never goes back");
        let slot = HardStateSlot {
            seq: self.hs_seq + 1,
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
        };
        files::write_hard_state(&*self.hs_file, &slot)?;
        self.hs_seq = slot.seq;
        self.hard_state = hs.clone();
        Ok(())
    }

    /// Installs a snapshot received from the leader: the snapshot file replaces the old one, and
    /// the whole log is dropped (raft-rs restores a snapshot only when our log does not already
    /// hold its last entry).
    pub(super) fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), QuorumError> {
        let meta = snapshot.get_metadata();
        let file = SnapshotFile {
            index: meta.index,
            term: meta.term,
            data: snapshot.data.to_vec(),
        };
        assert!(
            file.index > self.snapshot.index,
            "snapshots only move forward"
        );
        files::replace_file(
            &*self.storage,
            &self.dir,
            SNAPSHOT_TMP,
            SNAPSHOT_FILE,
            &files::encode_snapshot(&file),
        )?;
        let (log_file, positions, log_len) = rewrite_log(&*self.storage, &self.dir, &[])?;
        self.snapshot = file;
        self.entries.clear();
        self.positions = positions;
        self.log_file = log_file;
        self.log_len = log_len;
        Ok(())
    }

    /// Writes a snapshot of the state machine at `index` (applied, hence committed and held)
    /// and drops the entries up to it: snapshot file first, then the log rewritten.
    pub(super) fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), QuorumError> {
        assert!(
            index > self.snapshot.index && index <= self.last(),
            "compaction point {index} is held"
        );
        let term = self.entries[(index - self.first()) as usize].term;
        let file = SnapshotFile { index, term, data };
        files::replace_file(
            &*self.storage,
            &self.dir,
            SNAPSHOT_TMP,
            SNAPSHOT_FILE,
            &files::encode_snapshot(&file),
        )?;
        let keep_from = (index + 1 - self.first()) as usize;
        let kept = self.entries.split_off(keep_from);
        let (log_file, positions, log_len) = rewrite_log(&*self.storage, &self.dir, &kept)?;
        self.snapshot = file;
        self.entries = kept;
        self.positions = positions;
        self.log_file = log_file;
        self.log_len = log_len;
        self.check_invariants();
        Ok(())
    }

    fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            ..Default::default()
        }
    }
}

/// A rewritten log: its new handle, frame positions and length.
type RewrittenLog = (Arc<dyn StorageFile>, Vec<u64>, u64);

/// Replaces `raft.log` with the frames of `entries`; returns the new handle, frame positions
/// and length.
fn rewrite_log(
    storage: &dyn Storage,
    dir: &Path,
    entries: &[Entry],
) -> Result<RewrittenLog, QuorumError> {
    let mut buf = Vec::new();
    let mut positions = Vec::with_capacity(entries.len());
    for e in entries {
        positions.push(buf.len() as u64);
        files::encode_frame(e, &mut buf);
    }
    let file = files::replace_file(storage, dir, LOG_TMP, LOG_FILE, &buf)?;
    Ok((file, positions, buf.len() as u64))
}

impl raft::Storage for PersistedLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut out = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.index == 0 || self.snapshot.index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut meta = SnapshotMetadata {
            index: self.snapshot.index,
            term: self.snapshot.term,
            ..Default::default()
        };
        meta.set_conf_state(self.conf_state());
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.data = self.snapshot.data.clone().into();
        Ok(snap)
    }
}
