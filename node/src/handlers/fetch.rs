//! Fetch: whole batches below the high watermark, read straight from the segment files.
//!
//! - Long poll: answer when `min_bytes` are available or `max_wait_ms` has passed, waking on the
//!   broker-wide high-watermark signal.
//! - Sizes (KIP-74): `max_bytes` caps the response, `partition_max_bytes` each partition, but the
//!   first batch of the response is always whole even if bigger, so a consumer never sticks.
//! - `fetch_offset` < log start offset or > high watermark → OFFSET_OUT_OF_RANGE;
//!   == high watermark is a valid empty read.
//! - A corrupt first batch → CORRUPT_MESSAGE for that partition (logged as an error).
//! - Fetch sessions (KIP-227) are not kept: every response is full, with session id 0.
//! - Cluster mode: consumers are served by the leader only, and only once its high watermark is
//!   established (see `Partition::serving_high_watermark`); a `current_leader_epoch` (KIP-320)
//!   older than ours is FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH.
//! - A fetch carrying a `replica_id` ≥ 0 is a follower's: it reads up to the log end (not the
//!   high watermark) and its long poll wakes on appends. What moves the high watermark and may
//!   expand the ISR is the follower's *durable* log end: Strata's followers send it in the
//!   partition's tagged field [`DURABLE_END_TAG`] (their `fetch_offset` is their log end, which
//!   may not be on disk yet, so a follower fetches the next data while it flushes the last);
//!   without the tag the `fetch_offset` counts, as a follower that fetches only from its durable
//!   end sends it. The tag is never taken above `fetch_offset`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::log::LogError;
use strata_core::types::Offset;

use strata_core::types::NodeId;

use crate::broker::Broker;
use crate::handled::Handled;
use crate::replication::isr_sync;

/// Longest long poll we honour, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The tag (in a Fetch v12+ request partition's tagged fields) under which a Strata follower
/// reports its durable log end: 8 bytes, big-endian `i64`. Kafka's own followers never send it
/// and Kafka's leaders skip tags they do not know, so neither misreads the other. Far above the
/// tags Kafka uses (0 and 1 in FetchPartition).
pub const DURABLE_END_TAG: i32 = 0x5354_0001;

/// `partition` with the follower's durable log end in [`DURABLE_END_TAG`].
pub fn with_durable_end(mut partition: FetchPartition, durable_end: i64) -> FetchPartition {
    partition.unknown_tagged_fields.insert(
        DURABLE_END_TAG,
        Bytes::copy_from_slice(&durable_end.to_be_bytes()),
    );
    partition
}

/// The durable log end a follower's fetch of `partition` reports: its [`DURABLE_END_TAG`] (a
/// malformed one is ignored) capped at its `fetch_offset`, or the `fetch_offset` itself.
pub fn reported_durable_end(partition: &FetchPartition) -> i64 {
    let tagged = partition
        .unknown_tagged_fields
        .get(&DURABLE_END_TAG)
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(i64::from_be_bytes);
    match tagged {
        Some(end) => end.min(partition.fetch_offset),
        None => partition.fetch_offset,
    }
}

fn partition_error(index: i32, code: ErrorCode) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code.0)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
}

/// One pass over the requested partitions. Returns the response and the bytes it carries, and
/// whether any partition had an error (errors answer at once).
/// Checks the leader epoch a request carries (KIP-320) against the one this broker leads with.
pub fn check_leader_epoch(ours: Option<i32>, theirs: i32) -> Result<(), ErrorCode> {
    let Some(ours) = ours else {
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    };
    if theirs < 0 || theirs == ours {
        Ok(())
    } else if theirs < ours {
        Err(ErrorCode::FENCED_LEADER_EPOCH)
    } else {
        Err(ErrorCode::UNKNOWN_LEADER_EPOCH)
    }
}

/// For a follower's fetch: records its progress (its durable log end) on the leader, which may
/// move the high watermark and propose an ISR expansion, or says why this broker refuses it.
fn follower_fetch(
    broker: &Arc<Broker>,
    p: &Arc<crate::partition::Partition>,
    replica: NodeId,
    durable_end: i64,
    log_end_offset: i64,
) -> Result<(), ErrorCode> {
    let now = broker.now();
    let fetched = p.update(|r| r.on_follower_fetch(now, replica, durable_end, log_end_offset))?;
    if let Some(proposal) = fetched.expansion {
        tracing::info!(topic = %p.topic, partition = p.index, isr = ?proposal.isr,
            leader_epoch = proposal.leader_epoch, high_watermark = p.state().high_watermark,
            "expanding the ISR: a follower caught up");
        isr_sync::send(broker, p, proposal);
    }
    Ok(())
}

