//! Snapshots: how a coordinator keeps its `__consumer_offsets` partition bounded without
//! compaction.
//!
//! ## What
//!
//! Every record of the partition sets one key — a group's metadata, or one (group, topic,
//! partition)'s committed offset — and the image is the last value of every key
//! ([`GroupImage::apply`](super::GroupImage::apply) touches only the record's own key). A
//! snapshot re-emits the whole latest image as ordinary records, one GroupMetadata per group and
//! one OffsetCommit per committed offset, each *exactly* the current value (so replaying it
//! changes nothing), starting at offset `S`. Once all of it is below the high watermark the
//! coordinator reports [`Output::superseded_below`](super::Output::superseded_below) `= S`, and
//! the driver deletes the whole segments below `S` (`PartitionLog::delete_segments_below`).
//!
//! ## Invariant
//!
//! Once a snapshot that started at `S` is complete (every chunk appended and below the high
//! watermark), replaying the partition from any offset `x ≤ S` gives the same image as
//! replaying all of it. So a load from a log start moved up to (a segment boundary at or
//! below) `S` is still a load of the whole history.
//!
//! Why, key by key. `S` is the last replayed offset + 1 when the snapshot starts: every record
//! below `S` is in `latest` then, and the coordinator is its partition's only writer, so its
//! chunks all land at or after `S`. Let `K` be the keys `latest` holds at the start. Take any key
//! `k`:
//! - `k` has a record at or after `S`: the last one is the same in both replays (`x ≤ S`).
//! - `k` has none. Then `k ∉ K`: the chunk cursor walks every key in order and moves past a
//!   key of `K` only by emitting its value (a record at or after `S`), or because `latest` no
//!   longer holds it — removed by a tombstone replayed after the start, again a record at or
//!   after `S`; a failed chunk rewinds the cursor, so its keys are walked again. So `k` was not
//!   in the image at `S`: its last record below `S`, if any, is a tombstone, and a replay from
//!   `x` sees that tombstone or nothing of `k`. Absent both ways. ∎
//!
//! Other writes go on between chunks, and that is fine: a chunk holds the values current when
//! it is emitted, and a later write of a key lands later in the log and wins in every replay
//! (first case above). Keys created after the start may or may not be emitted: either way their
//! records are at or after `S`.
//!
//! A chunk is read from `latest`, which holds only replayed records, so it must not share a
//! batch with records decided in the same call (they would come before it and be undone by
//! it): a chunk is always a batch of its own, emitted by `tick` only when the timers wrote
//! nothing.
//!
//! ## When (purely from counts)
//!
//! `replayed_since_start` counts the records replayed since the last snapshot started (on a
//! load: since the log start, which stands in for the last snapshot's start — the log does not
//! record it, and it is at most a segment below). A snapshot starts when that exceeds
//! `max(snapshot_min_records, 2 × image records)`: it writes `I` records (the image) only after
//! at least `max(floor, 2I) − I ≥ I` others, so snapshots are at most half of what is written,
//! and a small partition does not snapshot before `snapshot_min_records`.
//!
//! ## Chunks and pacing
//!
//! A chunk holds up to `snapshot_chunk_records` records and `snapshot_chunk_bytes` encoded bytes
//! (at least one record), keys in order: every group's metadata, then every committed offset. A
//! chunk is emitted only when everything before it is below the high watermark (the first once
//! the high watermark reaches `S`), so a snapshot never has more than one chunk uncommitted and
//! goes at the pace of replication. `next_deadline` is "now" while a chunk or the snapshot's
//! start is ready, and says nothing while a chunk waits for the high watermark (its advance
//! comes through `on_high_watermark`).
//!
//! ## Failures
//!
//! A chunk whose append failed rewinds the cursor to where the chunk began and the snapshot
//! waits `snapshot_retry_backoff_ms`; `S` stays (the chunks already written are ordinary records
//! of current values, and the rewound keys are emitted again with their values then). Unloading
//! drops the snapshot: a partial one is harmless for the same reason, and the next coordinator
//! counts from its own load. Nothing below `S` is reported superseded until the snapshot is
//! complete, and the offset reported is always below the high watermark.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

use super::records::{GroupRecord, OffsetCommitKey};
use super::{GroupCoordinator, Now, Out};
use crate::types::{Instant, Offset};

/// The coordinator's snapshot bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    /// Records replayed since the last snapshot started (or since the log start).
    pub replayed_since_start: u64,
    /// `latest.record_count()`, kept up to date by replay (asserted in `check_invariants`).
    pub image_records: usize,
    /// The snapshot being written.
    current: Option<Snapshot>,
    /// Snapshots completed by this coordinator (for tests and logs).
    pub completed: u64,
}

