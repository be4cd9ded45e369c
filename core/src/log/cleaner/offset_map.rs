//! The offset map of one cleaning: for every key in the dirty section, the offset of its newest
//! record. Full keys, no hashing (Kafka's `SkimpyOffsetMap` keeps MD5 digests, so a collision
//! could drop a distinct key's latest value; we spend the memory instead). A `BTreeMap`, so
//! nothing depends on a hasher's seed.
//!
//! Memory is bounded by a byte budget (Kafka's `log.cleaner.dedupe.buffer.size`): each entry
//! counts its key's length plus [`ENTRY_OVERHEAD`]. The map is filled a batch at a time; a batch
//! whose new keys would not fit is not added, and the dirty section the cleaning covers ends
//! where that batch starts ([`OffsetMap::end`]); the rest stays dirty for the next cleaning.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::types::Offset;

/// What one entry costs besides its key: the `Bytes` handle, the offset and the tree's share.
pub const ENTRY_OVERHEAD: usize = 64;

/// Key → newest offset over the batches added so far, which cover `[start, end)`.
#[derive(Debug)]
pub struct OffsetMap {
    entries: BTreeMap<Bytes, Offset>,
    budget_bytes: usize,
    used_bytes: usize,
    start: Offset,
    end: Offset,
}

impl OffsetMap {
    /// An empty map of the dirty section that starts at `start`.
    pub fn new(start: Offset, budget_bytes: usize) -> OffsetMap {
        OffsetMap {
            entries: BTreeMap::new(),
            budget_bytes,
            used_bytes: 0,
            start,
            end: start,
        }
    }

    /// Adds one batch's keyed records (`(key, offset)`, offsets increasing, all at or after the
    /// previous batch's) and extends the covered range to `batch_end` (the batch's next offset).
    /// Refuses (returns `false`, changing nothing) if the batch's new keys would take the map
    /// over its budget, unless the map is empty: a cleaning always makes progress.
    pub fn add_batch<'a>(
        &mut self,
        records: impl Iterator<Item = (&'a Bytes, Offset)> + Clone,
        batch_end: Offset,
    ) -> bool {
        assert!(
            batch_end >= self.end,
            "batches are added in offset order: {batch_end} after {}",
            self.end
        );
        let mut new_keys: Vec<&Bytes> = records
            .clone()
            .map(|(k, _)| k)
            .filter(|k| !self.entries.contains_key(*k))
            .collect();
        new_keys.sort();
        new_keys.dedup();
        let need: usize = new_keys.iter().map(|k| k.len() + ENTRY_OVERHEAD).sum();
        if !self.entries.is_empty() && self.used_bytes + need > self.budget_bytes {
            return false;
        }
        for (key, offset) in records {
            let slot = self.entries.entry(key.clone()).or_insert(offset);
            assert!(
                offset >= *slot,
                "offsets of a key only grow: {offset} after {slot}"
            );
            *slot = offset;
        }
        self.used_bytes += need;
        self.end = batch_end;
        true
    }

    /// Extends the covered range to `end` (which holds no batch the map has not seen: the end
    /// of the cleanable range once every batch before it was added).
    pub fn cover_to(&mut self, end: Offset) {
        assert!(end >= self.end, "the covered range only grows");
        self.end = end;
    }

    /// The newest offset of `key` in the covered range.
    pub fn latest(&self, key: &[u8]) -> Option<Offset> {
        self.entries.get(key).copied()
    }

    /// First offset of the covered range (the first dirty offset).
    pub fn start(&self) -> Offset {
        self.start
    }

    /// End of the covered range: the next cleaning's first dirty offset.
    pub fn end(&self) -> Offset {
        self.end
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the budget in use.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}
