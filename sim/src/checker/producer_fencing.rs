//! producer-state: what the broker's idempotent-producer rules (KIP-98, KIP-360; the rules table
//! in `core/src/log/producer_state.rs`) forbid, judged on the producer fields of the batches the
//! reads returned ([`crate::history::BatchStamp`]: `producerId`, `producerEpoch`,
//! `baseSequence` of each v2 batch header).
//!
//! Clients that resend a possibly written batch under a bumped epoch (librdkafka, the Java
//! client; `Call::Send::resends`) may leave one copy of it per epoch, which the broker cannot
//! prevent: the duplicate checker allows exactly that (see [`cross_epoch_copies`]). What the
//! broker must prevent, and this checker reports:
//!
//! - **same-epoch-duplicate**: a value in the log twice under one producer id and epoch. Every
//!   retry under one identity carries the same sequence, so the second copy is a retry that the
//!   deduplication window (the last five batches) should have answered with the first's offsets.
//! - **fenced-epoch-write**: a batch of a producer id under an epoch older than one of its batches
//!   earlier in the partition. Once a newer epoch is written the broker answers an older one
//!   `INVALID_PRODUCER_EPOCH` (a late retry of a fenced, "zombie", epoch).
//! - **sequence-gap**: two batches of a producer id next to each other in the partition's
//!   history of that producer, where the later one neither continues the sequence of the earlier
//!   (same epoch: `baseSequence` = last sequence + 1, wrapping at `i32::MAX`) nor starts a newer
//!   epoch at 0. The broker answers `OUT_OF_ORDER_SEQUENCE_NUMBER` to both. Judged only where the
//!   reads cover every offset between the two batches (offsets are dense in our logs), so a
//!   partial read never reports a gap.
//! - **sequence-refused**: the producers saw `OUT_OF_ORDER_SEQUENCE_NUMBER` or
//!   `UNKNOWN_PRODUCER_ID` on a partition's first unacknowledged batch. Every batch before it
//!   under its identity was acknowledged, hence is in every later leader's log (and a client
//!   never routes back to an older leader epoch than one it saw, KIP-320, so never to a deposed
//!   leader that has not learnt it yet: `strata_client::metadata`), so a broker that
//!   keeps its producer state (no `producer.id.expiration.ms` in a run, no acknowledged data lost)
//!   either appends the batch or answers it as a duplicate (the client never has more than five
//!   batches unresolved). Counted by the clients (`strata_client::sequencer`), not in the
//!   history: a too small deduplication window shows up here even against clients that never
//!   resend.
//!
//! Producer id expiration would make the first three legitimate (a forgotten producer is
//! accepted at any sequence and epoch); the simulated runs are far shorter than the default
//! expiration of a day.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::Offset;

use super::Analysis;
use crate::history::{BatchStamp, Call, OpIndex, OpKind, TopicPartition, Value};

/// A value twice (or more) under one producer id and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SameEpochDuplicate {
    pub value: Value,
    pub tp: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Every offset the value was read at under that identity, with a read that showed it.
    pub at: Vec<(Offset, OpIndex)>,
}

/// A batch under an older epoch after a batch of a newer epoch of the same producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedEpochWrite {
    pub tp: TopicPartition,
    /// The earlier batch, of the newer epoch, and a read that showed it.
    pub newer: (BatchStamp, OpIndex),
    /// The later batch, of the older epoch.
    pub older: (BatchStamp, OpIndex),
}

/// Two consecutive batches of a producer id whose sequences do not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceGap {
    pub tp: TopicPartition,
    pub previous: (BatchStamp, OpIndex),
    pub next: (BatchStamp, OpIndex),
}

/// Sequence refusals the clients counted (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceRefused {
    pub count: u64,
}

impl SameEpochDuplicate {
    pub fn ops(&self) -> Vec<OpIndex> {
        self.at.iter().map(|(_, op)| *op).collect()
    }
}

impl FencedEpochWrite {
    pub fn ops(&self) -> Vec<OpIndex> {
        vec![self.newer.1, self.older.1]
    }
}

impl SequenceGap {
    pub fn ops(&self) -> Vec<OpIndex> {
        vec![self.previous.1, self.next.1]
    }
}

