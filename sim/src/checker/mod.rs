//! Checkers over recorded histories (design §4).
//!
//! Each checker judges one property of a [`History`] and returns the anomalies it found, each with
//! the values, offsets and op indices needed to debug it; [`check_all`] runs them all into a
//! [`Report`], and [`Report::render`] prints the anomalies followed by the relevant part of the
//! history. The checkers live outside the code they check (TigerBeetle's habit) and only read the
//! history: they know nothing of nodes, leaders or disks.
//!
//! Three more judge the harness's [`Observations`] of the nodes instead ([`split_brain`],
//! [`replica_divergence`], [`replica_high_watermark`]: one leader per (partition, leader epoch),
//! replicas byte-identical below the high watermark, no replica's published high watermark
//! going back); [`check_all_with`] runs them together with the history checkers.
//! Their anomalies cite no history events.
//!
//! [`compaction`] judges the compacted-topic workload's own history ([`crate::kv_history`]):
//! the latest value of each key survives the cleaner and nothing deleted comes back. The run
//! adds its anomalies to the same [`Report`]; they cite no events of the main history either.
//!
//! Definitions follow Jepsen's Kafka workload (`jepsen.tests.kafka`) where Jepsen has the
//! anomaly; each file says where ours deviates and why. Shared vocabulary:
//!
//! - A *read* is one `(offset, value)` record of an `Ok` poll (final or not).
//! - A *durable ack* is one `(offset, value)` of an `Ok` send whose acknowledgement promises
//!   survival: `acks=-1`, or `acks=1` marked `leader_survived` by the harness. Other acks may be
//!   legitimately undone by a leader change (truncation), so no checker trusts their offsets.
//! - The *observations* of a partition are its reads plus its durable acks: what the log is known
//!   to hold. Offsets need not be dense (transaction markers and compaction leave gaps), so skips
//!   are judged against offsets known to hold a value, as Jepsen judges them against its version
//!   order.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::Offset;

use crate::history::{Call, History, OpIndex, OpKind, Operation, TopicPartition, Value};
use crate::observation::Observations;

pub mod compaction;
pub mod consumer;
pub mod duplicate;
pub mod g1a;
pub mod group;
pub mod high_watermark;
pub mod inconsistent_offsets;
pub mod lost_write;
pub mod nonmonotonic_poll;
pub mod nonmonotonic_send;
pub mod poll_skip;
pub mod precommitted_read;
pub mod producer_fencing;
pub mod replica_divergence;
pub mod replica_high_watermark;
pub mod split_brain;
pub mod unseen;

#[cfg(test)]
pub(crate) mod observation_testkit;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

/// Where an observation of a value at an offset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A record returned by an `Ok` poll (the completion's index).
    Read(OpIndex),
    /// A durable acknowledgement (the `Ok` completion's index).
    Ack(OpIndex),
}

impl Source {
    pub fn op(self) -> OpIndex {
        match self {
            Source::Read(op) | Source::Ack(op) => op,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Read(op) => write!(f, "read {op}"),
            Source::Ack(op) => write!(f, "ack {op}"),
        }
    }
}

/// One record of an `Ok` poll.
#[derive(Debug, Clone, Copy)]
pub struct Read<'h> {
    pub op: Operation<'h>,
    pub tp: &'h TopicPartition,
    pub offset: Offset,
    pub value: Value,
}

/// Values at each offset of one partition, with who saw them there.
pub type PartitionObservations = BTreeMap<Offset, BTreeMap<Value, Vec<Source>>>;

/// Indexes over a history shared by the checkers (Jepsen's "partial analysis").
pub struct Analysis<'h> {
    pub history: &'h History,
    /// Every send operation that carried a value (retries carry it again), in invocation order.
    pub sends_of: BTreeMap<Value, Vec<Operation<'h>>>,
    /// Every record of every `Ok` poll, in completion order.
    pub reads: Vec<Read<'h>>,
    /// Reads and durable acks by partition and offset.
    pub observed: BTreeMap<TopicPartition, PartitionObservations>,
}

