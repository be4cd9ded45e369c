//! Recorded histories of client operations.
//!
//! Workload clients (simulated hosts now, Jepsen clients on real processes later) record every
//! operation twice: once when they *invoke* it and once when it *completes*, the way Jepsen does.
//! A completion is one of
//!
//! - [`OpKind::Ok`]: it happened, and the reply says what the system answered;
//! - [`OpKind::Fail`]: it definitely did not happen (a Kafka error returned before the append,
//!   such as `NOT_ENOUGH_REPLICAS`, or a request never sent);
//! - [`OpKind::Info`]: indefinite, the outcome is unknown (timeouts, `NOT_LEADER_OR_FOLLOWER`,
//!   `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, a connection lost after the request was written: design
//!   §2). The checkers must allow both outcomes.
//!
//! An invocation that never completes (the run ended first) counts as `Info`.
//!
//! # Recording contract
//!
//! - A process (one client, or one consumer/producer slot of a client) has at most one operation
//!   in flight: `invoke` then exactly one of `ok` / `fail` / `info`, then the next `invoke`. The
//!   completion is paired with the invocation by process, so the workload does not carry indices.
//!   A process may go on after an `Info` (unlike Jepsen, which retires it): the checkers that
//!   track a process's position ([`crate::checker`]) treat an indefinite operation as "unknown
//!   effect", not as a crash.
//! - `time` is a logical time in nanoseconds supplied by the recorder (simulated time under madsim,
//!   a monotonic clock on the Jepsen control node). It never goes back across the history.
//! - Values are unique per run: each value is sent by one logical write (retries of that write
//!   resend the same value).
//! - `Poll::from_offset` is the consumer's position when the poll was invoked. A workload that
//!   moves that position itself records an [`Call::Assign`] (with `seek_to_beginning`) or a
//!   [`Call::Seek`] first.
//! - The final read (design §4: after the liveness phase, every partition read from its log start)
//!   is recorded as ordinary polls with `final_read: true`.
//!
//! Breaking the contract is a harness bug and panics (`assert!`), with the offending process.
//!
//! # JSON lines
//!
//! [`History::to_jsonl`] writes one [`Op`] per line, in recording order, and
//! [`History::from_jsonl`] reads it back (checking the contract above). Times are integer
//! nanoseconds, offsets and values plain integers; absent fields are left out. Four lines (each
//! op is one line in the file, wrapped here to fit):
//!
//! ```text
//! {"index":0,"process":1,"time":1000,"type":"invoke",
//!  "call":{"f":"send","tp":{"topic":"t","partition":0},"values":[17,18],"acks":"all",
//!          "resends":false},"pair":2}
//! {"index":1,"process":2,"time":1500,"type":"invoke",
//!  "call":{"f":"poll","tp":{"topic":"t","partition":0},"from_offset":0,"final_read":false},
//!  "pair":3}
//! {"index":2,"process":1,"time":2000,"type":"ok",
//!  "reply":{"f":"send","base_offset":42,"leader_survived":false,"possible_duplicate":false},
//!  "pair":0}
//! {"index":3,"process":2,"time":2500,"type":"ok",
//!  "reply":{"f":"poll","records":[[42,17]],"high_watermark":43,"log_start_offset":0},"pair":1}
//! ```
//!
//! `type` is `invoke`, `ok`, `fail` or `info`; `call.f` is `send`, `poll`, `assign` or `seek`
//! (`acks`: `none`, `leader`, `all`); `reply.f` names the call it answers (`assign` and `seek`
//! replies carry nothing else); `error` holds a `fail`/`info` completion's reason; `batches`
//! (a poll's [`BatchStamp`]s) is left out when empty.
//!
//! This module is plain data on purpose: it depends on neither madsim nor the client, so the
//! Jepsen harness can record the same histories and run the same checkers.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};
use strata_core::types::{Instant, Offset};

/// A value written by the workload. Unique per run, so a value identifies its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Value(pub u64);

/// A workload process: one client (or one in-flight slot of a client). At most one operation of
/// a process is in flight at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessId(pub u32);

/// Position of an [`Op`] in its [`History`]; increases by one per recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpIndex(pub usize);

/// A Kafka topic partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// The producer's `acks` setting for one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acks {
    /// `acks=0`: no acknowledgement; nothing is promised.
    None,
    /// `acks=1`: the leader appended it; lost if the leader crashes before followers copy it.
    Leader,
    /// `acks=-1` (`all`): every ISR member has it (fsynced, design §3) and `min.insync.replicas`
    /// held.
    All,
}

