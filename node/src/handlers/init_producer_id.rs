//! InitProducerId (KIP-98): a producer id and epoch for an idempotent producer.
//!
//! As Kafka's `KafkaApis.handleInitProducerIdRequest` and `TransactionCoordinator
//! .handleInitProducerId`, in this order:
//! 1. `producer_id` and `producer_epoch` (v3+, KIP-360) are both -1 or both set, else
//!    `INVALID_REQUEST`.
//! 2. No transactional id: a fresh producer id with epoch 0, always. A producer id and epoch in
//!    the request do not change that (Kafka "blindly accepts" a non-transactional request: the
//!    producer gets a new id instead of an epoch bump).
//! 3. An empty transactional id: `INVALID_REQUEST`; a transaction timeout outside
//!    `1..=`[`TRANSACTION_MAX_TIMEOUT_MS`]: `INVALID_TRANSACTION_TIMEOUT` (checked only for
//!    transactional ids, as Kafka does).
//! 4. Any other transactional id: `UNSUPPORTED_VERSION`. Transactions are not implemented, and
//!    this is the error that ends them at once and says why: Java and kafka-python producers fail
//!    fatally ("Unexpected error in InitProducerIdResponse; The version of API is not
//!    supported."); librdkafka retries until `init_transactions()` times out and then reports
//!    "Failed to initialize Producer ID: Broker: Unsupported version". A retriable code
//!    (`COORDINATOR_NOT_AVAILABLE`, ...) would make every client loop; an authorization code would
//!    send users looking for ACLs that do not exist.
//!
//! Errors carry producer id -1 and epoch -1 (Kafka's `initTransactionError`). Ids come from
//! [`crate::producer_ids`]; when none is at hand the answer waits for the block being fetched,
//! and if that fails it is `COORDINATOR_LOAD_IN_PROGRESS`, which clients retry.

use std::sync::Arc;

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use strata_core::ErrorCode;

use crate::broker::Broker;
use crate::handled::Handled;
use crate::producer_ids::{self, Next, WAIT_BUDGET};

/// Kafka's default `transaction.max.timeout.ms` (15 minutes).
pub const TRANSACTION_MAX_TIMEOUT_MS: i32 = 900_000;

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

/// Fetches this broker's next block: from the controller in a cluster, by a durable reservation
/// in the metadata file on a single node.
pub fn fetch_block(broker: &Arc<Broker>) -> producer_ids::BlockFetch {
    let broker = broker.clone();
    Box::pin(async move {
        match broker.cluster() {
            Some(cluster) => producer_ids::from_controller(&cluster).await,
            None => broker
                .reserve_producer_id_block(producer_ids::LOCAL_BLOCK_SIZE)
                .map_err(|e| producer_ids::BlockError::Storage(e.to_string())),
        }
    })
}

pub fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest) -> Handled {
    if let Err(code) = check(&req) {
        return now(refused(code));
    }
    let fetch = {
        let broker = broker.clone();
        move || fetch_block(&broker)
    };
    let ids = broker.producer_ids.clone();
    match ids.try_next(&fetch) {
        Next::Id(id) => now(granted(id)),
        Next::Unavailable => now(refused(producer_ids::UNAVAILABLE)),
        Next::Wait => Handled::Later(Box::pin(async move {
            ResponseKind::InitProducerId(match ids.next_id(fetch, WAIT_BUDGET).await {
                Some(id) => granted(id),
                None => refused(producer_ids::UNAVAILABLE),
            })
        })),
    }
}

/// Steps 1, 3 and 4 of the module docs: `Ok` when a fresh producer id is the answer.
fn check(req: &InitProducerIdRequest) -> Result<(), ErrorCode> {
    match (req.producer_id.0, req.producer_epoch) {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => {}
        (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => return Err(ErrorCode::INVALID_REQUEST),
        _ => {}
    }
    match &req.transactional_id {
        None => Ok(()),
        Some(id) if id.is_empty() => Err(ErrorCode::INVALID_REQUEST),
        Some(_) if !(1..=TRANSACTION_MAX_TIMEOUT_MS).contains(&req.transaction_timeout_ms) => {
            Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT)
        }
        Some(_) => Err(ErrorCode::UNSUPPORTED_VERSION),
    }
}

