//! Fetch: whole batches below the high watermark, read straight from the segment files.
//!
//! - Long poll: answer when `min_bytes` are available or `max_wait_ms` has passed, waking on the
//!   broker-wide high-watermark signal.
//! - Sizes (KIP-74): `max_bytes` caps the response, `partition_max_bytes` each partition, but the
//!   first batch of the response is always whole even if bigger, so a consumer never sticks.
//! - `fetch_offset` < log start offset or > high watermark → OFFSET_OUT_OF_RANGE;
//!   == high watermark is a valid empty read.
//! - A corrupt first batch → CORRUPT_MESSAGE for that partition (logged as an error).
//! - Fetch sessions (KIP-227, v7+): [`crate::fetch_session`] decides what a fetch reads (what
//!   the request lists, or its session's partitions) and what the answer lists; a session error
//!   is answered at once. The long poll is the same for every kind of fetch.
//! - Cluster mode: consumers are served by the leader only, and only once its high watermark is
//!   established (see `Partition::serving_high_watermark`); a `current_leader_epoch` (KIP-320)
//!   older than ours is FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH.
//! - A fetch carrying a `replica_id` ≥ 0 is a follower's: it reads up to the log end (not the
//!   high watermark) and its long poll wakes on appends. What moves the high watermark and may
//!   expand the ISR is the follower's *durable* log end: Strata's followers send it in the
//!   partition's tagged field [`DURABLE_END_TAG`] (their `fetch_offset` is their log end, which
//!   may not be on disk yet, so a follower fetches the next data while it flushes the last);
//!   without the tag the `fetch_offset` counts, as a follower that fetches only from its durable
//!   end sends it. The tag is never taken above `fetch_offset`. In an incremental fetch, a
//!   partition the request does not list reports what its session cached: the follower resends
//!   a partition whenever its durable end moves.

use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::log::LogError;
use strata_core::types::{NodeId, Offset};

pub use crate::fetch_session::{DURABLE_END_TAG, with_durable_end};

use crate::broker::Broker;
use crate::fetch_session::{
    FetchContext, FetchSessionCache, PartitionFetch, SessionRequest, TopicFetch, error_response,
};
use crate::handled::Handled;
use crate::handlers::topic_name;
use crate::partition::Partition;
use crate::replication::isr_sync;

/// Longest long poll we honour, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What one fetch reads: the partitions its request lists, or its session's.
struct Reading {
    /// The request's `replica_id`: ≥ 0 for a follower.
    replica_id: i32,
    max_bytes: usize,
    topics: Vec<TopicFetch>,
}

/// How the answer is finished once read.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Sessionless,
    /// Create a session from the answer.
    Full,
    /// Keep only what changed since the session's last answer.
    Incremental {
        session_id: i32,
        epoch: i32,
    },
}

fn partition_error(index: i32, code: ErrorCode) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code.0)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
}

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
    p: &Arc<Partition>,
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

/// How far a fetch may read `p`: a follower (whose progress this records) to the log end,
/// a consumer to the established high watermark.
fn upper_bound(
    broker: &Arc<Broker>,
    p: &Arc<Partition>,
    replica: Option<NodeId>,
    fp: &PartitionFetch,
) -> Result<i64, ErrorCode> {
    let Some(r) = replica else {
        return p.serving_high_watermark();
    };
    let leo = p.log().as_ref().map(|l| l.log_end_offset().0);
    let leo = leo.ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER)?;
    if fp.fetch_offset <= leo {
        follower_fetch(broker, p, r, fp.reported_durable_end(), leo)?;
    }
    Ok(leo)
}

/// The response's byte budget (KIP-74): once it holds data, later partitions get only what is
/// left, but the first batch is always whole.
struct Budget {
    max_bytes: usize,
    total: usize,
}

impl Budget {
    fn limit(&self, partition_max_bytes: i32) -> usize {
        let left = if self.total == 0 {
            self.max_bytes.max(1)
        } else {
            self.max_bytes.saturating_sub(self.total)
        };
        usize::try_from(partition_max_bytes).unwrap_or(0).min(left)
    }
}

