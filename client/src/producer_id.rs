//! InitProducerId (API 22) for an idempotent producer: a producer id and epoch from the cluster
//! (KIP-98).
//!
//! An idempotent producer sends it with a null `transactional_id` to any broker (Kafka's Java
//! client picks the least loaded node); the broker hands out an id unique across the cluster and
//! its restarts, with epoch 0. From v3 the request carries the current id and epoch (KIP-360);
//! with a null transactional id Kafka ignores them and always hands out a new id, so we send `-1`.

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProducerId as WireProducerId};
use strata_core::error::ErrorCode;
use strata_core::types::{ProducerEpoch, ProducerId};
use thiserror::Error;

use super::connection::{Connection, ConnectionError};
use super::sequencer::ProducerIdentity;

/// InitProducerId versions this client speaks (v2 is the first flexible one).
pub const INIT_PRODUCER_ID_VERSIONS: (i16, i16) = (0, 5);

/// Kafka's default `transaction.timeout.ms`, which the Java client sends even without
/// transactions; the broker ignores it for a null transactional id.
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

#[derive(Debug, Error)]
pub enum InitProducerIdError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("InitProducerId refused: {0:?}")]
    Broker(ErrorCode),
    #[error("InitProducerId answered an invalid id {producer_id} / epoch {epoch}")]
    Invalid { producer_id: i64, epoch: i16 },
}

impl InitProducerIdError {
    /// The error code a batch that could not be sent reports.
    pub fn code(&self) -> ErrorCode {
        match self {
            InitProducerIdError::Broker(code) => *code,
            InitProducerIdError::Connection(ConnectionError::NoCommonVersion { .. }) => {
                ErrorCode::UNSUPPORTED_VERSION
            }
            InitProducerIdError::Connection(_) => ErrorCode::LEADER_NOT_AVAILABLE,
            InitProducerIdError::Invalid { .. } => ErrorCode::UNKNOWN_SERVER_ERROR,
        }
    }
}

/// The request an idempotent (non-transactional) producer sends.
pub fn init_producer_id_request() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
        .with_producer_id(WireProducerId(-1))
        .with_producer_epoch(-1)
}

/// Asks `conn`'s broker for a new producer id.
pub async fn init_producer_id(conn: &Connection) -> Result<ProducerIdentity, InitProducerIdError> {
    let version = conn.version_for(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSIONS)?;
    let resp = conn.request(&init_producer_id_request(), version).await?;
    let code = ErrorCode(resp.error_code);
    if !code.is_ok() {
        return Err(InitProducerIdError::Broker(code));
    }
    // Parse, don't trust: a usable id is non-negative, and so is its epoch.
    if resp.producer_id.0 < 0 || resp.producer_epoch < 0 {
        return Err(InitProducerIdError::Invalid {
            producer_id: resp.producer_id.0,
            epoch: resp.producer_epoch,
        });
    }
    Ok(ProducerIdentity {
        producer_id: ProducerId(resp.producer_id.0),
        epoch: ProducerEpoch(resp.producer_epoch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn the_request_has_no_transactional_id_and_encodes_at_every_version() {
        let req = init_producer_id_request();
        assert_eq!(req.transactional_id, None);
        assert_eq!(req.producer_id.0, -1);
        for v in INIT_PRODUCER_ID_VERSIONS.0..=INIT_PRODUCER_ID_VERSIONS.1 {
            let mut buf = bytes::BytesMut::new();
            req.encode(&mut buf, v).expect("encodes");
        }
    }

    #[test]
    fn errors_map_to_codes_a_failed_batch_reports() {
        assert_eq!(
            InitProducerIdError::Broker(ErrorCode(15)).code(),
            ErrorCode(15)
        );
        let no_api = InitProducerIdError::Connection(ConnectionError::NoCommonVersion {
            api: ApiKey::InitProducerId,
            min: -1,
            max: -1,
            our_min: 0,
            our_max: 5,
        });
        assert_eq!(no_api.code(), ErrorCode::UNSUPPORTED_VERSION);
    }
}