impl<'h> Analysis<'h> {
    pub fn new(history: &'h History) -> Analysis<'h> {
        let mut sends_of: BTreeMap<Value, Vec<Operation<'h>>> = BTreeMap::new();
        for op in history.operations() {
            if let Call::Send { values, .. } = op.call() {
                for value in values {
                    sends_of.entry(*value).or_default().push(op);
                }
            }
        }
        let mut reads = Vec::new();
        let mut observed: BTreeMap<TopicPartition, PartitionObservations> = BTreeMap::new();
        for op in history.completed() {
            match (op.call(), op.outcome()) {
                (Call::Poll { tp, .. }, OpKind::Ok) => {
                    let result = op.poll_result().expect("ok polls carry a result");
                    for &(offset, value) in &result.records {
                        reads.push(Read {
                            op,
                            tp,
                            offset,
                            value,
                        });
                        observe(&mut observed, tp, offset, value, Source::Read(op.index()));
                    }
                }
                (Call::Send { tp, .. }, OpKind::Ok) => {
                    for (offset, value) in op.durable_acks() {
                        observe(&mut observed, tp, offset, value, Source::Ack(op.index()));
                    }
                }
                _ => {}
            }
        }
        Analysis {
            history,
            sends_of,
            reads,
            observed,
        }
    }

    /// Offsets of `tp` known to hold some value, strictly between `low` and `high`, at or above
    /// `floor` (offsets below a response's `log_start_offset` may be gone legitimately).
    pub fn known_between(
        &self,
        tp: &TopicPartition,
        low: Offset,
        high: Offset,
        floor: Offset,
    ) -> Vec<Offset> {
        let Some(offsets) = self.observed.get(tp) else {
            return Vec::new();
        };
        let from = Offset(low.0.saturating_add(1).max(floor.0));
        if from >= high {
            return Vec::new();
        }
        offsets.range(from..high).map(|(o, _)| *o).collect()
    }
}

fn observe(
    observed: &mut BTreeMap<TopicPartition, PartitionObservations>,
    tp: &TopicPartition,
    offset: Offset,
    value: Value,
    source: Source,
) {
    if !observed.contains_key(tp) {
        observed.insert(tp.clone(), BTreeMap::new());
    }
    let partition = observed.get_mut(tp).expect("inserted above");
    partition
        .entry(offset)
        .or_default()
        .entry(value)
        .or_default()
        .push(source);
}

/// The name of every anomaly [`check_all`] judges on a history alone, in report order.
pub const HISTORY_ANOMALIES: &[&str] = &[
    "lost-write",
    "unseen",
    "inconsistent-offsets",
    "duplicate",
    "nonmonotonic-send",
    "nonmonotonic-poll",
    "poll-skip",
    "G1a",
    "precommitted-read",
    "high-watermark-regression",
    "same-epoch-duplicate",
    "fenced-epoch-write",
    "sequence-gap",
];

/// The name of every anomaly judged on the harness's [`Observations`] of the nodes.
pub const OBSERVATION_ANOMALIES: &[&str] = &[
    "split-brain",
    "epoch-went-back",
    "diverged",
    "missing-below-hw",
    "replica-high-watermark-regression",
];

/// Anomalies counted by the clients themselves, judged on no history (see [`producer_fencing`]).
pub const CLIENT_ANOMALIES: &[&str] = &["sequence-refused"];

/// One anomaly of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    LostWrite(lost_write::LostWrite),
    Unseen(unseen::Unseen),
    InconsistentOffsets(inconsistent_offsets::InconsistentOffset),
    Duplicate(duplicate::Duplicate),
    NonmonotonicSend(nonmonotonic_send::NonmonotonicSend),
    NonmonotonicPoll(nonmonotonic_poll::NonmonotonicPoll),
    PollSkip(poll_skip::PollSkip),
    G1a(g1a::AbortedRead),
    PrecommittedRead(precommitted_read::PrecommittedRead),
    HighWatermarkRegression(high_watermark::HighWatermarkRegression),
    SameEpochDuplicate(producer_fencing::SameEpochDuplicate),
    FencedEpochWrite(producer_fencing::FencedEpochWrite),
    SequenceGap(producer_fencing::SequenceGap),
    /// Counted by the clients, not judged on the history (see [`producer_fencing`]).
    SequenceRefused(producer_fencing::SequenceRefused),
    // Judged on the harness's observations of the nodes, not on the history.
    SplitBrain(split_brain::SplitBrain),
    EpochWentBack(split_brain::EpochWentBack),
    Diverged(replica_divergence::Diverged),
    MissingBelowHighWatermark(replica_divergence::MissingBelowHighWatermark),
    ReplicaHighWatermarkRegression(replica_high_watermark::ReplicaHighWatermarkRegression),
    /// Judged on the compacted-topic workload's own history ([`compaction`]).
    Compaction(compaction::CompactionAnomaly),
}