fn now(resp: InitProducerIdResponse) -> Handled {
    Handled::Now(ResponseKind::InitProducerId(resp))
}

fn granted(id: i64) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(0)
}

fn refused(code: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.0)
        .with_producer_id(ProducerId(NO_PRODUCER_ID))
        .with_producer_epoch(NO_PRODUCER_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use kafka_protocol::messages::TransactionalId;
    use kafka_protocol::protocol::StrBytes;
    use strata_core::storage::MemStorage;

    async fn answer(broker: &Arc<Broker>, req: InitProducerIdRequest) -> InitProducerIdResponse {
        let resp = match handle(broker, req) {
            Handled::Now(r) => r,
            Handled::Later(f) => f.await,
            Handled::NoResponse => panic!("InitProducerId always answers"),
        };
        match resp {
            ResponseKind::InitProducerId(r) => r,
            other => panic!("not an InitProducerId response: {other:?}"),
        }
    }

    fn request(
        tid: Option<&'static str>,
        timeout_ms: i32,
        pid: i64,
        epoch: i16,
    ) -> InitProducerIdRequest {
        InitProducerIdRequest::default()
            .with_transactional_id(tid.map(|t| TransactionalId(StrBytes::from_static_str(t))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
    }

    /// Table of Kafka's rules (module docs): what each request gets.
    #[tokio::test]
    async fn answers_follow_kafka() {
        let config = Config::default().with("log.dirs", "/mem").expect("config");
        let broker = Broker::open(config, Arc::new(MemStorage::new())).expect("open");
        let cases: &[(&str, InitProducerIdRequest, Option<ErrorCode>)] = &[
            ("idempotent", request(None, 0, -1, -1), None),
            // KIP-360 fields from a non-transactional producer: still a fresh id, epoch 0.
            ("idempotent with an id", request(None, 0, 7, 3), None),
            (
                "id without epoch",
                request(None, 0, 7, -1),
                Some(ErrorCode::INVALID_REQUEST),
            ),
            (
                "epoch without id",
                request(None, 0, -1, 0),
                Some(ErrorCode::INVALID_REQUEST),
            ),
            (
                "empty transactional id",
                request(Some(""), 60_000, -1, -1),
                Some(ErrorCode::INVALID_REQUEST),
            ),
            (
                "zero timeout",
                request(Some("tx"), 0, -1, -1),
                Some(ErrorCode::INVALID_TRANSACTION_TIMEOUT),
            ),
            (
                "timeout too long",
                request(Some("tx"), 900_001, -1, -1),
                Some(ErrorCode::INVALID_TRANSACTION_TIMEOUT),
            ),
            (
                "transactional",
                request(Some("tx"), 60_000, -1, -1),
                Some(ErrorCode::UNSUPPORTED_VERSION),
            ),
        ];
        let mut last = -1;
        for (name, req, want) in cases {
            let resp = answer(&broker, req.clone()).await;
            match want {
                None => {
                    assert_eq!(resp.error_code, 0, "{name}");
                    assert_eq!(resp.producer_epoch, 0, "{name}");
                    assert!(
                        resp.producer_id.0 > last,
                        "{name}: {} after {last}",
                        resp.producer_id.0
                    );
                    assert_ne!(resp.producer_id.0, 7, "{name}: the given id is not reused");
                    last = resp.producer_id.0;
                }
                Some(code) => {
                    assert_eq!(resp.error_code, code.0, "{name}");
                    assert_eq!(
                        (resp.producer_id.0, resp.producer_epoch),
                        (-1, -1),
                        "{name}"
                    );
                }
            }
        }
    }
}
