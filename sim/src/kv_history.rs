//! The history of the compacted-topic workload (`harness::compaction_workload`): keyed sends to
//! one partition of a `cleanup.policy=compact` topic, and the final read of that partition.
//!
//! The main [`crate::history::History`] holds values without keys, so this one is apart and
//! small. A record is a key and a value or a tombstone ([`KvValue`]); values are unique per run
//! (a counter from 1), so a value names the one send that carried it. Tombstones carry no value,
//! so only their key and, once acknowledged, their offset tell them apart.
//!
//! Recording contract: a send is recorded when invoked ([`KvHistory::invoke`]) and completed
//! once ([`KvHistory::complete`]): `Ok` with the batch's base offset (record `i` of the batch is
//! at `base + i`: the producer sends each as one batch), `Fail` when it definitely did not take
//! effect, `Info` when it may have. The final read lists every record from the log start to the
//! high watermark, in the order the broker returned them.

use std::fmt;

use crate::history::ProcessId;

/// A record's value: a unique `u64` (8 bytes big-endian on the wire) or a tombstone (null).
/// A read value that is not 8 bytes is recorded as `Value(0)`, which no send carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KvValue {
    Value(u64),
    Tombstone,
}

impl fmt::Display for KvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvValue::Value(v) => write!(f, "{v}"),
            KvValue::Tombstone => f.write_str("tombstone"),
        }
    }
}

/// One record of a send: its key (UTF-8, e.g. `k07`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRecord {
    pub key: String,
    pub value: KvValue,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutcome {
    /// Invoked, never completed (the run ended first): it may have taken effect.
    Pending,
    /// Acknowledged at this base offset (`None`: the broker named none).
    Ok(Option<i64>),
    /// Definitely not written.
    Fail(String),
    /// Indefinite: may or may not have been written.
    Info(String),
}

/// One send of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSend {
    pub process: ProcessId,
    pub records: Vec<KvRecord>,
    pub outcome: KvOutcome,
}

impl KvSend {
    /// The send may have written its records (everything but a definite failure).
    pub fn attempted(&self) -> bool {
        !matches!(self.outcome, KvOutcome::Fail(_))
    }

    /// The acknowledged offset of each record (none unless `Ok` with a base offset).
    pub fn acked_offsets(&self) -> impl Iterator<Item = (i64, &KvRecord)> {
        let base = match self.outcome {
            KvOutcome::Ok(Some(base)) => Some(base),
            _ => None,
        };
        base.into_iter().flat_map(|b| {
            self.records
                .iter()
                .enumerate()
                .map(move |(i, r)| (b + i as i64, r))
        })
    }
}

/// One record of the final read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRead {
    pub offset: i64,
    pub key: String,
    pub value: KvValue,
}

/// The final read of the partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvFinalRead {
    pub records: Vec<KvRead>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// Every send of the workload and the final read (`None` until it ran).
#[derive(Debug, Clone, Default)]
pub struct KvHistory {
    pub sends: Vec<KvSend>,
    pub final_read: Option<KvFinalRead>,
}

impl KvHistory {
    /// Records an invoked send; returns its index for [`KvHistory::complete`].
    pub fn invoke(&mut self, process: ProcessId, records: Vec<KvRecord>) -> usize {
        self.sends.push(KvSend {
            process,
            records,
            outcome: KvOutcome::Pending,
        });
        self.sends.len() - 1
    }

    /// Completes send `index`.
    pub fn complete(&mut self, index: usize, outcome: KvOutcome) {
        let send = &mut self.sends[index];
        assert_eq!(send.outcome, KvOutcome::Pending, "a send completes once");
        send.outcome = outcome;
    }

    /// Records acknowledged.
    pub fn acknowledged(&self) -> usize {
        self.sends.iter().map(|s| s.acked_offsets().count()).sum()
    }

    /// Offsets below the final read's high watermark that it returned no record for: offsets
    /// the cleaner removed (the workload's topic has no control batches or transactions, so
    /// without cleaning every offset holds a record).
    pub fn cleaned_offsets(&self) -> i64 {
        self.final_read.as_ref().map_or(0, |r| {
            r.high_watermark - r.log_start_offset - r.records.len() as i64
        })
    }

    /// One line per send (with its index) and per final-read record of `key`.
    pub fn dump_key(&self, key: &str) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (i, s) in self.sends.iter().enumerate() {
            let of_key: Vec<String> = s
                .records
                .iter()
                .filter(|r| r.key == key)
                .map(|r| r.value.to_string())
                .collect();
            if !of_key.is_empty() {
                let _ = writeln!(
                    out,
                    "kv send {i} p{} [{}] -> {:?}",
                    s.process.0,
                    of_key.join(" "),
                    s.outcome
                );
            }
        }
        for r in self.final_read.iter().flat_map(|f| &f.records) {
            if r.key == key {
                let _ = writeln!(out, "kv final read @{} {}", r.offset, r.value);
            }
        }
        out
    }
}