/// One partition's answer (its bytes added to `budget`); an error answer as `Err` (an answer
/// either way, hence as large).
#[allow(clippy::result_large_err)]
fn read_partition(
    broker: &Arc<Broker>,
    replica: Option<NodeId>,
    topic: Option<&Arc<crate::topic::Topic>>,
    fp: &PartitionFetch,
    budget: &mut Budget,
) -> Result<PartitionData, PartitionData> {
    let index = fp.partition;
    let partition = topic.and_then(|t| {
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
    });
    let Some(p) = partition else {
        return Err(partition_error(
            index,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ));
    };
    check_leader_epoch(p.role().leader_epoch(), fp.current_leader_epoch)
        .map_err(|code| partition_error(index, code))?;
    let upper = upper_bound(broker, p, replica, fp).map_err(|code| partition_error(index, code))?;
    let hw = p.state().high_watermark;
    let guard = p.log();
    let Some(log) = guard.as_ref() else {
        return Err(partition_error(
            index,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ));
    };
    let log_start = log.log_start_offset().0;
    let base = PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(log_start);
    if fp.fetch_offset < log_start || fp.fetch_offset > upper {
        return Err(base.with_error_code(ErrorCode::OFFSET_OUT_OF_RANGE.0));
    }
    let limit = budget.limit(fp.partition_max_bytes);
    if fp.fetch_offset == upper || limit == 0 {
        return Ok(base.with_records(Some(bytes::Bytes::new())));
    }
    match log.read(Offset(fp.fetch_offset), limit, Offset(upper)) {
        Ok(r) if r.records.is_empty() && r.corrupt_at.is_some() => {
            tracing::error!(topic = %p.topic, partition = p.index, offset = ?r.corrupt_at,
                "corrupt batch in the log; answering CORRUPT_MESSAGE");
            Err(base.with_error_code(ErrorCode::CORRUPT_MESSAGE.0))
        }
        Ok(r) => {
            budget.total += r.records.len();
            Ok(base.with_records(Some(r.records)))
        }
        Err(e) => {
            if let LogError::Corrupt { .. } = e {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e,
                    "corrupt batch in the log; answering CORRUPT_MESSAGE");
            } else {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "fetch read failed");
            }
            Err(base.with_error_code(e.error_code().0))
        }
    }
}

/// One pass over the partitions `reading` lists. Returns the response (session id 0), the
/// bytes it carries, and whether any partition had an error (errors answer at once).
fn read_once(broker: &Arc<Broker>, reading: &Reading) -> (FetchResponse, usize, bool) {
    let replica = (reading.replica_id >= 0).then_some(NodeId(reading.replica_id));
    let mut budget = Budget {
        max_bytes: reading.max_bytes,
        total: 0,
    };
    let mut any_error = false;
    let mut topics = Vec::with_capacity(reading.topics.len());
    for ft in &reading.topics {
        let topic = broker.topic(&ft.topic);
        let mut parts = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let answer = read_partition(broker, replica, topic.as_ref(), fp, &mut budget);
            any_error |= answer.is_err();
            parts.push(answer.unwrap_or_else(|error| error));
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic_name(&ft.topic))
                .with_partitions(parts),
        );
    }
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics);
    (response, budget.total, any_error)
}

/// A waiter registered with every partition `reading` reads that this broker has: woken by
/// their appends for a follower, by their high-watermark moves for a consumer.
fn watch_partitions(broker: &Broker, reading: &Reading) -> Arc<Notify> {
    let waiter = Arc::new(Notify::new());
    for ft in &reading.topics {
        let Some(topic) = broker.topic(&ft.topic) else {
            continue;
        };
        let partitions = ft.partitions.iter().filter_map(|fp| {
            usize::try_from(fp.partition)
                .ok()
                .and_then(|i| topic.partitions.get(i))
        });
        for p in partitions {
            if reading.replica_id >= 0 {
                p.watch_appends(&waiter);
            } else {
                p.watch_high_watermark(&waiter);
            }
        }
    }
    waiter
}

/// The broker's fetch session cache, locked (for one call, never across an `.await`).
fn sessions(broker: &Broker) -> MutexGuard<'_, FetchSessionCache> {
    broker
        .fetch_sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// What `req` reads and how its answer is finished, or the session error to answer at once.