fn read_once(broker: &Arc<Broker>, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let replica = (req.replica_id.0 >= 0).then_some(NodeId(req.replica_id.0));
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = broker.topic(ft.topic.0.as_str());
        let mut parts = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let partition = topic.as_ref().and_then(|t| {
                usize::try_from(fp.partition)
                    .ok()
                    .and_then(|i| t.partitions.get(i))
            });
            let Some(p) = partition else {
                any_error = true;
                parts.push(partition_error(
                    fp.partition,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                ));
                continue;
            };
            let leader_epoch = p.role().leader_epoch();
            if let Err(code) = check_leader_epoch(leader_epoch, fp.current_leader_epoch) {
                any_error = true;
                parts.push(partition_error(fp.partition, code));
                continue;
            }
            // Followers read to the log end; consumers to the (established) high watermark.
            let upper = match replica {
                Some(r) => {
                    let leo = p.log().as_ref().map(|l| l.log_end_offset().0);
                    let Some(leo) = leo else {
                        any_error = true;
                        parts.push(partition_error(
                            fp.partition,
                            ErrorCode::NOT_LEADER_OR_FOLLOWER,
                        ));
                        continue;
                    };
                    let durable_end = reported_durable_end(fp);
                    if fp.fetch_offset <= leo
                        && let Err(code) = follower_fetch(broker, p, r, durable_end, leo)
                    {
                        any_error = true;
                        parts.push(partition_error(fp.partition, code));
                        continue;
                    }
                    leo
                }
                None => match p.serving_high_watermark() {
                    Ok(hw) => hw,
                    Err(code) => {
                        any_error = true;
                        parts.push(partition_error(fp.partition, code));
                        continue;
                    }
                },
            };
            let hw = p.state().high_watermark;
            let guard = p.log();
            let Some(log) = guard.as_ref() else {
                any_error = true;
                parts.push(partition_error(
                    fp.partition,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                ));
                continue;
            };
            let log_start = log.log_start_offset().0;
            let base = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log_start);
            if fp.fetch_offset < log_start || fp.fetch_offset > upper {
                any_error = true;
                parts.push(base.with_error_code(ErrorCode::OFFSET_OUT_OF_RANGE.0));
                continue;
            }
            // KIP-74: once the response holds data, later partitions get only what is left.
            let budget = if total == 0 {
                max_bytes.max(1)
            } else {
                max_bytes.saturating_sub(total)
            };
            let limit = usize::try_from(fp.partition_max_bytes)
                .unwrap_or(0)
                .min(budget);
            if fp.fetch_offset == upper || limit == 0 {
                parts.push(base.with_records(Some(Bytes::new())));
                continue;
            }
            match log.read(Offset(fp.fetch_offset), limit, Offset(upper)) {
                Ok(r) => {
                    if r.records.is_empty()
                        && let Some(at) = r.corrupt_at
                    {
                        tracing::error!(topic = %p.topic, partition = p.index, offset = at.0,
                                "corrupt batch in the log; answering CORRUPT_MESSAGE");
                        any_error = true;
                        parts.push(base.with_error_code(ErrorCode::CORRUPT_MESSAGE.0));
                        continue;
                    }
                    total += r.records.len();
                    parts.push(base.with_records(Some(r.records)));
                }
                Err(e) => {
                    if let LogError::Corrupt { .. } = e {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e,
                            "corrupt batch in the log; answering CORRUPT_MESSAGE");
                    } else {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "fetch read failed");
                    }
                    any_error = true;
                    parts.push(base.with_error_code(e.error_code().0));
                }
            }
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(parts),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        any_error,
    )
}

pub fn handle(broker: &Arc<Broker>, req: FetchRequest, _version: i16) -> Handled {
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    // Subscribe before the first read so no high-watermark move in between is missed.
    // Followers wake on appends, consumers on high-watermark moves.
    let mut signal = if req.replica_id.0 >= 0 {
        broker.append_signal.subscribe()
    } else {
        broker.data_signal.subscribe()
    };
    let (resp, total, any_error) = read_once(broker, &req);
    if total >= min_bytes || any_error || wait.is_zero() {
        return Handled::Now(ResponseKind::Fetch(resp));
    }
    let broker = broker.clone();
    Handled::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + wait;
        drop(resp);
        loop {
            // `changed` returns at once if the signal moved since the last read began.
            // (`timeout` rather than `timeout_at`: the simulator's tokio has only the former.)
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, signal.changed()).await {
                Ok(Ok(())) => {}
                // Timed out (or the broker is going away): answer with what we have now.
                _ => return ResponseKind::Fetch(read_once(&broker, &req).0),
            }
            let (resp, total, any_error) = read_once(&broker, &req);
            if total >= min_bytes || any_error {
                return ResponseKind::Fetch(resp);
            }
            if tokio::time::Instant::now() >= deadline {
                return ResponseKind::Fetch(resp);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_request::FetchTopic;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn partition(fetch_offset: i64) -> FetchPartition {
        FetchPartition::default().with_fetch_offset(fetch_offset)
    }

    #[test]
    fn the_durable_end_survives_the_wire_and_is_capped_at_the_fetch_offset() {
        let request =
            FetchRequest::default().with_topics(vec![FetchTopic::default().with_partitions(vec![
                with_durable_end(partition(100), 70),
                with_durable_end(partition(100), 130),
                partition(100),
            ])]);
        let mut buf = BytesMut::new();
        request.encode(&mut buf, 12).expect("encodes");
        let decoded = FetchRequest::decode(&mut buf.freeze(), 12).expect("decodes");
        let ends: Vec<i64> = decoded.topics[0]
            .partitions
            .iter()
            .map(reported_durable_end)
            .collect();
        assert_eq!(ends, [70, 100, 100]);
    }

    #[test]
    fn a_malformed_tag_counts_as_absent() {
        let mut p = partition(40);
        p.unknown_tagged_fields
            .insert(DURABLE_END_TAG, Bytes::from_static(b"\x00\x01"));
        assert_eq!(reported_durable_end(&p), 40);
    }
}