impl Anomaly {
    /// The anomaly's name, as Jepsen spells it where Jepsen has it.
    pub fn name(&self) -> &'static str {
        match self {
            Anomaly::LostWrite(_) => "lost-write",
            Anomaly::Unseen(_) => "unseen",
            Anomaly::InconsistentOffsets(_) => "inconsistent-offsets",
            Anomaly::Duplicate(_) => "duplicate",
            Anomaly::NonmonotonicSend(_) => "nonmonotonic-send",
            Anomaly::NonmonotonicPoll(_) => "nonmonotonic-poll",
            Anomaly::PollSkip(_) => "poll-skip",
            Anomaly::G1a(_) => "G1a",
            Anomaly::PrecommittedRead(_) => "precommitted-read",
            Anomaly::HighWatermarkRegression(_) => "high-watermark-regression",
            Anomaly::SameEpochDuplicate(_) => "same-epoch-duplicate",
            Anomaly::FencedEpochWrite(_) => "fenced-epoch-write",
            Anomaly::SequenceGap(_) => "sequence-gap",
            Anomaly::SequenceRefused(_) => "sequence-refused",
            Anomaly::SplitBrain(_) => "split-brain",
            Anomaly::EpochWentBack(_) => "epoch-went-back",
            Anomaly::Diverged(_) => "diverged",
            Anomaly::MissingBelowHighWatermark(_) => "missing-below-hw",
            Anomaly::ReplicaHighWatermarkRegression(_) => "replica-high-watermark-regression",
            Anomaly::Compaction(a) => a.name(),
        }
    }

    /// The history events that show the anomaly (none for anomalies of the observations).
    pub fn ops(&self) -> Vec<OpIndex> {
        match self {
            Anomaly::LostWrite(a) => a.ops(),
            Anomaly::Unseen(a) => a.ops(),
            Anomaly::InconsistentOffsets(a) => a.ops(),
            Anomaly::Duplicate(a) => a.ops(),
            Anomaly::NonmonotonicSend(a) => a.ops(),
            Anomaly::NonmonotonicPoll(a) => a.ops(),
            Anomaly::PollSkip(a) => a.ops(),
            Anomaly::G1a(a) => a.ops(),
            Anomaly::PrecommittedRead(a) => a.ops(),
            Anomaly::HighWatermarkRegression(a) => a.ops(),
            Anomaly::SameEpochDuplicate(a) => a.ops(),
            Anomaly::FencedEpochWrite(a) => a.ops(),
            Anomaly::SequenceGap(a) => a.ops(),
            Anomaly::SequenceRefused(_)
            | Anomaly::SplitBrain(_)
            | Anomaly::EpochWentBack(_)
            | Anomaly::Diverged(_)
            | Anomaly::MissingBelowHighWatermark(_)
            | Anomaly::ReplicaHighWatermarkRegression(_)
            | Anomaly::Compaction(_) => Vec::new(),
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            Anomaly::LostWrite(a) => a.fmt(f),
            Anomaly::Unseen(a) => a.fmt(f),
            Anomaly::InconsistentOffsets(a) => a.fmt(f),
            Anomaly::Duplicate(a) => a.fmt(f),
            Anomaly::NonmonotonicSend(a) => a.fmt(f),
            Anomaly::NonmonotonicPoll(a) => a.fmt(f),
            Anomaly::PollSkip(a) => a.fmt(f),
            Anomaly::G1a(a) => a.fmt(f),
            Anomaly::PrecommittedRead(a) => a.fmt(f),
            Anomaly::HighWatermarkRegression(a) => a.fmt(f),
            Anomaly::SameEpochDuplicate(a) => a.fmt(f),
            Anomaly::FencedEpochWrite(a) => a.fmt(f),
            Anomaly::SequenceGap(a) => a.fmt(f),
            Anomaly::SequenceRefused(a) => a.fmt(f),
            Anomaly::SplitBrain(a) => a.fmt(f),
            Anomaly::EpochWentBack(a) => a.fmt(f),
            Anomaly::Diverged(a) => a.fmt(f),
            Anomaly::MissingBelowHighWatermark(a) => a.fmt(f),
            Anomaly::ReplicaHighWatermarkRegression(a) => a.fmt(f),
            Anomaly::Compaction(a) => a.fmt(f),
        }
    }
}

/// An anomaly kind's name, as reports count and print it.
pub trait Named {
    fn name(&self) -> &'static str;
}

impl Named for Anomaly {
    fn name(&self) -> &'static str {
        Anomaly::name(self)
    }
}

/// The verdict of a set of checkers: every anomaly they found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<A> {
    pub anomalies: Vec<A>,
}

impl<A> Default for Verdict<A> {
    fn default() -> Self {
        Verdict {
            anomalies: Vec::new(),
        }
    }
}

