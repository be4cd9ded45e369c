//! confluent-kafka clients (one Python process each, `jepsen/python/confluent_client.py`)
//! recording into the same history as Strata's own client.
//!
//! Each client is a Python process driven over stdin/stdout JSON lines (the protocol is in the
//! script's docstring): Rust writes one request, the script answers with one line, and Rust
//! records the invocation before writing and the completion after reading, with the run's
//! clock. The script reports what confluent-kafka said; this module decides what it means for
//! the history:
//!
//! - **Producers** ([`PRODUCERS`] of them) send one value per operation, round-robin over the
//!   partitions, with `enable.idempotence=true, acks=all` (or `acks=1` without idempotence and
//!   without retries). A delivery report with an offset is `ok`; an error that proves the
//!   message was never sent (not queued, unknown partition, too large) is `fail`; everything
//!   else, `_MSG_TIMED_OUT`, `NOT_LEADER_OR_FOLLOWER`, request timeouts, a dead client, is
//!   `info`. Idempotent sends are recorded with `resends: true`: librdkafka resends a possibly
//!   written batch under a bumped epoch (KIP-360), which the checkers allow once per epoch.
//! - **Consumers**: under `assign`, one consumer assigned every partition from offset 0; under
//!   `subscribe`, [`SUBSCRIBE_CONSUMERS`] members of the group [`GROUP`], committing
//!   synchronously (`enable.auto.commit=false`) the position after each poll that returned
//!   records, with a unique tag as the commit's metadata.
//!
//! # Process ids
//!
//! A run uses the contiguous range `first_process .. first_process + process_count(options)`:
//! producers first, then for each consumer one *group process* (its [`GroupHistory`] ops) and
//! one *slot* per partition of `options.partitions`. The history's recording contract allows a
//! process one operation in flight, and a confluent-kafka poll returns records of several
//! partitions at once, so each slot records the consumer's polls of its partition: a poll of
//! the consumer is invoked on every slot it has a position for, at one time, and completed on
//! each with that partition's records. The checkers follow positions per (process, partition),
//! so this is exactly one consumer's position per partition.
//!
//! # Subscribe mode
//!
//! The script stops a poll at the first rebalance callback, so every record of an answer was
//! consumed under the assignment this module knew when it sent the poll. A revocation is
//! recorded as an `Assign` of nothing on the revoked slots. An assignment is recorded as the
//! OffsetFetch the script made in its callback (a `FetchCommitted`, invoked when the poll was),
//! the `Join` it completed (member id and generation parsed from librdkafka's group metadata,
//! recorded as completing when the poll answered: no earlier than it did), then on each newly
//! assigned slot an `Assign` of its partition and a `Seek` to the committed offset the script
//! assigned explicitly (0 when none). Poll-skip and nonmonotonic-poll therefore judge a member
//! only within one generation. Commits carry the generation librdkafka held before and after
//! the commit, or −1 (not judged by the fenced-commit checker) when it changed meanwhile.
//! Values are `(process << 40) | n` and commit tags `(group process << 32) | n`: unique per
//! run as long as other clients use other process ids.
//!
//! `GroupHistory::subscribed` is left as it is: the final describe the liveness checker needs
//! is the harness's (Strata's own client), not this module's.
//!
//! Recording invariant: the history is locked before the clock is read for every event, so
//! times never go back across clients that share the history (the other clients of a run must
//! do the same).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use strata_core::types::{Instant, Offset};
use strata_sim::group_history::{CommittedRead, GroupCall, GroupHistory, GroupOp, GroupOutcome};
use strata_sim::history::{
    Acks, Call, History, PollResult, ProcessId, Reply, SendAck, TopicPartition, Value,
};
use tokio::sync::mpsc;

/// The Python client, passed to `python3 -c`.
const SCRIPT: &str = include_str!("../python/confluent_client.py");

/// Producers per run.
pub const PRODUCERS: u32 = 2;
/// Group members per run in subscribe mode (one consumer in assign mode).
pub const SUBSCRIBE_CONSUMERS: u32 = 2;
/// The consumer group of subscribe mode.
pub const GROUP: &str = "strata-jepsen-confluent";

/// How long one request may take before the client counts as hung (and its operation `info`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
/// librdkafka's `message.timeout.ms`: a send's delivery report comes within this.
const MESSAGE_TIMEOUT_MS: u64 = 10_000;
/// How long one poll request waits for records.
const POLL_MS: u64 = 100;
/// How many records one poll request returns at most.
const POLL_MAX_RECORDS: u32 = 200;
/// Lines of a client's stderr kept for error reports.
const STDERR_TAIL: usize = 40;