fn stamp(b: &BatchStamp) -> String {
    format!(
        "{}..{} (producer {} epoch {} sequence {}..{})",
        b.base_offset,
        b.last_offset,
        b.producer_id,
        b.producer_epoch,
        b.base_sequence,
        b.last_sequence()
    )
}

impl fmt::Display for SameEpochDuplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "value {} is in {} {} times under producer {} epoch {}:",
            self.value,
            self.tp,
            self.at.len(),
            self.producer_id,
            self.producer_epoch
        )?;
        for (offset, op) in &self.at {
            write!(f, " @{offset} (read {op})")?;
        }
        Ok(())
    }
}

impl fmt::Display for FencedEpochWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: batch {} (read {}) was written after batch {} (read {}) of a newer epoch",
            self.tp,
            stamp(&self.older.0),
            self.older.1,
            stamp(&self.newer.0),
            self.newer.1
        )
    }
}

impl fmt::Display for SequenceGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: batch {} (read {}) does not follow batch {} (read {})",
            self.tp,
            stamp(&self.next.0),
            self.next.1,
            stamp(&self.previous.0),
            self.previous.1
        )
    }
}

impl fmt::Display for SequenceRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the brokers answered OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID {} time(s) to a partition's first unacknowledged batch (replay with STRATA_SIM_LOG=strata_client=warn to see where)",
            self.count
        )
    }
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub same_epoch_duplicates: Vec<SameEpochDuplicate>,
    pub fenced_epoch_writes: Vec<FencedEpochWrite>,
    pub sequence_gaps: Vec<SequenceGap>,
}

/// Every batch of a partition any read returned, by base offset, with the first read that
/// returned it.
pub type Batches = BTreeMap<Offset, (BatchStamp, OpIndex)>;

/// The batches the reads returned, per partition.
pub fn batches(analysis: &Analysis<'_>) -> BTreeMap<TopicPartition, Batches> {
    let mut out: BTreeMap<TopicPartition, Batches> = BTreeMap::new();
    for op in analysis.history.completed() {
        let (Call::Poll { tp, .. }, OpKind::Ok) = (op.call(), op.outcome()) else {
            continue;
        };
        let Some(result) = op.poll_result() else {
            continue;
        };
        if result.batches.is_empty() {
            continue;
        }
        if !out.contains_key(tp) {
            out.insert(tp.clone(), BTreeMap::new());
        }
        let partition = out.get_mut(tp).expect("inserted above");
        for b in &result.batches {
            partition.entry(b.base_offset).or_insert((*b, op.index()));
        }
    }
    out
}

/// The batch holding `offset`, if a read returned it.
pub fn batch_at(batches: &Batches, offset: Offset) -> Option<&(BatchStamp, OpIndex)> {
    batches
        .range(..=offset)
        .next_back()
        .map(|(_, b)| b)
        .filter(|(b, _)| b.contains(offset))
}

/// Where one value was read, by (producer id, epoch) of the batch it came in.
type Copies = BTreeMap<(i64, i16), Vec<(Offset, OpIndex)>>;

pub fn check(analysis: &Analysis<'_>) -> Found {
    let batches = batches(analysis);
    let mut found = Found::default();
    for (tp, partition) in &batches {
        check_order(tp, partition, &mut found);
    }
    for (tp, offsets) in &analysis.observed {
        let Some(partition) = batches.get(tp) else {
            continue;
        };
        // value -> (producer id, epoch) -> offsets read at.
        let mut copies: BTreeMap<Value, Copies> = BTreeMap::new();
        for (offset, values) in offsets {
            let Some((b, read)) = batch_at(partition, *offset) else {
                continue;
            };
            if b.producer_id < 0 {
                continue;
            }
            for value in values.keys() {
                copies
                    .entry(*value)
                    .or_default()
                    .entry((b.producer_id, b.producer_epoch))
                    .or_default()
                    .push((*offset, *read));
            }
        }
        for (value, identities) in copies {
            for ((producer_id, producer_epoch), at) in identities {
                if at.len() > 1 {
                    found.same_epoch_duplicates.push(SameEpochDuplicate {
                        value,
                        tp: tp.clone(),
                        producer_id,
                        producer_epoch,
                        at,
                    });
                }
            }
        }
    }
    found
}

