//! The harness's model of one `__consumer_offsets` partition for `group_coordinator`: the
//! batches appended (as bytes, decoded back), the log end and the high watermark, and the
//! images they replay to — computed here by [`apply`], written from Kafka's rule (the last
//! value of a key wins, a tombstone removes it) rather than by calling the coordinator's own
//! `GroupImage::apply`.
//!
//! Failover helpers: a new leader may lack the uncommitted tail ([`Log::truncate_uncommitted`]),
//! and the log cleaner compacts the committed prefix ([`Log::compact`]: only the last record of
//! each key survives, tombstones optionally too; batches keep their last offset, emptied ones
//! go), so a load may read a sparse log.

use std::collections::{BTreeMap, BTreeSet};

use strata_core::group::{GroupImage, GroupRecord};
use strata_core::types::Offset;

/// One record as the log holds it: key bytes and value bytes (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// What it decodes to.
    pub record: GroupRecord,
}

impl Entry {
    /// Decodes `key` / `value`; they must decode (the harness writes only records).
    pub fn new(key: Vec<u8>, value: Option<Vec<u8>>) -> Entry {
        let record = GroupRecord::decode(&key, value.as_deref())
            .unwrap_or_else(|e| panic!("a record in the log decodes: {e}"));
        Entry { key, value, record }
    }

    /// A record the coordinator wrote, through core's encoding: it must read back the same.
    pub fn written(record: &GroupRecord) -> Entry {
        let entry = Entry::new(record.encode_key(), record.encode_value());
        assert_eq!(
            &entry.record, record,
            "a written record reads back the same"
        );
        entry
    }
}

/// One batch: its last offset and its records (offsets `last - len + 1 ..= last` before
/// compaction).
#[derive(Debug, Clone)]
pub struct Batch {
    pub last: Offset,
    pub entries: Vec<Entry>,
}

impl Batch {
    pub fn records(&self) -> impl Iterator<Item = &GroupRecord> {
        self.entries.iter().map(|e| &e.record)
    }

    /// The records decoded again from the bytes, as a load reads them (and checked against
    /// the first decoding).
    pub fn reread(&self) -> Vec<GroupRecord> {
        self.entries
            .iter()
            .map(|e| {
                let again = Entry::new(e.key.clone(), e.value.clone()).record;
                assert_eq!(again, e.record, "a record decodes the same twice");
                again
            })
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct Log {
    pub batches: Vec<Batch>,
    pub log_end: i64,
    pub high_watermark: i64,
}

impl Log {
    /// Appends one batch at the log end; returns its last offset.
    pub fn append(&mut self, entries: Vec<Entry>) -> Offset {
        assert!(!entries.is_empty(), "no empty batch is appended");
        self.log_end += entries.len() as i64;
        let last = Offset(self.log_end - 1);
        self.batches.push(Batch { last, entries });
        last
    }

    pub fn is_committed(&self, batch: &Batch) -> bool {
        batch.last.0 < self.high_watermark
    }

    pub fn committed(&self) -> impl Iterator<Item = &Batch> {
        self.batches.iter().filter(|b| self.is_committed(b))
    }

    pub fn uncommitted(&self) -> impl Iterator<Item = &Batch> {
        self.batches.iter().filter(|b| !self.is_committed(b))
    }

    /// The end of the first batch not yet below the high watermark.
    pub fn next_batch_end(&self) -> Option<i64> {
        self.uncommitted().next().map(|b| b.last.0 + 1)
    }

    /// What the committed batches (or all) replay to.
    pub fn image(&self, committed_only: bool) -> GroupImage {
        let mut image = GroupImage::default();
        for batch in &self.batches {
            if committed_only && !self.is_committed(batch) {
                continue;
            }
            for record in batch.records() {
                apply(&mut image, record);
            }
        }
        image
    }

    /// The batch whose last offset is `last`.
    pub fn batch(&self, last: Offset) -> Option<&Batch> {
        self.batches.iter().find(|b| b.last == last)
    }

    /// A new leader without the uncommitted tail: the log ends at the high watermark (always
    /// a batch boundary here).
    pub fn truncate_uncommitted(&mut self) {
        let hw = self.high_watermark;
        self.batches.retain(|b| b.last.0 < hw);
        self.log_end = hw;
    }

    /// The cleaner over the committed prefix: a record survives if no later committed record
    /// has its key; surviving tombstones go too with `drop_tombstones` (nothing older of their
    /// key is left to delete).
    pub fn compact(&mut self, drop_tombstones: bool) {
        let hw = self.high_watermark;
        let mut seen: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut kept: Vec<Batch> = Vec::new();
        for batch in self.batches.iter().rev() {
            if batch.last.0 >= hw {
                kept.push(batch.clone());
                continue;
            }
            let mut entries: Vec<Entry> = Vec::new();
            for entry in batch.entries.iter().rev() {
                let newest = seen.insert(entry.key.clone());
                if newest && (entry.value.is_some() || !drop_tombstones) {
                    entries.push(entry.clone());
                }
            }
            if !entries.is_empty() {
                entries.reverse();
                kept.push(Batch {
                    last: batch.last,
                    entries,
                });
            }
        }
        kept.reverse();
        self.batches = kept;
    }

    /// Per group, the generation of its last GroupMetadata in the log.
    pub fn generations(&self) -> BTreeMap<String, i32> {
        self.image(false)
            .groups
            .into_iter()
            .map(|(g, v)| (g, v.generation))
            .collect()
    }
}

/// Kafka's replay of one record (`GroupMetadataManager.replay` / `OffsetMetadataManager.replay`
/// for classic groups): the last value of a key wins, a tombstone removes it.
pub fn apply(image: &mut GroupImage, record: &GroupRecord) {
    match record {
        GroupRecord::OffsetCommit { key, value } => {
            let slot = (key.topic.clone(), key.partition);
            match value {
                Some(v) => {
                    image
                        .offsets
                        .entry(key.group.clone())
                        .or_default()
                        .insert(slot, v.clone());
                }
                None => {
                    let emptied = image.offsets.get_mut(&key.group).is_some_and(|o| {
                        o.remove(&slot);
                        o.is_empty()
                    });
                    if emptied {
                        image.offsets.remove(&key.group);
                    }
                }
            }
        }
        GroupRecord::GroupMetadata { group, value } => match value {
            Some(v) => {
                image.groups.insert(group.clone(), v.clone());
            }
            None => {
                image.groups.remove(group);
            }
        },
    }
}