/// Whether an invocation is still waiting, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    Invoke,
    Ok,
    Fail,
    /// Indefinite: may or may not have taken effect.
    Info,
}

/// What a process asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Call {
    /// Produce `values`, in order, as one batch to one partition.
    ///
    /// `resends`: the producer resends a batch that may already be written under a bumped
    /// epoch of its producer id (librdkafka's and the Java client's KIP-360 epoch bump, our
    /// `ResetPolicy::ResendUnderNewEpoch`). Such a batch may legitimately be in the log once per
    /// epoch; the checkers allow that, and only that (see `checker::producer_fencing`).
    Send {
        tp: TopicPartition,
        values: Vec<Value>,
        acks: Acks,
        resends: bool,
    },
    /// Fetch `tp` starting at the consumer's position `from_offset`. `final_read` marks the
    /// end-of-run full read that the lost-write checker judges against.
    Poll {
        tp: TopicPartition,
        #[serde(with = "serde_offset")]
        from_offset: Offset,
        final_read: bool,
    },
    /// Replace the consumer's assignment (Kafka `assign`). Positions of partitions that stay
    /// assigned are kept unless `seek_to_beginning`.
    Assign {
        partitions: Vec<TopicPartition>,
        seek_to_beginning: bool,
    },
    /// Move the consumer's position on `tp` (Kafka `seek`).
    Seek {
        tp: TopicPartition,
        #[serde(with = "serde_offset")]
        offset: Offset,
    },
}

/// What the system answered to a successful call. Each variant answers the [`Call`] variant of
/// the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Reply {
    Send(SendAck),
    Poll(PollResult),
    Assign,
    Seek,
}

/// The acknowledgement of a [`Call::Send`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendAck {
    /// Offset of the first value; value `i` of the batch is at `base_offset + i` (a batch gets
    /// consecutive offsets). `None` when the protocol reports none (`acks=0`).
    #[serde(with = "serde_offset::option")]
    pub base_offset: Option<Offset>,
    /// Set by the harness (after the fact, with [`History::mark_leader_survived`]) when the
    /// leader that acknowledged an `acks=1` send never crashed or lost power afterwards, so the
    /// write must survive like an `acks=-1` one.
    pub leader_survived: bool,
    /// The producer says the batch may also be in the log at another position: it resent the
    /// batch under a new epoch after an attempt that may have written it (`Call::Send::resends`).
    pub possible_duplicate: bool,
}

impl SendAck {
    pub fn new(base_offset: Offset) -> SendAck {
        SendAck {
            base_offset: Some(base_offset),
            leader_survived: false,
            possible_duplicate: false,
        }
    }
}

/// The result of a [`Call::Poll`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResult {
    /// The records returned, in the order the consumer handed them out.
    #[serde(with = "serde_offset::records")]
    pub records: Vec<(Offset, Value)>,
    /// The partition's high watermark in the same response: the first offset not yet committed
    /// (Kafka's `high_watermark`), so every returned offset must be below it.
    #[serde(with = "serde_offset")]
    pub high_watermark: Offset,
    /// The partition's `log_start_offset` in the same response.
    #[serde(with = "serde_offset")]
    pub log_start_offset: Offset,
    /// The producer fields of every batch the records came in, in log order (empty if the
    /// recorder does not know them). A batch may start before the first record returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchStamp>,
}

/// Where one record batch lies and the idempotent-producer fields of its v2 header
/// (`producerId` bytes 43..51, `producerEpoch` 51..53, `baseSequence` 53..57): what the broker
/// judged when it accepted the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BatchStamp {
    #[serde(with = "serde_offset")]
    pub base_offset: Offset,
    /// The batch's last offset (`baseOffset + lastOffsetDelta`).
    #[serde(with = "serde_offset")]
    pub last_offset: Offset,
    /// `-1`: no producer id (not idempotent).
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchStamp {
    /// The sequence of the record at `offset` (wrapping at `i32::MAX` as Kafka's sequences do).
    pub fn sequence_at(&self, offset: Offset) -> i32 {
        wrapping_sequence(self.base_sequence, offset.0 - self.base_offset.0)
    }

    /// The batch's last sequence.
    pub fn last_sequence(&self) -> i32 {
        self.sequence_at(self.last_offset)
    }

    pub fn contains(&self, offset: Offset) -> bool {
        self.base_offset <= offset && offset <= self.last_offset
    }
}

