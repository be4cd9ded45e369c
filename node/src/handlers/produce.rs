//! Produce: append raw record batches, then acknowledge according to `acks`.
//!
//! - acks=0: append, send nothing. acks=1: answer once the batch is durable on this broker
//!   (fsynced with `fsync.before.ack`, group commit by the partition's flusher; otherwise at once).
//!   acks=-1: answer once the batch is below the high watermark — on every ISR member, durably —
//!   and the ISR has at least `min.insync.replicas` members (NOT_ENOUGH_REPLICAS before the
//!   append, NOT_ENOUGH_REPLICAS_AFTER_APPEND after it). Other values: INVALID_REQUIRED_ACKS.
//! - Only the leader appends (NOT_LEADER_OR_FOLLOWER elsewhere), stamping its leader epoch; if
//!   the epoch ends before the acknowledgement the answer is NOT_LEADER_OR_FOLLOWER — an
//!   indefinite outcome, as is REQUEST_TIMED_OUT.
//! - Appends run synchronously in request order; only the wait is deferred, and it keeps
//!   nothing of the request: the response's topic names are copies, because a decoded name is a
//!   slice of the request's buffer and would keep all of it (a batch of up to
//!   `message.max.bytes` per partition) until the fsync or the ISR answers. The connection gives
//!   the request's `queued.max.request.bytes` lease back when this handler returns
//!   (`crate::memory_pool`), so the memory must go then too.
//! - `timeout_ms` bounds the wait: REQUEST_TIMED_OUT (an indefinite outcome for the client).
//! - An fsync failure answers KAFKA_STORAGE_ERROR and never acknowledges.
//! - Records are never rebuilt: the log validates the v2 batch headers and CRCs. They are
//!   decompressed only on a topic whose `cleanup.policy` includes `compact`, where every record
//!   needs a key (Kafka's `LogValidator`): a keyless one fails its partition with INVALID_RECORD
//!   before anything is appended ([`check_keys`]).
//! - Idempotent producers (KIP-98): the log deduplicates. A retry of one of the producer's last
//!   five batches is answered with the original offsets and waits for the same acknowledgement
//!   as the original (its offsets below the high watermark, or durable for acks=1); a sequence
//!   gap is OUT_OF_ORDER_SEQUENCE_NUMBER, a fenced epoch INVALID_PRODUCER_EPOCH.
//! - Every acknowledgement, and every append the leader refuses, names the leader and the epoch
//!   it answered under in `current_leader` (v10+, a tagged field; KIP-951 defines
//!   it for `NOT_LEADER_OR_FOLLOWER`, where clients read it, and other clients ignore it
//!   elsewhere). Strata's client uses it so that its view of a partition's leader epoch never
//!   falls below an epoch that acknowledged one of its batches: a broker deposed without knowing
//!   it (cut off from the controller) still names itself leader under its old epoch, and a
//!   producer that followed it would be refused a sequence the new leader had continued.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    BrokerId, ProduceRequest, ProduceResponse, ResponseKind, TopicName,
};
use strata_core::ErrorCode;
use strata_core::batch::BatchHeader;
use strata_core::record::require_keys;

use crate::broker::{Broker, Topic};
use crate::clock;
use crate::handled::Handled;
use crate::partition::{Partition, WaitOutcome};
use crate::topic_config::cleanup_policy;
use strata_core::replica::Role;

/// A partition's append outcome, before the acknowledgement wait.
struct Appended {
    /// Index of the topic in the response.
    topic: usize,
    /// Index of the partition in that topic's response.
    slot: usize,
    /// The partition to wait on.
    partition: Arc<Partition>,
    /// Last offset appended: acknowledged once the high watermark passes it.
    last_offset: i64,
    /// The leader epoch of the append.
    leader_epoch: i32,
}

fn error_response(index: i32, code: ErrorCode) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.0)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// This broker as the partition's leader under `leader_epoch` (see the module docs).
fn leading(broker: &Broker, leader_epoch: i32) -> LeaderIdAndEpoch {
    LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(broker.config.node_id))
        .with_leader_epoch(leader_epoch)
}