/// Epoch fencing and sequence continuity along one partition's batches, per producer id.
fn check_order(tp: &TopicPartition, partition: &Batches, found: &mut Found) {
    // Per producer id: the newest epoch's batch so far, and the previous batch if every offset
    // since it is covered by a read.
    let mut newest: BTreeMap<i64, (BatchStamp, OpIndex)> = BTreeMap::new();
    let mut previous: BTreeMap<i64, (BatchStamp, OpIndex)> = BTreeMap::new();
    let mut expected_base: Option<Offset> = None;
    for (b, read) in partition.values() {
        if expected_base.is_some_and(|e| e != b.base_offset) {
            // A hole in what the reads saw: the previous batch of a producer may not be its
            // predecessor any more.
            previous.clear();
        }
        expected_base = Some(Offset(b.last_offset.0 + 1));
        if b.producer_id < 0 {
            continue;
        }
        let this = (*b, *read);
        match newest.get(&b.producer_id) {
            Some((n, _)) if n.producer_epoch > b.producer_epoch => {
                found.fenced_epoch_writes.push(FencedEpochWrite {
                    tp: tp.clone(),
                    newer: newest[&b.producer_id],
                    older: this,
                });
                // Sequences go on from the newer epoch's batches.
                continue;
            }
            Some((n, _)) if n.producer_epoch == b.producer_epoch => {}
            _ => {
                newest.insert(b.producer_id, this);
            }
        }
        if let Some((p, _)) = previous.get(&b.producer_id) {
            let follows = if p.producer_epoch == b.producer_epoch {
                crate::history::wrapping_sequence(p.last_sequence(), 1) == b.base_sequence
            } else {
                // A newer epoch restarts at 0 (an older one is a fenced write, above).
                b.base_sequence == 0
            };
            if !follows {
                found.sequence_gaps.push(SequenceGap {
                    tp: tp.clone(),
                    previous: previous[&b.producer_id],
                    next: this,
                });
            }
        }
        previous.insert(b.producer_id, this);
    }
}

/// The refusals the clients counted, as an anomaly if there were any.
pub fn check_refusals(count: u64) -> Option<SequenceRefused> {
    (count > 0).then_some(SequenceRefused { count })
}

/// The copies of a value the duplicate checker must allow: every position of it is in `tp`,
/// in a batch of one producer id, one copy per epoch, epochs growing with the offset, and every
/// send of it came from a resending producer (`Call::Send::resends`) that may have written it
/// before resending: the send ended indefinite, or was acknowledged as a possible duplicate.
pub fn cross_epoch_copies(
    analysis: &Analysis<'_>,
    batches: &BTreeMap<TopicPartition, Batches>,
    value: Value,
    positions: &[(TopicPartition, Offset)],
) -> bool {
    let Some((tp, _)) = positions.first() else {
        return false;
    };
    if positions.iter().any(|(t, _)| t != tp) {
        return false;
    }
    let Some(partition) = batches.get(tp) else {
        return false;
    };
    let mut sorted: Vec<Offset> = positions.iter().map(|(_, o)| *o).collect();
    sorted.sort();
    let mut identity: Option<(i64, i16)> = None;
    for offset in sorted {
        let Some((b, _)) = batch_at(partition, offset) else {
            return false;
        };
        if b.producer_id < 0 {
            return false;
        }
        match identity {
            Some((pid, epoch)) if pid != b.producer_id || epoch >= b.producer_epoch => {
                return false;
            }
            _ => identity = Some((b.producer_id, b.producer_epoch)),
        }
    }
    let Some(sends) = analysis.sends_of.get(&value) else {
        return false;
    };
    sends.iter().all(|op| {
        let Call::Send { resends, .. } = op.call() else {
            return false;
        };
        let resent = match op.outcome() {
            OpKind::Info => true,
            OpKind::Ok => op.send_ack().is_some_and(|a| a.possible_duplicate),
            OpKind::Fail | OpKind::Invoke => false,
        };
        *resends && resent
    })
}

#[cfg(test)]
#[path = "tests/producer_fencing.rs"]
mod tests;