/// `base + delta` in Kafka's sequence space (`0..=i32::MAX`, wrapping to 0).
pub fn wrapping_sequence(base: i32, delta: i64) -> i32 {
    let space = i64::from(i32::MAX) + 1;
    (i64::from(base) + delta).rem_euclid(space) as i32
}

/// One recorded event: an invocation or a completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub index: OpIndex,
    pub process: ProcessId,
    #[serde(with = "serde_instant")]
    pub time: Instant,
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// On an invocation, what was asked; on a completion, the invocation's index is in `pair`
    /// and the call is read from there (see [`History::call`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Call>,
    /// On an `Ok` completion, the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// On `Fail` / `Info`, why (a Kafka error name, "timeout", "connection reset").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The other half: the completion of an invocation (once recorded), the invocation of a
    /// completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<OpIndex>,
}

/// An invocation together with its completion, if any: what checkers iterate over.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'h> {
    pub invoke: &'h Op,
    pub completion: Option<&'h Op>,
}

impl<'h> Operation<'h> {
    pub fn call(&self) -> &'h Call {
        self.invoke
            .call
            .as_ref()
            .expect("invocations always carry their call")
    }

    /// How the operation ended; an operation the run never completed is indefinite.
    pub fn outcome(&self) -> OpKind {
        self.completion.map_or(OpKind::Info, |c| c.kind)
    }

    pub fn reply(&self) -> Option<&'h Reply> {
        self.completion.and_then(|c| c.reply.as_ref())
    }

    /// The index to cite for this operation: its completion if there is one.
    pub fn index(&self) -> OpIndex {
        self.completion.map_or(self.invoke.index, |c| c.index)
    }

    pub fn process(&self) -> ProcessId {
        self.invoke.process
    }

    /// The acknowledgement of an `Ok` send.
    pub fn send_ack(&self) -> Option<&'h SendAck> {
        match self.reply() {
            Some(Reply::Send(ack)) => Some(ack),
            _ => None,
        }
    }

    /// The result of an `Ok` poll.
    pub fn poll_result(&self) -> Option<&'h PollResult> {
        match self.reply() {
            Some(Reply::Poll(result)) => Some(result),
            _ => None,
        }
    }

    /// `(offset, value)` of each value of an `Ok` send whose acknowledgement promises
    /// durability: `acks=-1`, or `acks=1` when the harness marked that the leader survived.
    pub fn durable_acks(&self) -> Vec<(Offset, Value)> {
        let (Call::Send { values, acks, .. }, Some(ack)) = (self.call(), self.send_ack()) else {
            return Vec::new();
        };
        let durable = match acks {
            Acks::All => true,
            Acks::Leader => ack.leader_survived,
            Acks::None => false,
        };
        match ack.base_offset {
            Some(base) if durable => batch_offsets(base, values),
            _ => Vec::new(),
        }
    }
}

/// Offsets of a batch of consecutive values starting at `base`.
pub fn batch_offsets(base: Offset, values: &[Value]) -> Vec<(Offset, Value)> {
    values
        .iter()
        .zip(base.0..)
        .map(|(v, o)| (Offset(o), *v))
        .collect()
}

/// A recorded history: the events in the order they were recorded.
#[derive(Debug, Clone, Default)]
pub struct History {
    ops: Vec<Op>,
    /// The in-flight invocation of each process.
    pending: HashMap<ProcessId, OpIndex>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Records that `process` invoked `call` at `time`.
    pub fn invoke(&mut self, process: ProcessId, time: Instant, call: Call) -> OpIndex {
        assert!(
            !self.pending.contains_key(&process),
            "process {} invoked {call:?} with an operation still in flight",
            process.0
        );
        let index = self.push(process, time, OpKind::Invoke, Some(call), None, None);
        self.pending.insert(process, index);
        index
    }

    /// Records that the in-flight operation of `process` succeeded with `reply`.
    pub fn ok(&mut self, process: ProcessId, time: Instant, reply: Reply) -> OpIndex {
        let invoke = self.take_pending(process);
        let matches = matches!(
            (self.call(invoke), &reply),
            (Call::Send { .. }, Reply::Send(_))
                | (Call::Poll { .. }, Reply::Poll(_))
                | (Call::Assign { .. }, Reply::Assign)
                | (Call::Seek { .. }, Reply::Seek)
        );
        assert!(
            matches,
            "process {}: reply {reply:?} does not answer {:?}",
            process.0,
            self.call(invoke)
        );
        self.complete(invoke, time, OpKind::Ok, Some(reply), None)
    }