/// Appends one partition's records as its leader: the answer, and what to wait on (the
/// partition, the last offset appended and the leader epoch it was stamped with) if appended.
fn append_partition(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
    now_ms: i64,
) -> (PartitionProduceResponse, Option<(Arc<Partition>, i64, i32)>) {
    let partition = usize::try_from(index)
        .ok()
        .and_then(|i| topic.partitions.get(i));
    let (p, records) = match (partition, records) {
        (None, _) => {
            return (
                error_response(index, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                None,
            );
        }
        (Some(_), None) => return (error_response(index, ErrorCode::CORRUPT_MESSAGE), None),
        (Some(p), Some(records)) => (p, records),
    };
    if topic.name == crate::group::OFFSETS_TOPIC {
        // Kafka: "Cannot append to internal topic".
        return (
            error_response(index, ErrorCode::INVALID_TOPIC_EXCEPTION),
            None,
        );
    }
    // Only the leader validates: elsewhere the append answers NOT_LEADER_OR_FOLLOWER.
    if p.leader_epoch().is_some()
        && cleanup_policy(&topic.configs, &broker.config).compact
        && let Err(code) = check_keys(&records)
    {
        tracing::debug!(topic = %topic.name, partition = index, error = ?code,
            "refused a record set for a compacted topic");
        return (error_response(index, code), None);
    }
    match p.append_as_leader(&records, acks, None, now_ms) {
        Ok(a) => {
            if a.info.duplicate {
                // tests/idempotence.rs looks for this line.
                tracing::debug!(topic = %topic.name, partition = index,
                    base_offset = a.info.first_offset.0,
                    "idempotent retry: answered with the original offsets");
            }
            let resp = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(a.info.first_offset.0)
                .with_log_append_time_ms(a.info.log_append_time_ms)
                .with_log_start_offset(a.info.log_start_offset.0)
                .with_current_leader(leading(broker, a.leader_epoch));
            (
                resp,
                Some((p.clone(), a.info.last_offset.0, a.leader_epoch)),
            )
        }
        Err(code) => {
            tracing::debug!(topic = %topic.name, partition = index, error = ?code, "append refused");
            let resp = error_response(index, code);
            let resp = match p.leader_epoch() {
                Some(e) => resp.with_current_leader(leading(broker, e)),
                None => resp,
            };
            (resp, None)
        }
    }
}

/// Every record of every batch of `records` has a key, as a compacted topic needs (Kafka's
/// `LogValidator`: INVALID_RECORD otherwise; the cleaner keeps the newest record of each key,
/// and a keyless record has none). Compressed batches are decompressed (bounded by
/// `MAX_DECODED_BYTES`); a batch that does not decode fails with its own code, and bytes that
/// do not frame a batch are left to the log's validation.
fn check_keys(records: &[u8]) -> Result<(), ErrorCode> {
    let mut rest = records;
    while let Ok(header) = BatchHeader::parse(rest) {
        let Some((batch, after)) = rest.split_at_checked(header.total_size()) else {
            break;
        };
        require_keys(batch).map_err(|e| e.error_code())?;
        rest = after;
    }
    Ok(())
}

pub fn handle(broker: &Arc<Broker>, req: ProduceRequest) -> Handled {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let now_ms = clock::now_ms();
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        let topic = valid_acks.then(|| super::admin::topic_or_create(broker, &td.name, true));
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for (slot, pd) in td.partition_data.into_iter().enumerate() {
            let (resp, appended) = match &topic {
                None => (
                    error_response(pd.index, ErrorCode::INVALID_REQUIRED_ACKS),
                    None,
                ),
                Some(Err(e)) => (error_response(pd.index, e.error_code()), None),
                Some(Ok(t)) => append_partition(broker, t, pd.index, pd.records, acks, now_ms),
            };
            if let Some((partition, last_offset, leader_epoch)) = appended {
                waits.push(Appended {
                    topic: ti,
                    slot,
                    partition,
                    last_offset,
                    leader_epoch,
                });
            }
            parts.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                // A copy: `td.name` would keep the request's buffer (module docs).
                .with_name(TopicName(super::str_bytes(&td.name)))
                .with_partition_responses(parts),
        );
    }
    if acks == 0 {
        return Handled::NoResponse;
    }
    let response = ProduceResponse::default().with_responses(responses);
    // Nothing to wait for: no fsync, and no other replica whose copy acks=-1 needs.
    let sole = |w: &Appended| matches!(&*w.partition.role(), Role::Sole);
    if waits
        .iter()
        .all(|w| !w.partition.fsync_before_ack() && (acks == 1 || sole(w)))
    {
        return Handled::Now(ResponseKind::Produce(response));
    }
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    Handled::Later(Box::pin(acknowledge(response, waits, acks, timeout)))
}