/// What the confluent-kafka clients of a run do.
#[derive(Debug, Clone)]
pub struct ConfluentOptions {
    /// Bootstrap servers, `host:port,...`, reachable from where the clients run.
    pub bootstrap: String,
    /// The partitions to write and read (keys map to them).
    pub partitions: Vec<TopicPartition>,
    /// `true`: consumers `subscribe` in a group and commit; `false`: they `assign`.
    pub subscribe: bool,
    /// Producer `acks`: `-1` (idempotent) or `1`.
    pub acks: i16,
    /// The first history process id these clients may use; they use a contiguous range from it.
    pub first_process: ProcessId,
    /// Shell prefix to run the Python processes with (e.g. `ip netns exec sj-client`), empty for
    /// none.
    pub exec_prefix: Vec<String>,
}

/// How many process ids [`run`] uses from `options.first_process` on.
pub fn process_count(options: &ConfluentOptions) -> u32 {
    PRODUCERS + consumers(options) * (1 + options.partitions.len() as u32)
}

fn consumers(options: &ConfluentOptions) -> u32 {
    if options.subscribe {
        SUBSCRIBE_CONSUMERS
    } else {
        1
    }
}

/// Runs the clients until `run_for` has passed, recording into `history` (and `groups` when
/// subscribing), with times from `clock` (nanoseconds since the run started).
///
/// An error means a client could not start or crashed (a bug to look at). A client that stops
/// answering (more than 40 s for one request) has its operation recorded `info` and is
/// retired with a warning; the others go on.
pub async fn run(
    options: ConfluentOptions,
    history: Arc<Mutex<History>>,
    groups: Arc<Mutex<GroupHistory>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    run_for: Duration,
) -> anyhow::Result<()> {
    if options.partitions.is_empty() {
        bail!("confluent clients need at least one partition");
    }
    let recorder = Recorder {
        history,
        groups,
        clock,
    };
    let deadline = tokio::time::Instant::now() + run_for;
    let mut tasks = Vec::new();
    for i in 0..PRODUCERS {
        let process = ProcessId(options.first_process.0 + i);
        let client = Client::spawn(&options, "producer", process)?;
        let (options, recorder) = (options.clone(), recorder.clone());
        tasks.push(tokio::spawn(async move {
            produce(client, &options, &recorder, process, i as usize, deadline).await
        }));
    }
    let slots = 1 + options.partitions.len() as u32;
    for i in 0..consumers(&options) {
        let group_process = ProcessId(options.first_process.0 + PRODUCERS + i * slots);
        let client = Client::spawn(&options, "consumer", group_process)?;
        let (options, recorder) = (options.clone(), recorder.clone());
        tasks.push(tokio::spawn(async move {
            let mut consumer = Consumer::new(client, &options, recorder, group_process);
            consumer.run(deadline).await
        }));
    }
    let mut first_error = None;
    for task in tasks {
        let result = match task.await {
            Ok(result) => result,
            Err(e) => Err(anyhow!(
                "confluent client task panicked or was cancelled: {e}"
            )),
        };
        match result {
            Ok(()) => {}
            // Under faults a client may hang (a synchronous commit waits for a coordinator):
            // its operation is recorded `info` and the client retired; the run goes on.
            Err(e) if e.downcast_ref::<Hung>().is_some() => {
                tracing::warn!("confluent client retired: {e:#}");
            }
            Err(e) => {
                tracing::warn!("confluent client failed: {e:#}");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads every partition of `options` from offset 0 up to its high watermark with a fresh
/// confluent-kafka consumer, recorded as final-read polls, one per partition, on processes
/// `process .. process + options.partitions.len()`, all invoked together.
pub async fn final_read(
    options: &ConfluentOptions,
    history: Arc<Mutex<History>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    process: ProcessId,
    timeout: Duration,
) -> anyhow::Result<()> {
    let recorder = Recorder {
        history,
        groups: Arc::new(Mutex::new(GroupHistory::new())),
        clock,
    };
    let mut client = Client::spawn(options, "consumer", process)?;
    let slots: Vec<(ProcessId, Call)> = options
        .partitions
        .iter()
        .enumerate()
        .map(|(i, tp)| {
            let call = Call::Poll {
                tp: tp.clone(),
                from_offset: Offset(0),
                final_read: true,
            };
            (ProcessId(process.0 + i as u32), call)
        })
        .collect();
    recorder.invoke_all(slots.clone());
    let partitions: Vec<(&str, i32)> = options
        .partitions
        .iter()
        .map(|tp| (tp.topic.as_str(), tp.partition))
        .collect();
    let request = serde_json::json!({
        "op": "final_read",
        "partitions": partitions,
        "timeout_ms": timeout.as_millis() as u64,
    });
    let answer = client.request(&request, timeout + REQUEST_TIMEOUT).await;
    let answer = match answer {
        Ok(answer) if answer.outcome == "ok" => answer,
        Ok(answer) => {
            let why = answer.error.unwrap_or_default();
            recorder.complete_all(slots.iter().map(|(p, _)| (*p, Done::Info(why.clone()))));
            bail!("final read: {why}");
        }
        Err(e) => {
            recorder.complete_all(slots.iter().map(|(p, _)| (*p, Done::Info(format!("{e}")))));
            return Err(e);
        }
    };
    recorder.complete_all(final_read_done(options, process, &answer));
    Ok(())
}

/// How each final-read poll completed, given the script's answer: slot `process + i` gets the
/// records of `options.partitions[i]`, `info` when the answer lacks that partition.
fn final_read_done(
    options: &ConfluentOptions,
    process: ProcessId,
    answer: &Answer,
) -> Vec<(ProcessId, Done)> {
    let mut done = Vec::new();
    for (i, tp) in options.partitions.iter().enumerate() {
        let read = answer
            .partitions
            .iter()
            .find(|(t, p, ..)| *t == tp.topic && *p == tp.partition);
        let process = ProcessId(process.0 + i as u32);
        done.push(match read {
            Some((_, _, high, low, records)) => (
                process,
                Done::Poll(PollResult {
                    records: records
                        .iter()
                        .map(|(o, v)| (Offset(*o), Value(*v)))
                        .collect(),
                    high_watermark: Offset(*high),
                    log_start_offset: Offset((*low).max(0)),
                    batches: Vec::new(),
                }),
            ),
            None => (
                process,
                Done::Info("partition missing from the answer".into()),
            ),
        });
    }
    done
}

/// The producer loop: one value per send until the deadline.
async fn produce(
    mut client: Client,
    options: &ConfluentOptions,
    recorder: &Recorder,
    process: ProcessId,
    offset: usize,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    let acks = match options.acks {
        -1 => Acks::All,
        0 => Acks::None,
        _ => Acks::Leader,
    };
    let mut n: u64 = 0;
    while tokio::time::Instant::now() < deadline {
        let tp = &options.partitions[(n as usize + offset) % options.partitions.len()];
        let value = Value((u64::from(process.0) << 40) | n);
        n += 1;
        recorder.invoke_all(vec![(
            process,
            Call::Send {
                tp: tp.clone(),
                values: vec![value],
                acks,
                resends: acks == Acks::All,
            },
        )]);
        let request = serde_json::json!({
            "op": "send",
            "topic": tp.topic,
            "partition": tp.partition,
            "values": [value.0],
            "timeout_ms": MESSAGE_TIMEOUT_MS,
        });
        let done = match client.request(&request, REQUEST_TIMEOUT).await {
            Ok(answer) => match (answer.outcome.as_str(), answer.offsets.first()) {
                ("ok", Some(Some(offset))) => Done::Send(SendAck::new(Offset(*offset))),
                ("ok", _) => Done::Info("acknowledged without an offset".into()),
                ("fail", _) => Done::Fail(answer.error.unwrap_or_default()),
                (_, _) => Done::Info(answer.error.unwrap_or_default()),
            },
            Err(e) => {
                recorder.complete_all([(process, Done::Info(format!("{e:#}")))]);
                return Err(e);
            }
        };
        recorder.complete_all([(process, done)]);
    }
    client.close().await;
    Ok(())
}

/// One consumer and its per-partition slots.
struct Consumer {
    client: Client,
    options: ConfluentOptions,
    recorder: Recorder,
    group_process: ProcessId,
    /// The consumer's position on each partition of `options.partitions` (by index), `None`
    /// when not assigned or not known.
    positions: Vec<Option<i64>>,
    /// Partitions assigned whose position is unknown (the committed offset could not be read).
    unknown: Vec<bool>,
    /// The last valid high watermark each slot reported.
    high_watermarks: Vec<i64>,
    member_id: String,
    generation: Option<i32>,
    commits: u64,
}

impl Consumer {
    fn new(
        client: Client,
        options: &ConfluentOptions,
        recorder: Recorder,
        group_process: ProcessId,
    ) -> Consumer {
        let n = options.partitions.len();
        Consumer {
            client,
            options: options.clone(),
            recorder,
            group_process,
            positions: vec![None; n],
            unknown: vec![false; n],
            high_watermarks: vec![0; n],
            member_id: String::new(),
            generation: None,
            commits: 0,
        }
    }

    fn slot(&self, i: usize) -> ProcessId {
        ProcessId(self.group_process.0 + 1 + i as u32)
    }

    fn index_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.options
            .partitions
            .iter()
            .position(|tp| tp.topic == topic && tp.partition == partition)
    }

    async fn run(&mut self, deadline: tokio::time::Instant) -> anyhow::Result<()> {
        let result = self.run_inner(deadline).await;
        self.client.close().await;
        result
    }

    async fn run_inner(&mut self, deadline: tokio::time::Instant) -> anyhow::Result<()> {
        if self.options.subscribe {
            let mut topics: Vec<&str> = self
                .options
                .partitions
                .iter()
                .map(|tp| tp.topic.as_str())
                .collect();
            topics.sort_unstable();
            topics.dedup();
            let request = serde_json::json!({"op": "subscribe", "topics": topics});
            let answer = self.client.request(&request, REQUEST_TIMEOUT).await?;
            if answer.outcome != "ok" {
                bail!("subscribe: {}", answer.error.unwrap_or_default());
            }
        } else {
            self.assign_all().await?;
        }
        while tokio::time::Instant::now() < deadline {
            self.poll().await?;
        }
        Ok(())
    }

    /// Assign mode: every partition from offset 0.
    async fn assign_all(&mut self) -> anyhow::Result<()> {
        let slots: Vec<(ProcessId, Call)> = (0..self.options.partitions.len())
            .map(|i| {
                let call = Call::Assign {
                    partitions: vec![self.options.partitions[i].clone()],
                    seek_to_beginning: true,
                };
                (self.slot(i), call)
            })
            .collect();
        self.recorder.invoke_all(slots.clone());
        let partitions: Vec<(&str, i32, i64)> = self
            .options
            .partitions
            .iter()
            .map(|tp| (tp.topic.as_str(), tp.partition, 0))
            .collect();
        let request = serde_json::json!({"op": "assign", "partitions": partitions});
        let answer = self.client.request(&request, REQUEST_TIMEOUT).await;
        let done = match &answer {
            Ok(a) if a.outcome == "ok" => Done::Assign,
            Ok(a) => Done::Info(a.error.clone().unwrap_or_default()),
            Err(e) => Done::Info(format!("{e:#}")),
        };
        let ok = matches!(done, Done::Assign);
        self.recorder
            .complete_all(slots.iter().map(|(p, _)| (*p, done.clone())));
        if !ok {
            bail!("assign failed: {answer:?}");
        }
        self.positions = vec![Some(0); self.options.partitions.len()];
        Ok(())
    }

    /// One poll request: every slot with a known position polls, then records of slots whose
    /// position was unknown are recorded, then a rebalance is recorded or the positions
    /// committed.
    async fn poll(&mut self) -> anyhow::Result<()> {
        let invoked: Vec<usize> = (0..self.positions.len())
            .filter(|i| self.positions[*i].is_some())
            .collect();
        let t0 = self.invoke_polls(&invoked);
        let Some(answer) = self.request_poll(&invoked).await? else {
            return Ok(());
        };
        for error in &answer.errors {
            tracing::debug!("{}: consumer error {error}", self.group_process);
        }
        let by_slot = self.records_by_slot(&answer.records);
        let watermarks: BTreeMap<usize, (i64, i64)> = answer
            .watermarks
            .iter()
            .filter_map(|(t, p, low, high)| Some((self.index_of(t, *p)?, (*low, *high))))
            .collect();
        let late: Vec<usize> = by_slot
            .keys()
            .copied()
            .filter(|i| !invoked.contains(i))
            .collect();
        let mut done = Vec::new();
        for &i in &invoked {
            let records = by_slot.get(&i).cloned().unwrap_or_default();
            if let Some(last) = records.last() {
                self.positions[i] = Some(last.0.0 + 1);
            }
            done.push((
                self.slot(i),
                Done::Poll(self.result(i, records, &watermarks)),
            ));
        }
        self.recorder.complete_all(done);
        self.record_late(late, &by_slot, &watermarks);
        match answer.rebalance {
            Some(rebalance) => self.rebalanced(rebalance, t0),
            None if self.options.subscribe && !by_slot.is_empty() => {
                let offsets: Vec<(usize, i64)> = by_slot
                    .keys()
                    .filter_map(|&i| Some((i, self.positions[i]?)))
                    .collect();
                self.commit(offsets).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Invokes a poll on each slot of `invoked` from its position, at one time (returned).
    fn invoke_polls(&self, invoked: &[usize]) -> Instant {
        let slots: Vec<(ProcessId, Call)> = invoked
            .iter()
            .map(|&i| {
                let call = Call::Poll {
                    tp: self.options.partitions[i].clone(),
                    from_offset: Offset(self.positions[i].unwrap_or(0)),
                    final_read: false,
                };
                (self.slot(i), call)
            })
            .collect();
        self.recorder.invoke_all(slots)
    }

    /// Sends a poll request. `None` when the script answered with an error: the polls of
    /// `invoked` are then completed `info`, as they are when the client is gone (the error).
    async fn request_poll(&mut self, invoked: &[usize]) -> anyhow::Result<Option<Answer>> {
        let request = serde_json::json!({
            "op": "poll",
            "max_records": POLL_MAX_RECORDS,
            "timeout_ms": POLL_MS,
        });
        match self.client.request(&request, REQUEST_TIMEOUT).await {
            Ok(answer) if answer.outcome == "ok" => Ok(Some(answer)),
            Ok(answer) => {
                let why = answer.error.unwrap_or_default();
                let done = invoked
                    .iter()
                    .map(|&i| (self.slot(i), Done::Info(why.clone())));
                self.recorder.complete_all(done.collect::<Vec<_>>());
                Ok(None)
            }
            Err(e) => {
                let done = invoked
                    .iter()
                    .map(|&i| (self.slot(i), Done::Info(format!("{e:#}"))));
                self.recorder.complete_all(done.collect::<Vec<_>>());
                Err(e)
            }
        }
    }

    /// An answer's records by slot, in the order the consumer handed them out.
    fn records_by_slot(
        &self,
        records: &[(String, i32, i64, u64)],
    ) -> BTreeMap<usize, Vec<(Offset, Value)>> {
        let mut by_slot: BTreeMap<usize, Vec<(Offset, Value)>> = BTreeMap::new();
        for (topic, partition, offset, value) in records {
            match self.index_of(topic, *partition) {
                Some(i) => by_slot
                    .entry(i)
                    .or_default()
                    .push((Offset(*offset), Value(*value))),
                None => tracing::warn!(
                    "{}: record of {topic}-{partition} not in the run's partitions, dropped",
                    self.group_process
                ),
            }
        }
        by_slot
    }

    /// Records of a partition whose position was unknown (or, unexpectedly, of one not
    /// assigned): recorded as a poll from the first record, invoked when the answer came (the
    /// position is known only now). Still reads, for every checker.
    fn record_late(
        &mut self,
        late: Vec<usize>,
        by_slot: &BTreeMap<usize, Vec<(Offset, Value)>>,
        watermarks: &BTreeMap<usize, (i64, i64)>,
    ) {
        for i in late {
            let records = by_slot.get(&i).cloned().unwrap_or_default();
            let Some(first) = records.first() else {
                continue;
            };
            if !self.unknown[i] {
                tracing::warn!(
                    "{}: records of {}, which it was not assigned",
                    self.group_process,
                    self.options.partitions[i]
                );
            }
            self.recorder.invoke_all(vec![(
                self.slot(i),
                Call::Poll {
                    tp: self.options.partitions[i].clone(),
                    from_offset: first.0,
                    final_read: false,
                },
            )]);
            let result = self.result(i, records.clone(), watermarks);
            self.recorder
                .complete_all([(self.slot(i), Done::Poll(result))]);
            if self.unknown[i] {
                self.unknown[i] = false;
                self.positions[i] = records.last().map(|last| last.0.0 + 1);
            }
        }
    }

    /// A poll's result for slot `i`: its records, and the watermarks librdkafka cached (the
    /// last valid ones when it has none now).
    fn result(
        &mut self,
        i: usize,
        records: Vec<(Offset, Value)>,
        watermarks: &BTreeMap<usize, (i64, i64)>,
    ) -> PollResult {
        let (low, high) = watermarks.get(&i).copied().unwrap_or((-1, -1));
        if high >= 0 {
            self.high_watermarks[i] = high;
        } else if let Some(last) = records.last() {
            // Unknown to librdkafka yet: the least the records prove.
            self.high_watermarks[i] = self.high_watermarks[i].max(last.0.0 + 1);
        }
        PollResult {
            records,
            high_watermark: Offset(self.high_watermarks[i]),
            log_start_offset: Offset(low.max(0)),
            batches: Vec::new(),
        }
    }

    /// Records a rebalance the script reported (see the module docs).
    fn rebalanced(&mut self, rebalance: Rebalance, poll_invoked: Instant) {
        if let Some(revoked) = rebalance.revoked {
            self.revoke(revoked);
        }
        let Some(assigned) = rebalance.assigned else {
            return;
        };
        let tps: Vec<TopicPartition> = assigned
            .iter()
            .map(|(t, p, _)| TopicPartition::new(t.clone(), *p))
            .collect();
        let now = self.recorder.now();
        // The OffsetFetch the callback made, invoked no earlier than the poll was.
        let outcome = committed_outcome(
            rebalance.committed.as_deref(),
            rebalance.committed_error.as_deref(),
        );
        self.recorder.record_group(GroupOp {
            process: self.group_process,
            group: GROUP.into(),
            invoked: poll_invoked,
            completed: Some(now),
            call: GroupCall::FetchCommitted {
                partitions: tps.clone(),
            },
            outcome,
        });
        if let (Some(generation), Some(member_id)) = (rebalance.generation, &rebalance.member_id) {
            self.record_join(member_id, generation, tps, now);
        }
        for (topic, partition, seek) in assigned {
            self.assign_slot(&topic, partition, seek);
        }
    }

    /// Records the revocation of `revoked`: an `Assign` of nothing on each revoked slot.
    fn revoke(&mut self, revoked: Vec<(String, i32)>) {
        let mut slots = Vec::new();
        for (topic, partition) in revoked {
            if let Some(i) = self.index_of(&topic, partition) {
                self.positions[i] = None;
                self.unknown[i] = false;
                slots.push(self.slot(i));
            }
        }
        let calls: Vec<(ProcessId, Call)> = slots
            .iter()
            .map(|p| {
                let call = Call::Assign {
                    partitions: Vec::new(),
                    seek_to_beginning: false,
                };
                (*p, call)
            })
            .collect();
        self.recorder.invoke_all(calls);
        self.recorder
            .complete_all(slots.iter().map(|p| (*p, Done::Assign)).collect::<Vec<_>>());
    }

    /// Records the `Join` a rebalance completed at `now`: `member_id` in `generation`, assigned
    /// `assignment`.
    fn record_join(
        &mut self,
        member_id: &str,
        generation: i32,
        assignment: Vec<TopicPartition>,
        now: Instant,
    ) {
        self.recorder.record_group(GroupOp {
            process: self.group_process,
            group: GROUP.into(),
            invoked: now,
            completed: Some(now),
            call: GroupCall::Join {
                member_id: self.member_id.clone(),
            },
            outcome: GroupOutcome::Joined {
                member_id: member_id.to_owned(),
                generation,
                assignment,
            },
        });
        self.member_id = member_id.to_owned();
        self.generation = Some(generation);
    }

    /// Records a newly assigned partition on its slot: an `Assign`, then a `Seek` to the
    /// committed offset `seek` (0 when none, and then the position is unknown).
    fn assign_slot(&mut self, topic: &str, partition: i32, seek: Option<i64>) {
        let Some(i) = self.index_of(topic, partition) else {
            tracing::warn!(
                "{}: assigned {topic}-{partition}, not one of the run's partitions",
                self.group_process
            );
            return;
        };
        let tp = self.options.partitions[i].clone();
        let slot = self.slot(i);
        self.recorder.invoke_all(vec![(
            slot,
            Call::Assign {
                partitions: vec![tp.clone()],
                seek_to_beginning: false,
            },
        )]);
        self.recorder.complete_all([(slot, Done::Assign)]);
        self.recorder.invoke_all(vec![(
            slot,
            Call::Seek {
                tp,
                offset: Offset(seek.unwrap_or(0)),
            },
        )]);
        match seek {
            Some(offset) => {
                self.recorder.complete_all([(slot, Done::Seek)]);
                self.positions[i] = Some(offset);
                self.unknown[i] = false;
            }
            None => {
                let why = "committed offset unknown: librdkafka fetches it itself";
                self.recorder.complete_all([(slot, Done::Info(why.into()))]);
                self.positions[i] = None;
                self.unknown[i] = true;
            }
        }
    }

    /// Commits `offsets` (slot index, next offset) synchronously, recording the commit.
    async fn commit(&mut self, offsets: Vec<(usize, i64)>) -> anyhow::Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tag = (u64::from(self.group_process.0) << 32) | self.commits;
        self.commits += 1;
        let invoked = self.recorder.now();
        let wire: Vec<(&str, i32, i64, u64)> = offsets
            .iter()
            .map(|&(i, o)| {
                let tp = &self.options.partitions[i];
                (tp.topic.as_str(), tp.partition, o, tag)
            })
            .collect();
        let request = serde_json::json!({"op": "commit", "offsets": wire});
        let answer = self.client.request(&request, REQUEST_TIMEOUT).await;
        let completed = self.recorder.now();
        let (outcome, generation, member_id, result) = match answer {
            Ok(a) => {
                let outcome = match (a.outcome.as_str(), a.code) {
                    ("ok", _) => GroupOutcome::Committed,
                    ("fail", Some(code)) => GroupOutcome::Fail(code),
                    _ => GroupOutcome::Info(a.error.clone().unwrap_or_default()),
                };
                (outcome, a.generation, a.member_id, Ok(()))
            }
            Err(e) => (GroupOutcome::Info(format!("{e:#}")), None, None, Err(e)),
        };
        self.recorder.record_group(GroupOp {
            process: self.group_process,
            group: GROUP.into(),
            invoked,
            completed: Some(completed),
            call: GroupCall::Commit {
                member_id: member_id.unwrap_or_else(|| self.member_id.clone()),
                generation: generation.unwrap_or(-1),
                offsets: offsets
                    .iter()
                    .map(|&(i, o)| (self.options.partitions[i].clone(), o))
                    .collect(),
                tag,
            },
            outcome,
        });
        result
    }
}

/// The outcome of the OffsetFetch a rebalance callback made: the offsets it read (`committed`),
/// else `info` with its error.
fn committed_outcome(committed: Option<&[CommittedEntry]>, error: Option<&str>) -> GroupOutcome {
    match (committed, error) {
        (Some(committed), _) => GroupOutcome::Fetched(
            committed
                .iter()
                .map(|(t, p, offset, metadata)| {
                    let read = offset.map(|offset| CommittedRead {
                        offset,
                        tag: metadata.as_deref().and_then(|m| m.parse().ok()),
                    });
                    (TopicPartition::new(t.clone(), *p), read)
                })
                .collect(),
        ),
        (None, Some(error)) => GroupOutcome::Info(error.to_owned()),
        (None, None) => GroupOutcome::Info("no committed offsets read".into()),
    }
}

/// How an operation completed, for [`Recorder::complete_all`].
#[derive(Debug, Clone)]
enum Done {
    Send(SendAck),
    Poll(PollResult),
    Assign,
    Seek,
    Fail(String),
    Info(String),
}

/// Records into the shared histories, reading the clock under the lock (module docs).
#[derive(Clone)]
struct Recorder {
    history: Arc<Mutex<History>>,
    groups: Arc<Mutex<GroupHistory>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl Recorder {
    fn history(&self) -> MutexGuard<'_, History> {
        // A poisoned lock means another client panicked mid-record; the history is still
        // plain data, and that panic is reported by its own task.
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Instant {
        let _history = self.history();
        Instant((self.clock)())
    }

    /// Invokes every call at one time.
    fn invoke_all(&self, calls: Vec<(ProcessId, Call)>) -> Instant {
        let mut history = self.history();
        let time = Instant((self.clock)());
        for (process, call) in calls {
            history.invoke(process, time, call);
        }
        time
    }

    /// Completes every process's operation at one time.
    fn complete_all(&self, done: impl IntoIterator<Item = (ProcessId, Done)>) {
        let mut history = self.history();
        let time = Instant((self.clock)());
        for (process, done) in done {
            match done {
                Done::Send(ack) => history.ok(process, time, Reply::Send(ack)),
                Done::Poll(result) => history.ok(process, time, Reply::Poll(result)),
                Done::Assign => history.ok(process, time, Reply::Assign),
                Done::Seek => history.ok(process, time, Reply::Seek),
                Done::Fail(why) => history.fail(process, time, why),
                Done::Info(why) => history.info(process, time, why),
            };
        }
    }

    fn record_group(&self, op: GroupOp) {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(op);
    }
}

/// One line a client answered (the fields of every kind of answer; absent ones default).
#[derive(Debug, Default, Deserialize)]
struct Answer {
    outcome: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    code: Option<i16>,
    #[serde(default)]
    offsets: Vec<Option<i64>>,
    #[serde(default)]
    records: Vec<(String, i32, i64, u64)>,
    #[serde(default)]
    watermarks: Vec<(String, i32, i64, i64)>,
    #[serde(default)]
    rebalance: Option<Rebalance>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    partitions: Vec<FinalPartition>,
    #[serde(default)]
    generation: Option<i32>,
    #[serde(default)]
    member_id: Option<String>,
}

/// One partition of a final read: topic, partition, high watermark, log start, records.
type FinalPartition = (String, i32, i64, i64, Vec<(i64, u64)>);

/// One committed offset read in a rebalance: topic, partition, offset, metadata.
type CommittedEntry = (String, i32, Option<i64>, Option<String>);

/// A rebalance callback the script reported.
#[derive(Debug, Default, Deserialize)]
struct Rebalance {
    #[serde(default)]
    revoked: Option<Vec<(String, i32)>>,
    #[serde(default)]
    assigned: Option<Vec<(String, i32, Option<i64>)>>,
    #[serde(default)]
    committed: Option<Vec<CommittedEntry>>,
    #[serde(default)]
    committed_error: Option<String>,
    #[serde(default)]
    member_id: Option<String>,
    #[serde(default)]
    generation: Option<i32>,
}

/// A client that did not answer in time: retired, not a failure of the run.
#[derive(Debug)]
struct Hung(String);

impl std::fmt::Display for Hung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Hung {}

/// One running Python client.
struct Client {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Client {
    fn spawn(options: &ConfluentOptions, role: &str, process: ProcessId) -> anyhow::Result<Client> {
        let name = format!("confluent-{role}-{process}");
        let mut command = match options.exec_prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("python3");
                c
            }
            None => Command::new("python3"),
        };
        command
            .arg("-c")
            .arg(SCRIPT)
            .args(["--bootstrap", &options.bootstrap])
            .args(["--role", role])
            .args(["--client-id", &name])
            .args(["--group", GROUP])
            .args(["--acks", &options.acks.to_string()])
            .args(["--message-timeout-ms", &MESSAGE_TIMEOUT_MS.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("start {name} (python3 with confluent-kafka)"))?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("{name}: no pipes to the child");
                }
            };
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::task::spawn_blocking(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let writer = tail.clone();
        let log_name = name.clone();
        tokio::task::spawn_blocking(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tracing::debug!("{log_name}: {line}");
                let mut tail = writer.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        Ok(Client {
            name,
            child,
            stdin: Some(stdin),
            lines,
            stderr: tail,
        })
    }

    /// Sends one request and waits up to `timeout` for its answer. An error means the client
    /// is gone or hung: the operation's outcome is unknown.
    async fn request(
        &mut self,
        request: &serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<Answer> {
        let Some(stdin) = self.stdin.as_mut() else {
            bail!("{}: already closed", self.name);
        };
        let mut line = request.to_string();
        line.push('\n');
        if let Err(e) = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
        {
            bail!(
                "{}: request not written ({e}); stderr:\n{}",
                self.name,
                self.tail()
            );
        }
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(line)) => serde_json::from_str(&line)
                .with_context(|| format!("{}: unreadable answer {line:?}", self.name)),
            Ok(None) => bail!("{}: exited; stderr:\n{}", self.name, self.tail()),
            Err(_) => Err(anyhow::Error::new(Hung(format!(
                "{}: no answer in {timeout:?}; stderr:\n{}",
                self.name,
                self.tail()
            )))),
        }
    }

    fn tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Closes stdin (the script closes its client and exits), waiting a few seconds for it.
    async fn close(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