    /// Records that the in-flight operation of `process` definitely did not take effect.
    pub fn fail(&mut self, process: ProcessId, time: Instant, error: impl Into<String>) -> OpIndex {
        let invoke = self.take_pending(process);
        self.complete(invoke, time, OpKind::Fail, None, Some(error.into()))
    }

    /// Records that the outcome of the in-flight operation of `process` is unknown.
    pub fn info(&mut self, process: ProcessId, time: Instant, error: impl Into<String>) -> OpIndex {
        let invoke = self.take_pending(process);
        self.complete(invoke, time, OpKind::Info, None, Some(error.into()))
    }

    /// Marks an `Ok` `acks=1` send whose leader the harness knows never crashed: its values must
    /// then survive (checked by lost-write) like `acks=-1` ones.
    pub fn mark_leader_survived(&mut self, completion: OpIndex) {
        let op = &mut self.ops[completion.0];
        match &mut op.reply {
            Some(Reply::Send(ack)) => ack.leader_survived = true,
            other => panic!("op {} is not an ok send: {other:?}", completion.0),
        }
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn op(&self, index: OpIndex) -> &Op {
        &self.ops[index.0]
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The call of an invocation or of the invocation a completion completes.
    pub fn call(&self, index: OpIndex) -> &Call {
        let op = self.op(index);
        let invoke = match op.kind {
            OpKind::Invoke => op,
            _ => self.op(op.pair.expect("completions are paired")),
        };
        invoke
            .call
            .as_ref()
            .expect("invocations always carry their call")
    }

    /// Every invocation with its completion, in invocation order.
    pub fn operations(&self) -> impl Iterator<Item = Operation<'_>> {
        self.ops
            .iter()
            .filter(|op| op.kind == OpKind::Invoke)
            .map(|invoke| Operation {
                invoke,
                completion: invoke.pair.map(|c| self.op(c)),
            })
    }

    /// Every completed operation, in completion order (the order a process observed results).
    pub fn completed(&self) -> impl Iterator<Item = Operation<'_>> {
        self.ops
            .iter()
            .filter(|op| op.kind != OpKind::Invoke)
            .map(|completion| Operation {
                invoke: self.op(completion.pair.expect("completions are paired")),
                completion: Some(completion),
            })
    }

    /// The operation an event belongs to.
    pub fn operation(&self, index: OpIndex) -> Operation<'_> {
        let op = self.op(index);
        match op.kind {
            OpKind::Invoke => Operation {
                invoke: op,
                completion: op.pair.map(|c| self.op(c)),
            },
            _ => Operation {
                invoke: self.op(op.pair.expect("completions are paired")),
                completion: Some(op),
            },
        }
    }

    /// A compact dump of the events in `indices` and their pairs, one line each, in history
    /// order: the relevant part of a history for a failure report.
    pub fn dump<I: IntoIterator<Item = OpIndex>>(&self, indices: I) -> String {
        let mut wanted: Vec<OpIndex> = Vec::new();
        for index in indices {
            if index.0 >= self.ops.len() {
                continue;
            }
            wanted.push(index);
            wanted.extend(self.op(index).pair);
        }
        wanted.sort();
        wanted.dedup();
        let mut out = String::new();
        for index in wanted {
            let _ = writeln!(out, "{}", self.line(index));
        }
        out
    }

    /// The whole history, one line per event.
    pub fn dump_all(&self) -> String {
        self.dump((0..self.ops.len()).map(OpIndex))
    }

    /// One event as a line, e.g.
    /// `#12 p3 1.000200000s ok    send t-0 acks=all [17 18] -> @42 (invoked #9)`.
    pub fn line(&self, index: OpIndex) -> String {
        let op = self.op(index);
        let kind = match op.kind {
            OpKind::Invoke => "invoke",
            OpKind::Ok => "ok",
            OpKind::Fail => "fail",
            OpKind::Info => "info",
        };
        let mut line = format!(
            "#{} p{} {} {kind:<6} {}",
            op.index.0,
            op.process.0,
            Secs(op.time),
            self.call(index)
        );
        if let Some(reply) = &op.reply {
            let _ = write!(line, " -> {reply}");
        }
        if let Some(error) = &op.error {
            let _ = write!(line, " -> {error}");
        }
        if let Some(invoke) = op.pair.filter(|_| op.kind != OpKind::Invoke) {
            let _ = write!(line, " (invoked #{})", invoke.0);
        }
        line
    }

    fn push(
        &mut self,
        process: ProcessId,
        time: Instant,
        kind: OpKind,
        call: Option<Call>,
        reply: Option<Reply>,
        error: Option<String>,
    ) -> OpIndex {
        if let Some(last) = self.ops.last() {
            assert!(
                time >= last.time,
                "time went back: process {} recorded {} after {}",
                process.0,
                time.0,
                last.time.0
            );
        }
        let index = OpIndex(self.ops.len());
        self.ops.push(Op {
            index,
            process,
            time,
            kind,
            call,
            reply,
            error,
            pair: None,
        });
        index
    }

    fn take_pending(&mut self, process: ProcessId) -> OpIndex {
        self.pending.remove(&process).unwrap_or_else(|| {
            panic!(
                "process {} completed an operation it never invoked",
                process.0
            )
        })
    }

    fn complete(
        &mut self,
        invoke: OpIndex,
        time: Instant,
        kind: OpKind,
        reply: Option<Reply>,
        error: Option<String>,
    ) -> OpIndex {
        let process = self.op(invoke).process;
        let index = self.push(process, time, kind, None, reply, error);
        self.ops[index.0].pair = Some(invoke);
        self.ops[invoke.0].pair = Some(index);
        index
    }
}