/// Waits for every appended partition's acknowledgement (its offsets below the high watermark
/// for acks=-1, durable here for acks=1), at most `timeout` in all, and turns each wait that
/// ends otherwise into its error in `response`.
async fn acknowledge(
    mut response: ProduceResponse,
    waits: Vec<Appended>,
    acks: i16,
    timeout: Duration,
) -> ResponseKind {
    let deadline = tokio::time::Instant::now() + timeout;
    for w in waits {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let code = match w
            .partition
            .wait_for_ack(w.last_offset, acks == -1, w.leader_epoch, left)
            .await
        {
            WaitOutcome::Reached if acks == -1 && !w.partition.enough_replicas() => {
                ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            }
            WaitOutcome::Reached => continue,
            WaitOutcome::Failed => ErrorCode::KAFKA_STORAGE_ERROR,
            WaitOutcome::TimedOut => ErrorCode::REQUEST_TIMED_OUT,
            WaitOutcome::NotLeader => ErrorCode::NOT_LEADER_OR_FOLLOWER,
        };
        if let Some(r) = response
            .responses
            .get_mut(w.topic)
            .and_then(|t| t.partition_responses.get_mut(w.slot))
        {
            let index = r.index;
            *r = error_response(index, code);
        }
    }
    ResponseKind::Produce(response)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use bytes::Bytes;
    use kafka_protocol::messages::ApiKey;
    use strata_core::storage::MemStorage;

    use super::*;
    use crate::config::Config;
    use crate::dispatch::tests::{produce_to_t0, request};
    use crate::dispatch::{Reply, dispatch};

    /// A request's buffer that says when it is freed.
    struct Tracked(Bytes, Arc<AtomicBool>);

    impl AsRef<[u8]> for Tracked {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }

    /// Issue 14: a produce waiting for its fsync keeps nothing of its request, so the request's
    /// buffer (and its `queued.max.request.bytes` lease) goes as soon as the batch is appended.
    #[tokio::test]
    async fn the_acknowledgement_wait_keeps_nothing_of_the_request() {
        let config = Config::default().with("log.dirs", "/mem").expect("config");
        let broker = Broker::open(config, Arc::new(MemStorage::new())).expect("open");
        broker
            .create_topic("t", 1, Default::default(), false)
            .expect("create");
        let batch = strata_core::batch::build_batch(&[(&[7u8; 10_000][..], None)], 5);
        let produce = produce_to_t0(-1, batch);
        let freed = Arc::new(AtomicBool::new(false));
        let frame = request(ApiKey::Produce, 11, 1, &produce);
        let frame = Bytes::from_owner(Tracked(frame, freed.clone()));
        let reply = dispatch(&broker, frame).expect("dispatch");
        assert!(matches!(reply, Reply::Later(_)), "waits for the fsync");
        assert!(freed.load(Ordering::SeqCst), "the wait keeps the request");
        let Reply::Later(pending) = reply else {
            unreachable!("checked above")
        };
        pending.await.expect("answered");
        assert_eq!(
            broker.partition("t", 0).expect("p").state().high_watermark,
            1
        );
    }
}

#[cfg(test)]
#[path = "tests/produce.rs"]
mod compacted_topic_tests;