fn plan(broker: &Broker, req: &FetchRequest, version: i16) -> Result<(Reading, Answer), ErrorCode> {
    let mut topics = TopicFetch::from_request(&req.topics);
    let context = if version >= 7 {
        let session = SessionRequest {
            session_id: req.session_id,
            session_epoch: req.session_epoch,
            replica_id: req.replica_id.0,
        };
        let forgotten = &req.forgotten_topics_data;
        sessions(broker).new_context(session, &topics, forgotten, broker.now())
    } else {
        FetchContext::Sessionless
    };
    let answer = match context {
        FetchContext::Error(code) => return Err(code),
        FetchContext::Sessionless => Answer::Sessionless,
        FetchContext::Full => Answer::Full,
        FetchContext::Incremental {
            session_id,
            epoch,
            topics: session_topics,
        } => {
            topics = session_topics;
            Answer::Incremental { session_id, epoch }
        }
    };
    let reading = Reading {
        replica_id: req.replica_id.0,
        max_bytes: usize::try_from(req.max_bytes).unwrap_or(0),
        topics,
    };
    Ok((reading, answer))
}

/// The answer to send for `response`, read for `reading`.
fn finish(
    broker: &Broker,
    reading: &Reading,
    answer: Answer,
    response: FetchResponse,
) -> ResponseKind {
    let response = match answer {
        Answer::Sessionless => response,
        Answer::Full => {
            let now = broker.now();
            let id = sessions(broker).create(reading.replica_id, &reading.topics, &response, now);
            tracing::debug!(
                session_id = id,
                replica_id = reading.replica_id,
                topics = reading.topics.len(),
                "full fetch; session created (0: none)"
            );
            response.with_session_id(id)
        }
        Answer::Incremental { session_id, epoch } => {
            sessions(broker).answer_incremental(session_id, epoch, response)
        }
    };
    ResponseKind::Fetch(response)
}

pub fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16) -> Handled {
    let (reading, answer) = match plan(broker, &req, version) {
        Ok(planned) => planned,
        Err(code) => return Handled::Now(ResponseKind::Fetch(error_response(code))),
    };
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    // Register before the first read so no move in between is missed: with each partition read
    // (followers wake on its appends, consumers on its high-watermark moves), and with the
    // broker-wide signal for rarer events (topics appear or go away, roles change).
    let waiter = (!wait.is_zero()).then(|| watch_partitions(broker, &reading));
    let mut signal = if reading.replica_id >= 0 {
        broker.append_signal.subscribe()
    } else {
        broker.data_signal.subscribe()
    };
    let (resp, total, any_error) = read_once(broker, &reading);
    let Some(waiter) = waiter.filter(|_| total < min_bytes && !any_error) else {
        return Handled::Now(finish(broker, &reading, answer, resp));
    };
    let broker = broker.clone();
    Handled::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + wait;
        drop(resp);
        loop {
            // Both return at once if woken since the last read began (the waiter keeps a
            // permit, the signal its version). (`timeout` rather than `timeout_at`: the
            // simulator's tokio has only the former.)
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let woken = tokio::time::timeout(left, async {
                tokio::select! {
                    _ = waiter.notified() => true,
                    changed = signal.changed() => changed.is_ok(),
                }
            })
            .await;
            let (resp, total, any_error) = read_once(&broker, &reading);
            // Timed out (or the broker is going away): answer with what we have now.
            let timed_out = !matches!(woken, Ok(true));
            if timed_out || total >= min_bytes || any_error {
                return finish(&broker, &reading, answer, resp);
            }
            if tokio::time::Instant::now() >= deadline {
                return finish(&broker, &reading, answer, resp);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn partition(fetch_offset: i64) -> FetchPartition {
        FetchPartition::default().with_fetch_offset(fetch_offset)
    }

    fn reported(p: &FetchPartition) -> i64 {
        PartitionFetch::from_request(p).reported_durable_end()
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
        let ends: Vec<i64> = decoded.topics[0].partitions.iter().map(reported).collect();
        assert_eq!(ends, [70, 100, 100]);
    }

    #[test]
    fn a_malformed_tag_counts_as_absent() {
        let mut p = partition(40);
        p.unknown_tagged_fields
            .insert(DURABLE_END_TAG, Bytes::from_static(b"\x00\x01"));
        assert_eq!(reported(&p), 40);
    }
}
