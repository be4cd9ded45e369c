//! The compacted topic: the latest value of each key survives compaction, and nothing deleted
//! comes back. Judged on the compacted-topic workload's own history ([`KvHistory`]): keyed sends
//! (values unique per run, tombstones null) and a final read of the whole partition, from the
//! log start to the high watermark, after the heal.
//!
//! Compaction may remove any record that a later record of the same key supersedes, and a
//! tombstone once `delete.retention.ms` passed after its segment was cleaned; it keeps offsets
//! (gaps allowed). So the final read may hold any subset of the log that still contains, for
//! every key, the log's latest record of that key (or nothing, if that record is a tombstone).
//! What this checker guarantees to catch, for every key `k` (an *acknowledged* record is one of
//! an `Ok` send at its base offset plus its index; an *attempted* one is of any send but a
//! definite failure):
//!
//! - **compaction-resurrected**: the read's latest record of `k` is a value at a lower offset
//!   than an acknowledged tombstone of `k`: a deleted value came back (the cleaner dropped the
//!   tombstone before the values it deletes, or lost it). Reported instead of lost-latest.
//! - **compaction-lost-latest**: let `W` be the acknowledged record of `k` with the highest
//!   offset. The read's latest record of `k` must be `W` (same offset and value), or a record at
//!   a higher offset that an attempted, unacknowledged write of `k` could be (same value; any
//!   such tombstone for a tombstone). `k` may also be absent if `W` is a tombstone, or if an
//!   attempted, unacknowledged tombstone of `k` may have followed `W` and been removed.
//! - **compaction-invented**: a read record that no attempted send wrote there: a value no send
//!   carried, or carried under another key, or only by a failed send, or read at another offset
//!   than its acknowledged one; a tombstone of `k` with no unacknowledged attempted tombstone of
//!   `k` and no acknowledged one at that offset.
//! - **compaction-order**: the read's offsets do not strictly increase (one offset twice, or
//!   going back).
//!
//! Without a final read nothing is judged: the run reports the read's failure as a liveness
//! failure. Unacknowledged writes are never required to survive.

use std::collections::BTreeMap;
use std::fmt;

use crate::kv_history::{KvHistory, KvOutcome, KvRead, KvSend, KvValue};

/// The name of every anomaly [`check`] judges.
pub const COMPACTION_ANOMALIES: &[&str] = &[
    "compaction-lost-latest",
    "compaction-resurrected",
    "compaction-invented",
    "compaction-order",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionAnomaly {
    /// The latest acknowledged record of `key` (send `send`) is not what the read ends with.
    LostLatest {
        key: String,
        acked_offset: i64,
        acked_value: KvValue,
        send: usize,
        /// The read's latest record of the key (offset, value), if any.
        found: Option<(i64, KvValue)>,
    },
    /// The read ends `key` with a value older than an acknowledged tombstone (send `send`).
    Resurrected {
        key: String,
        tombstone_offset: i64,
        send: usize,
        found_offset: i64,
        found_value: KvValue,
    },
    /// A read record no attempted send wrote there.
    Invented {
        offset: i64,
        key: String,
        value: KvValue,
        why: String,
    },
    /// The read's offsets went back or repeated.
    Order { offset: i64, previous: i64 },
}

impl CompactionAnomaly {
    pub fn name(&self) -> &'static str {
        match self {
            CompactionAnomaly::LostLatest { .. } => "compaction-lost-latest",
            CompactionAnomaly::Resurrected { .. } => "compaction-resurrected",
            CompactionAnomaly::Invented { .. } => "compaction-invented",
            CompactionAnomaly::Order { .. } => "compaction-order",
        }
    }

    /// The key the anomaly is about, if one.
    pub fn key(&self) -> Option<&str> {
        match self {
            CompactionAnomaly::LostLatest { key, .. }
            | CompactionAnomaly::Resurrected { key, .. }
            | CompactionAnomaly::Invented { key, .. } => Some(key),
            CompactionAnomaly::Order { .. } => None,
        }
    }
}

impl fmt::Display for CompactionAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactionAnomaly::LostLatest {
                key,
                acked_offset,
                acked_value,
                send,
                found,
            } => {
                write!(
                    f,
                    "key {key}: latest acknowledged {acked_value} @{acked_offset} (kv send \
                     {send}), the final read ends the key with "
                )?;
                match found {
                    Some((o, v)) => write!(f, "{v} @{o}"),
                    None => f.write_str("nothing"),
                }
            }
            CompactionAnomaly::Resurrected {
                key,
                tombstone_offset,
                send,
                found_offset,
                found_value,
            } => write!(
                f,
                "key {key}: tombstone acknowledged @{tombstone_offset} (kv send {send}), the \
                 final read ends the key with the older value {found_value} @{found_offset}"
            ),
            CompactionAnomaly::Invented {
                offset,
                key,
                value,
                why,
            } => write!(f, "final read @{offset}: key {key} {value}: {why}"),
            CompactionAnomaly::Order { offset, previous } => {
                write!(f, "final read @{offset} after @{previous}")
            }
        }
    }
}

/// Who may have written what.
struct Writes<'h> {
    /// Per value: the send that carried it and the record's index in the send.
    by_value: BTreeMap<u64, (usize, usize)>,
    /// Per key: every tombstone send (send index, record index).
    tombstones: BTreeMap<&'h str, Vec<(usize, usize)>>,
    sends: &'h [KvSend],
}

