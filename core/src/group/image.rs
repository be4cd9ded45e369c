//! What the offsets partition's records replay to: committed offsets and each group's last
//! GroupMetadata. The only state of the coordinator that survives a failover; it changes only by
//! [`GroupImage::apply`] of records read from (or appended to) the log.

use std::collections::BTreeMap;

use super::records::{GroupMetadataValue, GroupRecord, OffsetCommitValue};

/// Offsets of one group, by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), OffsetCommitValue>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupImage {
    /// Committed offsets by group (a group with none is absent).
    pub offsets: BTreeMap<String, GroupOffsets>,
    /// The last GroupMetadata of each group (a tombstone removes it).
    pub groups: BTreeMap<String, GroupMetadataValue>,
}

impl GroupImage {
    /// Applies one record (Kafka's `GroupMetadataManager.replay` / `OffsetMetadataManager.replay`
    /// for classic groups: the last value of a key wins, a tombstone removes it). Returns how
    /// many records the image holds more than before ([`GroupImage::record_count`]: -1, 0 or 1).
    ///
    /// Each record touches only its own key: the image is a function of the last record of
    /// every key, which is what makes a snapshot (re-emitting every key's value) a stand-in for
    /// everything before it (see `snapshot.rs`).
    pub fn apply(&mut self, record: &GroupRecord) -> isize {
        match record {
            GroupRecord::OffsetCommit { key, value } => {
                let slot = (key.topic.clone(), key.partition);
                match value {
                    Some(v) => {
                        let old = self
                            .offsets
                            .entry(key.group.clone())
                            .or_default()
                            .insert(slot, v.clone());
                        if old.is_none() { 1 } else { 0 }
                    }
                    None => {
                        let Some(offsets) = self.offsets.get_mut(&key.group) else {
                            return 0;
                        };
                        let removed = offsets.remove(&slot).is_some();
                        if offsets.is_empty() {
                            self.offsets.remove(&key.group);
                        }
                        if removed { -1 } else { 0 }
                    }
                }
            }
            GroupRecord::GroupMetadata { group, value } => match value {
                // Log data is not ours to assert on: the generation rule is asserted where
                // records are emitted (`Group::metadata_record`).
                Some(v) => {
                    if self.groups.insert(group.clone(), v.clone()).is_none() {
                        1
                    } else {
                        0
                    }
                }
                None => {
                    if self.groups.remove(group).is_some() {
                        -1
                    } else {
                        0
                    }
                }
            },
        }
    }

    /// How many records the image holds: one GroupMetadata per group with metadata, one
    /// OffsetCommit per committed offset. A snapshot writes exactly these.
    pub fn record_count(&self) -> usize {
        self.groups.len() + self.offsets.values().map(BTreeMap::len).sum::<usize>()
    }

    /// The group ids the image knows (with metadata, offsets or both).
    pub fn group_ids(&self) -> impl Iterator<Item = &String> {
        let mut ids: Vec<&String> = self.groups.keys().chain(self.offsets.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
    }

    pub fn offset(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetCommitValue> {
        self.offsets.get(group)?.get(&(topic.to_owned(), partition))
    }
}