/// One snapshot in progress.
#[derive(Debug)]
struct Snapshot {
    /// `S`: replaying from any offset at or below it gives the whole image once complete.
    start: Offset,
    /// The next key to emit.
    cursor: Cursor,
    /// Where the chunk out for append began: the cursor goes back there if the append fails.
    appending: Option<Cursor>,
    /// The offset after the last chunk appended (`start` before any): everything the snapshot
    /// wrote is committed once the high watermark reaches it.
    end: Offset,
    /// No chunk before this (after a failed append).
    not_before: Option<Instant>,
}

/// A position in the image's keys: every group's metadata, then every committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    /// GroupMetadata of the groups after this one (`None`: from the first).
    Groups(Option<String>),
    /// OffsetCommits after this key (`None`: from the first).
    Offsets(Option<OffsetCommitKey>),
    /// Every key was emitted.
    Done,
}

impl Snapshot {
    /// Whether a chunk may be emitted now.
    fn chunk_ready(&self, now: Instant, high_watermark: Offset) -> bool {
        self.appending.is_none()
            && self.cursor != Cursor::Done
            && self.end <= high_watermark
            && self.not_before.is_none_or(|at| now >= at)
    }

    /// Whether everything was emitted, appended and committed.
    fn complete(&self, high_watermark: Offset) -> bool {
        self.appending.is_none() && self.cursor == Cursor::Done && self.end <= high_watermark
    }
}

impl GroupCoordinator {
    /// Whether enough was replayed since the last snapshot started to start another.
    fn snapshot_due(&self) -> bool {
        let s = &self.snapshots;
        let threshold = self
            .config
            .snapshot_min_records
            .max((s.image_records as u64).saturating_mul(2));
        s.current.is_none() && s.replayed_since_start > threshold
    }

    /// Counts replayed records (see the module docs); `delta` is how the image's record count
    /// changed.
    pub(super) fn on_replayed_for_snapshot(&mut self, records: usize, delta: isize) {
        let s = &mut self.snapshots;
        s.replayed_since_start += records as u64;
        s.image_records = s
            .image_records
            .checked_add_signed(delta)
            .expect("the image never holds fewer than zero records");
    }

    /// From `tick`, after the timers: starts a snapshot if one is due, emits its next chunk if
    /// one is ready (as the call's only records), reports it complete.
    pub(super) fn maybe_snapshot(&mut self, now: Now, out: &mut Out) {
        if !out.records.is_empty() {
            return; // A chunk is a batch of its own; the next tick comes at once.
        }
        if self.snapshot_due() {
            let start = self.last_replayed.map_or(Offset::ZERO, Offset::next);
            self.snapshots.replayed_since_start = 0;
            self.snapshots.current = Some(Snapshot {
                start,
                cursor: Cursor::Groups(None),
                appending: None,
                end: start,
                not_before: None,
            });
        }
        let Some(snapshot) = &self.snapshots.current else {
            return;
        };
        if snapshot.chunk_ready(now.instant, self.high_watermark) {
            let from = snapshot.cursor.clone();
            let (records, next) = self.chunk_from(&from);
            let snapshot = self.snapshots.current.as_mut().expect("checked above");
            snapshot.cursor = next;
            if !records.is_empty() {
                snapshot.appending = Some(from);
                out.records = records;
                out.snapshot_chunk = true;
            }
        }
        self.maybe_complete_snapshot(out);
    }

    /// Reports the snapshot superseding what is below its start once it is complete.
    pub(super) fn maybe_complete_snapshot(&mut self, out: &mut Out) {
        let Some(snapshot) = &self.snapshots.current else {
            return;
        };
        if !snapshot.complete(self.high_watermark) {
            return;
        }
        assert!(
            snapshot.start <= self.high_watermark,
            "only committed offsets are reported superseded"
        );
        out.superseded_below = Some(snapshot.start);
        self.snapshots.current = None;
        self.snapshots.completed += 1;
    }

    /// The chunk out for append was appended; its batch ends at `last_offset`.
    pub(super) fn on_snapshot_chunk_appended(&mut self, last_offset: Offset) {
        let snapshot = self
            .snapshots
            .current
            .as_mut()
            .expect("a chunk belongs to a snapshot in progress");
        assert!(snapshot.appending.take().is_some(), "a chunk was out");
        assert!(
            last_offset >= snapshot.start,
            "a chunk lands at or after the snapshot's start {}: {last_offset}",
            snapshot.start
        );
        snapshot.end = last_offset.next();
    }

