//! Which records of a batch survive a cleaning (the rules are in the parent module's docs), and
//! what becomes of the batch: dropped, copied verbatim, or rewritten with its survivors.

use std::collections::BTreeSet;

use crate::batch::BatchHeader;
use crate::types::Offset;

use super::offset_map::OffsetMap;
use super::records::{Record, delete_horizon};

/// What a cleaning knows when it judges a batch.
#[derive(Debug)]
pub struct RetainRules<'a> {
    pub map: &'a OffsetMap,
    /// The cleaning's clock.
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// The last offset of every idempotent producer's last batch in the producer state.
    pub producer_last_offsets: &'a BTreeSet<Offset>,
}

/// What becomes of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFate {
    /// No record survives and no producer needs the batch.
    Drop,
    /// Every record survives and the delete horizon stays: the bytes are copied as they are.
    Verbatim,
    /// Rewritten with these records (possibly none) and this delete horizon.
    Rewrite {
        records: Vec<Record>,
        delete_horizon_ms: Option<i64>,
    },
}

/// Counts of what the rules removed, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetainStats {
    /// Records with a newer record of the same key.
    pub superseded: u64,
    /// Tombstones whose delete horizon had passed.
    pub expired_tombstones: u64,
    /// Records without a key.
    pub keyless: u64,
}

impl RetainRules<'_> {
    /// Judges one batch of the cleaned range, given its decoded records.
    pub fn judge(
        &self,
        header: &BatchHeader,
        records: Vec<Record>,
        stats: &mut RetainStats,
    ) -> BatchFate {
        if header.is_control() {
            return BatchFate::Verbatim;
        }
        let horizon = delete_horizon(header);
        let horizon_passed = horizon.is_some_and(|h| self.now_ms >= h);
        let total = records.len();
        let survivors: Vec<Record> = records
            .into_iter()
            .filter(|r| self.survives(r, horizon_passed, stats))
            .collect();
        let has_tombstones = survivors.iter().any(|r| r.value.is_none());
        // KIP-534: a batch's tombstones get their horizon on the first cleaning whose offset map
        // covers the whole batch (see the module docs for why a batch beyond the map waits).
        let new_horizon = match horizon {
            None if has_tombstones && header.last_offset() < self.map.end() => {
                Some(self.now_ms.saturating_add(self.delete_retention_ms))
            }
            None => None,
            // A horizon stays once set (also on a batch whose tombstones are gone: harmless).
            Some(h) => Some(h),
        };
        if survivors.len() == total && new_horizon == horizon {
            return BatchFate::Verbatim;
        }
        let last_of_producer =
            header.has_producer_id() && self.producer_last_offsets.contains(&header.last_offset());
        if survivors.is_empty() && !last_of_producer {
            return BatchFate::Drop;
        }
        BatchFate::Rewrite {
            records: survivors,
            delete_horizon_ms: new_horizon,
        }
    }

    fn survives(&self, r: &Record, horizon_passed: bool, stats: &mut RetainStats) -> bool {
        let Some(key) = &r.key else {
            stats.keyless += 1;
            return false;
        };
        if self.map.latest(key).is_some_and(|newest| r.offset < newest) {
            stats.superseded += 1;
            return false;
        }
        if r.value.is_none() && horizon_passed {
            stats.expired_tombstones += 1;
            return false;
        }
        true
    }
}