impl<'h> Writes<'h> {
    fn new(history: &'h KvHistory) -> Writes<'h> {
        let mut by_value = BTreeMap::new();
        let mut tombstones: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
        for (s, send) in history.sends.iter().enumerate() {
            for (i, r) in send.records.iter().enumerate() {
                match r.value {
                    KvValue::Value(v) => {
                        by_value.insert(v, (s, i));
                    }
                    KvValue::Tombstone => tombstones.entry(&r.key).or_default().push((s, i)),
                }
            }
        }
        Writes {
            by_value,
            tombstones,
            sends: &history.sends,
        }
    }

    /// The acknowledged offset of record `i` of send `s`, if acknowledged with one.
    fn acked_at(&self, s: usize, i: usize) -> Option<i64> {
        match self.sends[s].outcome {
            KvOutcome::Ok(Some(base)) => Some(base + i as i64),
            _ => None,
        }
    }

    /// Some attempted tombstone of `key` has no acknowledged offset: it may be anywhere.
    fn unacked_tombstone(&self, key: &str) -> bool {
        self.tombstones
            .get(key)
            .into_iter()
            .flatten()
            .any(|&(s, i)| self.sends[s].attempted() && self.acked_at(s, i).is_none())
    }

    /// Why no attempted send wrote `r` at its offset (`None`: one may have).
    fn unexplained(&self, r: &KvRead) -> Option<String> {
        match r.value {
            KvValue::Value(v) => self.unexplained_value(r, v),
            KvValue::Tombstone => {
                let sends = self.tombstones.get(r.key.as_str());
                let explained = sends.into_iter().flatten().any(|&(s, i)| {
                    self.sends[s].attempted() && self.acked_at(s, i).is_none_or(|at| at == r.offset)
                });
                (!explained).then(|| {
                    format!(
                        "no attempted tombstone of the key could be there ({} tombstone sends)",
                        sends.map_or(0, Vec::len)
                    )
                })
            }
        }
    }

    fn unexplained_value(&self, r: &KvRead, v: u64) -> Option<String> {
        let Some(&(s, i)) = self.by_value.get(&v) else {
            return Some("no send carried the value".to_string());
        };
        let send = &self.sends[s];
        if send.records[i].key != r.key {
            return Some(format!(
                "kv send {s} carried it with key {}",
                send.records[i].key
            ));
        }
        if !send.attempted() {
            return Some(format!("only kv send {s}, which failed, carried it"));
        }
        match self.acked_at(s, i) {
            Some(at) if at != r.offset => Some(format!("kv send {s} was acknowledged @{at}")),
            _ => None,
        }
    }
}

/// Every anomaly of the compacted topic's history.
pub fn check(history: &KvHistory) -> Vec<CompactionAnomaly> {
    let Some(read) = &history.final_read else {
        return Vec::new();
    };
    let writes = Writes::new(history);
    let mut anomalies = order(&read.records);
    for r in &read.records {
        if let Some(why) = writes.unexplained(r) {
            anomalies.push(CompactionAnomaly::Invented {
                offset: r.offset,
                key: r.key.clone(),
                value: r.value,
                why,
            });
        }
    }
    let latest_read = latest_read_per_key(&read.records);
    for (key, acked) in acked_per_key(history) {
        let found = latest_read.get(key).copied();
        anomalies.extend(judge_key(&writes, key, &acked, found));
    }
    anomalies
}

fn order(records: &[KvRead]) -> Vec<CompactionAnomaly> {
    records
        .windows(2)
        .filter(|w| w[1].offset <= w[0].offset)
        .map(|w| CompactionAnomaly::Order {
            offset: w[1].offset,
            previous: w[0].offset,
        })
        .collect()
}

/// Per key, the read record with the highest offset.
fn latest_read_per_key(records: &[KvRead]) -> BTreeMap<&str, (i64, KvValue)> {
    let mut latest: BTreeMap<&str, (i64, KvValue)> = BTreeMap::new();
    for r in records {
        let e = latest.entry(&r.key).or_insert((r.offset, r.value));
        if r.offset >= e.0 {
            *e = (r.offset, r.value);
        }
    }
    latest
}

/// Per key, its acknowledged records: offset -> (value, send index).
type Acked = BTreeMap<i64, (KvValue, usize)>;

fn acked_per_key(history: &KvHistory) -> BTreeMap<&str, Acked> {
    let mut out: BTreeMap<&str, Acked> = BTreeMap::new();
    for (s, send) in history.sends.iter().enumerate() {
        for (offset, r) in send.acked_offsets() {
            out.entry(&r.key).or_default().insert(offset, (r.value, s));
        }
    }
    out
}

/// Resurrection, then the latest acknowledged record of one key against the read's latest.
fn judge_key(
    writes: &Writes<'_>,
    key: &str,
    acked: &Acked,
    found: Option<(i64, KvValue)>,
) -> Option<CompactionAnomaly> {
    let tombstone = acked
        .iter()
        .rev()
        .find(|(_, (v, _))| *v == KvValue::Tombstone);
    if let (Some((fo, fv @ KvValue::Value(_))), Some((&to, &(_, send)))) = (found, tombstone)
        && to > fo
    {
        return Some(CompactionAnomaly::Resurrected {
            key: key.to_string(),
            tombstone_offset: to,
            send,
            found_offset: fo,
            found_value: fv,
        });
    }
    let (&w_offset, &(w_value, send)) = acked.iter().next_back()?;
    let fine = match found {
        None => w_value == KvValue::Tombstone || writes.unacked_tombstone(key),
        Some((o, v)) if o == w_offset => v == w_value,
        Some((o, v)) if o > w_offset => {
            let r = KvRead {
                offset: o,
                key: key.to_string(),
                value: v,
            };
            writes.unexplained(&r).is_none()
        }
        Some(_) => false,
    };
    (!fine).then(|| CompactionAnomaly::LostLatest {
        key: key.to_string(),
        acked_offset: w_offset,
        acked_value: w_value,
        send,
        found,
    })
}

#[cfg(test)]
#[path = "tests/compaction.rs"]
mod tests;
