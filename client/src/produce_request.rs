//! One Produce request on one connection, without retries or producer ids: build it, write it,
//! read how it ended. The [`super::sender`] builds on these; benchmarks and tests call them
//! directly to keep many requests in flight.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_core::error::ErrorCode;
use thiserror::Error;

use super::connection::{Connection, ConnectionError, InFlight};
use super::outcome::{ErrorClass, IndefiniteReason, ProduceOutcome, classify};
use super::sequencer::AttemptResult;

/// Produce versions this client can speak: 3 is the first with v2 batches, 11 the last without
/// topic ids.
pub const PRODUCE_VERSIONS: (i16, i16) = (3, 11);

/// Errors raised before anything was sent: the batch was definitely not written.
#[derive(Debug, Error)]
pub enum ProducerError {
    #[error("produce request could not be sent: {0}")]
    NotSent(ConnectionError),
    #[error("produce response has no entry for the partition")]
    MissingPartition,
}

/// Builds a Produce request carrying `records` (one or more whole v2 batches) for one partition.
pub fn produce_request(
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// Writes a Produce request without waiting. `None` for `acks=0`, which gets no response.
/// Benchmarks call this repeatedly to keep many requests in flight.
pub async fn start_produce(
    conn: &Connection,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> Result<Option<InFlight<ProduceResponse>>, ProducerError> {
    let version = conn
        .version_for(ApiKey::Produce, PRODUCE_VERSIONS)
        .map_err(ProducerError::NotSent)?;
    let req = produce_request(topic, partition, records, acks, timeout_ms);
    if acks == 0 {
        conn.send_without_response(&req, version)
            .await
            .map_err(ProducerError::NotSent)?;
        return Ok(None);
    }
    let in_flight = conn
        .start(&req, version)
        .await
        .map_err(ProducerError::NotSent)?;
    Ok(Some(in_flight))
}

/// Waits for a started Produce and says how the attempt ended.
pub async fn finish_attempt(in_flight: InFlight<ProduceResponse>, partition: i32) -> AttemptResult {
    finish_attempt_with_leader(in_flight, partition).await.0
}

/// [`finish_attempt`], with the leader and leader epoch the broker answered as, when it named
/// them (`current_leader`, Produce v10+; see `handlers/produce.rs`).
pub async fn finish_attempt_with_leader(
    in_flight: InFlight<ProduceResponse>,
    partition: i32,
) -> (AttemptResult, Option<(i32, i32)>) {
    match in_flight.wait().await {
        Ok(resp) => {
            let answered = resp
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == partition);
            match answered {
                Some(p) => {
                    let leader = &p.current_leader;
                    let named = (leader.leader_id.0 >= 0 && leader.leader_epoch >= 0)
                        .then_some((leader.leader_id.0, leader.leader_epoch));
                    let result = AttemptResult::Answered {
                        code: ErrorCode(p.error_code),
                        base_offset: p.base_offset,
                    };
                    (result, named)
                }
                // The broker answered without our partition: a broken response, and the write
                // itself is undecided.
                None => (
                    AttemptResult::NoAnswer("response without the partition".to_string()),
                    None,
                ),
            }
        }
        // Lost after it was written, or a response we could not decode (the broker did process
        // something): undecided either way.
        Err(e) => (AttemptResult::NoAnswer(e.to_string()), None),
    }
}

/// Waits for a started Produce and turns the response into the outcome of that one attempt.
pub async fn finish_produce(
    in_flight: InFlight<ProduceResponse>,
    partition: i32,
) -> ProduceOutcome {
    single_attempt_outcome(finish_attempt(in_flight, partition).await)
}

/// The outcome of a batch sent once, without producer id.
pub fn single_attempt_outcome(result: AttemptResult) -> ProduceOutcome {
    match result {
        AttemptResult::Answered { code, base_offset } if code.is_ok() => ProduceOutcome::Ok {
            base_offset,
            after_indefinite: false,
            possible_duplicate: false,
        },
        AttemptResult::Answered { code, .. }
            if classify(code) == ErrorClass::RetriableIndefinite =>
        {
            ProduceOutcome::Indefinite(IndefiniteReason::Broker(code))
        }
        AttemptResult::Answered { code, .. } | AttemptResult::NotSent(code) => {
            ProduceOutcome::Failed(code)
        }
        AttemptResult::NoAnswer(reason) => {
            ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(reason))
        }
        AttemptResult::NoAcks => ProduceOutcome::Indefinite(IndefiniteReason::NoAcks),
    }
}

#[cfg(test)]
mod tests {
    use strata_core::batch::build_batch;

    use super::*;

    #[test]
    fn request_carries_the_batch() {
        let batch = Bytes::from(build_batch(&[(b"x", None)], 1));
        let req = produce_request("t", 2, batch.clone(), -1, 1000);
        assert_eq!(req.topic_data[0].partition_data[0].index, 2);
        assert_eq!(req.topic_data[0].partition_data[0].records, Some(batch));
    }
}