    /// The chunk out for append failed: its keys are walked again after a pause.
    pub(super) fn on_snapshot_chunk_failed(&mut self, now: Now) {
        let snapshot = self
            .snapshots
            .current
            .as_mut()
            .expect("a chunk belongs to a snapshot in progress");
        snapshot.cursor = snapshot.appending.take().expect("a chunk was out");
        snapshot.not_before = Some(
            now.instant
                .saturating_add_millis(self.config.snapshot_retry_backoff_ms),
        );
    }

    /// Unload: a partial snapshot is dropped (harmless, see the module docs).
    pub(super) fn drop_snapshot(&mut self) {
        self.snapshots.current = None;
    }

    /// When `tick` next has snapshot work: now if a snapshot may start or a chunk may go (or
    /// when its retry pause ends); `None` while it waits for the high watermark.
    pub(super) fn snapshot_deadline(&self) -> Option<Instant> {
        if self.snapshot_due() {
            return Some(self.last_now);
        }
        let snapshot = self.snapshots.current.as_ref()?;
        if snapshot.appending.is_some() || snapshot.end > self.high_watermark {
            return None;
        }
        if snapshot.cursor == Cursor::Done {
            return Some(self.last_now); // complete: reported by the next tick
        }
        Some(
            snapshot
                .not_before
                .unwrap_or(self.last_now)
                .max(self.last_now),
        )
    }

    /// The start of the snapshot in progress, if any (for tests and logs).
    pub fn snapshot_start(&self) -> Option<Offset> {
        self.snapshots.current.as_ref().map(|s| s.start)
    }

    /// Snapshots this coordinator completed.
    pub fn snapshots_completed(&self) -> u64 {
        self.snapshots.completed
    }

    /// The records of the chunk that starts at `from`, with the cursor after it.
    fn chunk_from(&self, from: &Cursor) -> (Vec<GroupRecord>, Cursor) {
        let mut chunk = Chunk {
            records: Vec::new(),
            bytes: 0,
            max_records: self.config.snapshot_chunk_records.max(1),
            max_bytes: self.config.snapshot_chunk_bytes,
        };
        if let Cursor::Groups(after) = from {
            let range = match after {
                Some(id) => self
                    .latest
                    .groups
                    .range::<String, _>((Excluded(id), Unbounded)),
                None => self.latest.groups.range::<String, _>(..),
            };
            let mut last = after.clone();
            for (id, value) in range {
                let record = GroupRecord::GroupMetadata {
                    group: id.clone(),
                    value: Some(value.clone()),
                };
                if !chunk.take(record) {
                    return (chunk.records, Cursor::Groups(last));
                }
                last = Some(id.clone());
            }
        }
        let after = match from {
            Cursor::Groups(_) => None,
            Cursor::Offsets(after) => after.as_ref(),
            Cursor::Done => return (chunk.records, Cursor::Done),
        };
        let mut last = after.cloned();
        for (key, value) in offsets_after(&self.latest.offsets, after) {
            let record = GroupRecord::OffsetCommit {
                key: key.clone(),
                value: Some(value.clone()),
            };
            if !chunk.take(record) {
                return (chunk.records, Cursor::Offsets(last));
            }
            last = Some(key);
        }
        (chunk.records, Cursor::Done)
    }
}

/// A chunk being filled.
struct Chunk {
    records: Vec<GroupRecord>,
    bytes: usize,
    max_records: usize,
    max_bytes: usize,
}

impl Chunk {
    /// Adds `record` unless the chunk is full; an empty chunk takes any record.
    fn take(&mut self, record: GroupRecord) -> bool {
        let len = record.encoded_len();
        let full = self.records.len() >= self.max_records || self.bytes + len > self.max_bytes;
        if full && !self.records.is_empty() {
            return false;
        }
        self.bytes += len;
        self.records.push(record);
        true
    }
}

/// Every committed offset after `after` (all with `None`), in key order.
fn offsets_after<'a>(
    offsets: &'a BTreeMap<String, super::GroupOffsets>,
    after: Option<&'a OffsetCommitKey>,
) -> impl Iterator<Item = (OffsetCommitKey, &'a super::records::OffsetCommitValue)> + 'a {
    let groups = match after {
        Some(k) => offsets.range::<String, _>((std::ops::Bound::Included(&k.group), Unbounded)),
        None => offsets.range::<String, _>(..),
    };
    groups.flat_map(move |(group, slots)| {
        let slots = match after {
            Some(k) if *group == k.group => slots
                .range::<(String, i32), _>((Excluded(&(k.topic.clone(), k.partition)), Unbounded)),
            _ => slots.range::<(String, i32), _>(..),
        };
        slots.map(move |((topic, partition), value)| {
            (
                OffsetCommitKey {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                },
                value,
            )
        })
    })
}