impl<A: Named> Verdict<A> {
    /// No anomaly.
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// How many anomalies of each name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for anomaly in &self.anomalies {
            *counts.entry(anomaly.name()).or_insert(0) += 1;
        }
        counts
    }

    /// The anomalies of one name.
    pub fn named(&self, name: &str) -> Vec<&A> {
        self.anomalies.iter().filter(|a| a.name() == name).collect()
    }
}

/// The verdict on a run: every anomaly every checker found, in the history and in the
/// observations of the nodes.
pub type Report = Verdict<Anomaly>;

impl Report {
    /// A failure report: counts, then each anomaly (at most `limit` per name) followed by the
    /// history events it cites.
    pub fn render(&self, history: &History, limit: usize) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.is_valid() {
            out.push_str("history valid: no anomalies\n");
            return out;
        }
        let counts = self.counts();
        let summary: Vec<String> = counts
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        let _ = writeln!(out, "history INVALID: {}", summary.join(" "));
        for name in counts.keys() {
            let of_name = self.named(name);
            for anomaly in of_name.iter().take(limit) {
                let _ = writeln!(out, "\n{anomaly}");
                for line in history.dump(anomaly.ops()).lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
            if of_name.len() > limit {
                let _ = writeln!(out, "\n... and {} more {name}", of_name.len() - limit);
            }
        }
        out
    }
}

/// Runs every history checker over `history` (a run without observations of the nodes).
pub fn check_all(history: &History) -> Report {
    check_all_with(history, &Observations::default())
}

/// Runs every checker: the history checkers over `history`, the cluster checkers over
/// `observations`.
pub fn check_all_with(history: &History, observations: &Observations) -> Report {
    let mut report = check_history(history);
    report.anomalies.extend(check_observations(observations));
    report
}

/// The anomalies of the cluster checkers alone.
pub fn check_observations(observations: &Observations) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let leaders = split_brain::check(observations);
    anomalies.extend(leaders.split_brains.into_iter().map(Anomaly::SplitBrain));
    anomalies.extend(
        leaders
            .epochs_went_back
            .into_iter()
            .map(Anomaly::EpochWentBack),
    );
    let replicas = replica_divergence::check(observations);
    anomalies.extend(replicas.diverged.into_iter().map(Anomaly::Diverged));
    anomalies.extend(
        replicas
            .missing
            .into_iter()
            .map(Anomaly::MissingBelowHighWatermark),
    );
    anomalies.extend(
        replica_high_watermark::check(observations)
            .into_iter()
            .map(Anomaly::ReplicaHighWatermarkRegression),
    );
    anomalies
}

fn check_history(history: &History) -> Report {
    let analysis = Analysis::new(history);
    let mut anomalies = Vec::new();
    anomalies.extend(
        lost_write::check(&analysis)
            .into_iter()
            .map(Anomaly::LostWrite),
    );
    anomalies.extend(unseen::check(&analysis).into_iter().map(Anomaly::Unseen));
    anomalies.extend(
        inconsistent_offsets::check(&analysis)
            .into_iter()
            .map(Anomaly::InconsistentOffsets),
    );
    anomalies.extend(
        duplicate::check(&analysis)
            .into_iter()
            .map(Anomaly::Duplicate),
    );
    anomalies.extend(
        nonmonotonic_send::check(&analysis)
            .into_iter()
            .map(Anomaly::NonmonotonicSend),
    );
    anomalies.extend(
        nonmonotonic_poll::check(&analysis)
            .into_iter()
            .map(Anomaly::NonmonotonicPoll),
    );
    anomalies.extend(
        poll_skip::check(&analysis)
            .into_iter()
            .map(Anomaly::PollSkip),
    );
    anomalies.extend(g1a::check(&analysis).into_iter().map(Anomaly::G1a));
    anomalies.extend(
        precommitted_read::check(&analysis)
            .into_iter()
            .map(Anomaly::PrecommittedRead),
    );
    anomalies.extend(
        high_watermark::check(&analysis)
            .into_iter()
            .map(Anomaly::HighWatermarkRegression),
    );
    let producers = producer_fencing::check(&analysis);
    anomalies.extend(
        producers
            .same_epoch_duplicates
            .into_iter()
            .map(Anomaly::SameEpochDuplicate),
    );
    anomalies.extend(
        producers
            .fenced_epoch_writes
            .into_iter()
            .map(Anomaly::FencedEpochWrite),
    );
    anomalies.extend(
        producers
            .sequence_gaps
            .into_iter()
            .map(Anomaly::SequenceGap),
    );
    Report { anomalies }
}

pub(crate) fn join<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