/// Why a JSON-lines history could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("line {line}: {source}")]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line}: {why}")]
    Invalid { line: usize, why: String },
}

impl History {
    /// The history as JSON lines: one [`Op`] per line, in recording order (see the module docs
    /// for the shape).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            let line =
                serde_json::to_string(op).expect("an op is plain data and always serializes");
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Reads back what [`History::to_jsonl`] wrote, checking the recording contract: indices
    /// follow the line order, times never go back, every completion is paired with an earlier
    /// invocation of the same process that pairs back, invocations carry their call, and a
    /// process has at most one operation in flight. Blank lines are skipped.
    pub fn from_jsonl(text: &str) -> Result<History, JsonlError> {
        let mut history = History::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let op: Op =
                serde_json::from_str(raw).map_err(|source| JsonlError::Json { line, source })?;
            history
                .push_read(op)
                .map_err(|why| JsonlError::Invalid { line, why })?;
        }
        history.check_pairs_back()?;
        Ok(history)
    }

    /// Appends `op`, read back from a JSON line, once it is checked against the ops before it
    /// (see [`History::from_jsonl`]); the error says how it breaks the recording contract.
    fn push_read(&mut self, op: Op) -> Result<(), String> {
        if op.index.0 != self.ops.len() {
            return Err(format!(
                "index {} where {} was expected",
                op.index.0,
                self.ops.len()
            ));
        }
        if let Some(last) = self.ops.last()
            && op.time < last.time
        {
            return Err(format!("time {} went back from {}", op.time.0, last.time.0));
        }
        match op.kind {
            OpKind::Invoke => {
                if op.call.is_none() {
                    return Err("an invocation without its call".into());
                }
                if self.pending.contains_key(&op.process) {
                    return Err(format!(
                        "{} invoked with an operation still in flight",
                        op.process
                    ));
                }
                self.pending.insert(op.process, op.index);
            }
            _ => {
                let invoke = self.pending.remove(&op.process);
                if invoke.is_none() || invoke != op.pair {
                    return Err(format!(
                        "completion paired with {:?}, but {}'s operation in flight is {:?}",
                        op.pair, op.process, invoke
                    ));
                }
                if (op.kind == OpKind::Ok) != op.reply.is_some() {
                    return Err("a reply belongs to exactly the ok completions".into());
                }
            }
        }
        self.ops.push(op);
        Ok(())
    }

    /// Checks, once every line is read, that each invocation's `pair` names the completion that
    /// names it back (or nothing, when the run ended first).
    fn check_pairs_back(&self) -> Result<(), JsonlError> {
        for op in &self.ops {
            if op.kind != OpKind::Invoke {
                continue;
            }
            let completed = self.pending.get(&op.process) != Some(&op.index);
            let back = op.pair.and_then(|c| self.ops.get(c.0)).and_then(|c| c.pair);
            let consistent = if completed {
                back == Some(op.index)
            } else {
                op.pair.is_none()
            };
            if !consistent {
                return Err(JsonlError::Invalid {
                    line: op.index.0 + 1,
                    why: format!(
                        "invocation paired with {:?}, which does not pair back",
                        op.pair
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `#[serde(with)]` helpers: [`Offset`] as a plain JSON integer (`strata-core` stays free of
/// serde).
pub(crate) mod serde_offset {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use strata_core::types::Offset;

    pub fn serialize<S: Serializer>(offset: &Offset, s: S) -> Result<S::Ok, S::Error> {
        offset.0.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Offset, D::Error> {
        i64::deserialize(d).map(Offset)
    }

    /// `Option<Offset>` as an integer or `null`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(offset: &Option<Offset>, s: S) -> Result<S::Ok, S::Error> {
            offset.map(|o| o.0).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Offset>, D::Error> {
            Option::<i64>::deserialize(d).map(|o| o.map(Offset))
        }
    }

    /// Poll records as `[[offset, value], ...]`.
    pub mod records {
        use super::*;
        use crate::history::Value;

        pub fn serialize<S: Serializer>(
            records: &[(Offset, Value)],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_seq(records.iter().map(|(o, v)| (o.0, v.0)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<(Offset, Value)>, D::Error> {
            let raw = Vec::<(i64, u64)>::deserialize(d)?;
            Ok(raw
                .into_iter()
                .map(|(o, v)| (Offset(o), Value(v)))
                .collect())
        }
    }
}

/// `#[serde(with)]` helpers: [`Instant`] as integer nanoseconds.
pub(crate) mod serde_instant {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use strata_core::types::Instant;

    pub fn serialize<S: Serializer>(time: &Instant, s: S) -> Result<S::Ok, S::Error> {
        time.0.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Instant, D::Error> {
        u64::deserialize(d).map(Instant)
    }

    /// `Option<Instant>` as an integer or `null`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(time: &Option<Instant>, s: S) -> Result<S::Ok, S::Error> {
            time.map(|t| t.0).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Instant>, D::Error> {
            Option::<u64>::deserialize(d).map(|t| t.map(Instant))
        }
    }
}

/// Nanoseconds shown as seconds with nine decimals.
struct Secs(Instant);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0.0 / 1_000_000_000,
            self.0.0 % 1_000_000_000
        )
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for OpIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Send {
                tp,
                values,
                acks,
                resends,
            } => {
                let acks = match acks {
                    Acks::None => "0",
                    Acks::Leader => "1",
                    Acks::All => "all",
                };
                write!(f, "send {tp} acks={acks} [{}]", join(values.iter()))?;
                if *resends {
                    f.write_str(" resends")?;
                }
                Ok(())
            }
            Call::Poll {
                tp,
                from_offset,
                final_read,
            } => {
                write!(
                    f,
                    "{} {tp} from {from_offset}",
                    if *final_read { "final-poll" } else { "poll" }
                )
            }
            Call::Assign {
                partitions,
                seek_to_beginning,
            } => {
                write!(f, "assign [{}]", join(partitions.iter()))?;
                if *seek_to_beginning {
                    f.write_str(" seek-to-beginning")?;
                }
                Ok(())
            }
            Call::Seek { tp, offset } => write!(f, "seek {tp} to {offset}"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Send(ack) => {
                match ack.base_offset {
                    Some(base) => write!(f, "@{base}")?,
                    None => f.write_str("@?")?,
                }
                if ack.leader_survived {
                    f.write_str(" leader-survived")?;
                }
                if ack.possible_duplicate {
                    f.write_str(" possible-duplicate")?;
                }
                Ok(())
            }
            Reply::Poll(result) => {
                let records = result.records.iter().map(|(o, v)| format!("{o}:{v}"));
                write!(
                    f,
                    "[{}] hw={} lso={}",
                    join(records),
                    result.high_watermark,
                    result.log_start_offset
                )?;
                let stamps = result
                    .batches
                    .iter()
                    .filter(|b| b.producer_id >= 0)
                    .map(|b| {
                        format!(
                            "{}..{}:pid{}/e{}/s{}",
                            b.base_offset,
                            b.last_offset,
                            b.producer_id,
                            b.producer_epoch,
                            b.base_sequence
                        )
                    });
                let stamps = join(stamps);
                if !stamps.is_empty() {
                    write!(f, " batches [{stamps}]")?;
                }
                Ok(())
            }
            Reply::Assign | Reply::Seek => f.write_str("done"),
        }
    }
}

fn join<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    /// Every kind of call, reply and completion, plus one invocation the run never completed.
    fn every_kind() -> History {
        let mut h = History::new();
        let send = |values: Vec<u64>, acks| Call::Send {
            tp: tp(),
            values: values.into_iter().map(Value).collect(),
            acks,
            resends: true,
        };
        h.invoke(ProcessId(1), Instant(1), send(vec![1, 2], Acks::All));
        let ok = h.ok(
            ProcessId(1),
            Instant(2),
            Reply::Send(SendAck::new(Offset(0))),
        );
        h.mark_leader_survived(ok);
        h.invoke(ProcessId(1), Instant(3), send(vec![3], Acks::Leader));
        h.fail(ProcessId(1), Instant(4), "NOT_ENOUGH_REPLICAS");
        h.invoke(ProcessId(1), Instant(5), send(vec![4], Acks::None));
        h.info(ProcessId(1), Instant(6), "timeout");
        h.invoke(
            ProcessId(2),
            Instant(7),
            Call::Assign {
                partitions: vec![tp(), TopicPartition::new("u", 3)],
                seek_to_beginning: true,
            },
        );
        h.ok(ProcessId(2), Instant(8), Reply::Assign);
        h.invoke(
            ProcessId(2),
            Instant(9),
            Call::Seek {
                tp: tp(),
                offset: Offset(0),
            },
        );
        h.ok(ProcessId(2), Instant(9), Reply::Seek);
        h.invoke(
            ProcessId(2),
            Instant(10),
            Call::Poll {
                tp: tp(),
                from_offset: Offset(0),
                final_read: true,
            },
        );
        h.ok(
            ProcessId(2),
            Instant(11),
            Reply::Poll(PollResult {
                records: vec![(Offset(0), Value(1)), (Offset(1), Value(2))],
                high_watermark: Offset(2),
                log_start_offset: Offset(0),
                batches: vec![BatchStamp {
                    base_offset: Offset(0),
                    last_offset: Offset(1),
                    producer_id: 7,
                    producer_epoch: 1,
                    base_sequence: i32::MAX,
                }],
            }),
        );
        h.invoke(ProcessId(3), Instant(12), send(vec![5], Acks::All));
        h
    }

    #[test]
    fn jsonl_round_trips() {
        let h = every_kind();
        let text = h.to_jsonl();
        assert_eq!(text.lines().count(), h.len());
        let back = History::from_jsonl(&text).expect("reads back");
        assert_eq!(back.ops(), h.ops());
        assert_eq!(back.to_jsonl(), text);
        // The process whose send never completed is still in flight after reading back.
        let mut back = back;
        back.ok(
            ProcessId(3),
            Instant(13),
            Reply::Send(SendAck::new(Offset(2))),
        );
    }

    #[test]
    fn jsonl_shape_is_the_documented_one() {
        let mut h = History::new();
        h.invoke(
            ProcessId(1),
            Instant(1000),
            Call::Send {
                tp: tp(),
                values: vec![Value(17), Value(18)],
                acks: Acks::All,
                resends: false,
            },
        );
        h.ok(
            ProcessId(1),
            Instant(2000),
            Reply::Send(SendAck::new(Offset(42))),
        );
        assert_eq!(
            h.to_jsonl(),
            "{\"index\":0,\"process\":1,\"time\":1000,\"type\":\"invoke\",\"call\":{\"f\":\"send\",\
             \"tp\":{\"topic\":\"t\",\"partition\":0},\"values\":[17,18],\"acks\":\"all\",\
             \"resends\":false},\"pair\":1}\n\
             {\"index\":1,\"process\":1,\"time\":2000,\"type\":\"ok\",\"reply\":{\"f\":\"send\",\
             \"base_offset\":42,\"leader_survived\":false,\"possible_duplicate\":false},\
             \"pair\":0}\n"
        );
    }

    #[test]
    fn jsonl_refuses_broken_contracts() {
        let text = every_kind().to_jsonl();
        let lines: Vec<&str> = text.lines().collect();
        // A completion without its invocation.
        let orphan = lines[1..].join("\n");
        assert!(matches!(
            History::from_jsonl(&orphan),
            Err(JsonlError::Invalid { line: 1, .. })
        ));
        // Time going back.
        let swapped = format!(
            "{}\n{}",
            lines[0],
            lines[1].replace("\"time\":2", "\"time\":0")
        );
        assert!(matches!(
            History::from_jsonl(&swapped),
            Err(JsonlError::Invalid { line: 2, .. })
        ));
        // Not JSON.
        assert!(matches!(
            History::from_jsonl("{\"index\":"),
            Err(JsonlError::Json { line: 1, .. })
        ));
        assert!(History::from_jsonl("").is_ok_and(|h| h.is_empty()));
    }

    #[test]
    fn pairs_invocations_with_completions_by_process() {
        let mut h = History::new();
        let p1 = ProcessId(1);
        let p2 = ProcessId(2);
        let s = h.invoke(
            p1,
            Instant(1),
            Call::Send {
                tp: tp(),
                values: vec![Value(7)],
                acks: Acks::All,
                resends: false,
            },
        );
        let p = h.invoke(
            p2,
            Instant(2),
            Call::Poll {
                tp: tp(),
                from_offset: Offset(0),
                final_read: false,
            },
        );
        let s_ok = h.ok(p1, Instant(3), Reply::Send(SendAck::new(Offset(0))));
        let p_info = h.info(p2, Instant(4), "timeout");
        assert_eq!(h.op(s).pair, Some(s_ok));
        assert_eq!(h.op(p_info).pair, Some(p));
        let ops: Vec<_> = h.operations().map(|o| (o.index(), o.outcome())).collect();
        assert_eq!(ops, vec![(s_ok, OpKind::Ok), (p_info, OpKind::Info)]);
        assert_eq!(h.operation(s).durable_acks(), vec![(Offset(0), Value(7))]);
    }

    #[test]
    fn an_operation_never_completed_is_indefinite() {
        let mut h = History::new();
        h.invoke(
            ProcessId(1),
            Instant(1),
            Call::Send {
                tp: tp(),
                values: vec![Value(1)],
                acks: Acks::All,
                resends: false,
            },
        );
        let op = h.operations().next().expect("one operation");
        assert_eq!(op.outcome(), OpKind::Info);
    }

    #[test]
    fn acks_one_is_durable_only_when_marked() {
        let mut h = History::new();
        h.invoke(
            ProcessId(1),
            Instant(1),
            Call::Send {
                tp: tp(),
                values: vec![Value(1), Value(2)],
                acks: Acks::Leader,
                resends: false,
            },
        );
        let ok = h.ok(
            ProcessId(1),
            Instant(2),
            Reply::Send(SendAck::new(Offset(5))),
        );
        assert!(h.operation(ok).durable_acks().is_empty());
        h.mark_leader_survived(ok);
        assert_eq!(
            h.operation(ok).durable_acks(),
            vec![(Offset(5), Value(1)), (Offset(6), Value(2))]
        );
    }

    #[test]
    #[should_panic(expected = "still in flight")]
    fn a_process_has_one_operation_in_flight() {
        let mut h = History::new();
        h.invoke(
            ProcessId(1),
            Instant(1),
            Call::Seek {
                tp: tp(),
                offset: Offset(0),
            },
        );
        h.invoke(
            ProcessId(1),
            Instant(2),
            Call::Seek {
                tp: tp(),
                offset: Offset(0),
            },
        );
    }

    #[test]
    #[should_panic(expected = "does not answer")]
    fn a_reply_must_answer_its_call() {
        let mut h = History::new();
        h.invoke(
            ProcessId(1),
            Instant(1),
            Call::Seek {
                tp: tp(),
                offset: Offset(0),
            },
        );
        h.ok(ProcessId(1), Instant(2), Reply::Assign);
    }

    #[test]
    fn dump_shows_the_pairs_of_the_requested_events() {
        let mut h = History::new();
        h.invoke(
            ProcessId(1),
            Instant(1_000_000_000),
            Call::Send {
                tp: tp(),
                values: vec![Value(17), Value(18)],
                acks: Acks::All,
                resends: false,
            },
        );
        h.invoke(
            ProcessId(2),
            Instant(1_000_000_001),
            Call::Seek {
                tp: tp(),
                offset: Offset(0),
            },
        );
        let ok = h.ok(
            ProcessId(1),
            Instant(1_000_200_000),
            Reply::Send(SendAck::new(Offset(42))),
        );
        let dump = h.dump([ok]);
        assert_eq!(
            dump,
            "#0 p1 1.000000000s invoke send t-0 acks=all [17 18]\n\
             #2 p1 1.000200000s ok     send t-0 acks=all [17 18] -> @42 (invoked #0)\n"
        );
    }
}
