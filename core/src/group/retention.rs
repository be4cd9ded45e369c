//! Offsets retention (KIP-211; Kafka's `OffsetMetadataManager.cleanupExpiredOffsets`,
//! `ClassicGroup.offsetExpirationCondition`), run by `tick` every
//! `offsets.retention.check.interval.ms`.
//!
//! - A group with a protocol type (it had members) keeps its offsets while it has members;
//!   once Empty, they expire `offsets.retention.minutes` after the group *became* Empty
//!   (its state timestamp; the commit time if the record predates it).
//! - A Stable "consumer" group expires, by commit time, offsets of topics none of its
//!   members subscribes to (KIP-496).
//! - A standalone group (no protocol type: generation -1 commits only) expires each offset by
//!   its commit time.
//! - A v1 record's explicit `expireTimestamp` wins.
//!
//! Expiry writes tombstones. An Empty group with no offsets left becomes Dead: its metadata is
//! tombstoned (if the log holds any, counting the records of the same call) and it is
//! forgotten. Invariant: a group the coordinator forgets has no metadata left in the log.

use super::member::{Group, GroupState};
use super::offsets::subscribed_topics;
use super::records::{GroupRecord, OffsetCommitKey, OffsetCommitValue};
use super::{GroupCoordinator, Now, Out};

/// What an offset's age counts from, if it can expire at all.
enum Base {
    /// The time the group became Empty (or the commit time without one).
    StateChange(Option<i64>),
    CommitTime,
}

fn expiration_base(group: &Group) -> Option<Base> {
    match &group.protocol_type {
        None => Some(Base::CommitTime),
        Some(_) if group.is(GroupState::Empty) => Some(Base::StateChange(group.state_timestamp_ms)),
        Some(t) if t == "consumer" && group.is(GroupState::Stable) => Some(Base::CommitTime),
        Some(_) => None,
    }
}

fn is_expired(value: &OffsetCommitValue, base: &Base, now_ms: i64, retention_ms: i64) -> bool {
    if value.expire_timestamp >= 0 {
        return now_ms >= value.expire_timestamp;
    }
    let from = match base {
        Base::StateChange(Some(at)) => *at,
        Base::StateChange(None) | Base::CommitTime => value.commit_timestamp,
    };
    now_ms.saturating_sub(from) >= retention_ms
}

impl GroupCoordinator {
    /// Whether the log holds metadata of `group_id` once `out`'s records are appended: the
    /// call's last GroupMetadata of the group decides, else `latest`.
    fn has_metadata_after(&self, group_id: &str, out: &Out) -> bool {
        let written = out.records.iter().rev().find_map(|r| match r {
            GroupRecord::GroupMetadata { group, value } if group == group_id => {
                Some(value.is_some())
            }
            _ => None,
        });
        written.unwrap_or_else(|| self.latest.groups.contains_key(group_id))
    }

    pub(super) fn expire_offsets(&mut self, now: Now, out: &mut Out) {
        let retention_ms = self.config.offsets_retention_ms;
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in ids {
            let group = &self.groups[&group_id];
            let Some(base) = expiration_base(group) else {
                continue;
            };
            // In a Stable group only unsubscribed topics expire (unknown: none do).
            let subscribed = match group.state {
                GroupState::Stable => match subscribed_topics(group) {
                    Some(topics) => Some(topics),
                    None => continue,
                },
                _ => None,
            };
            let mut all_expired = true;
            if let Some(offsets) = self.latest.offsets.get(&group_id) {
                for ((topic, partition), value) in offsets {
                    let protected = subscribed.as_ref().is_some_and(|s| s.contains(topic));
                    if !protected && is_expired(value, &base, now.wall_ms, retention_ms) {
                        out.records.push(GroupRecord::OffsetCommit {
                            key: OffsetCommitKey {
                                group: group_id.clone(),
                                topic: topic.clone(),
                                partition: *partition,
                            },
                            value: None,
                        });
                    } else {
                        all_expired = false;
                    }
                }
            }
            if all_expired && group.is(GroupState::Empty) && group.pending_members.is_empty() {
                // Tombstone whatever metadata the log will hold once this call's records are
                // in: `latest`'s, or a GroupMetadata written earlier in this very call (the
                // same tick's session expiry made the group Empty and wrote it). Otherwise the
                // log keeps a group the coordinator forgot, and a new group of that id would
                // write its generation 0 after it.
                if self.has_metadata_after(&group_id, out) {
                    out.records.push(GroupRecord::GroupMetadata {
                        group: group_id.clone(),
                        value: None,
                    });
                }
                self.groups.remove(&group_id);
            }
        }
    }
}
