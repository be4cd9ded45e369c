//! AllocateProducerIds (KIP-730): brokers take producer ids from the controller in blocks, so
//! ids are unique cluster-wide without a ZooKeeper counter. Blocks are contiguous and only move
//! forward: `[next_producer_id, next_producer_id + block_size)` goes to the asking broker and
//! the `ProducerIds` record moves `next_producer_id` past it.

use super::Controller;
use super::changes::Changes;
use crate::error::ErrorCode;
use crate::metadata::MetadataRecord;
use crate::rpc::Response;
use crate::types::NodeId;

fn refused(code: ErrorCode) -> (Response, Vec<MetadataRecord>) {
    (
        Response::ProducerIds {
            error_code: code.0,
            first_producer_id: -1,
            count: 0,
        },
        Vec::new(),
    )
}

impl Controller {
    pub(super) fn handle_allocate_producer_ids(
        &self,
        broker_id: NodeId,
        broker_epoch: i64,
    ) -> (Response, Vec<MetadataRecord>) {
        if !self.epoch_is_current(broker_id, broker_epoch) {
            return refused(ErrorCode::STALE_BROKER_EPOCH);
        }
        let first = self.image.next_producer_id;
        let count = self.config.producer_id_block_size;
        let Some(next) = first.checked_add(i64::from(count)) else {
            // Kafka: "Exhausted all producerIds".
            return refused(ErrorCode::UNKNOWN_SERVER_ERROR);
        };
        let mut changes = Changes::new(&self.image);
        changes.push(MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id: next,
        });
        (
            Response::ProducerIds {
                error_code: ErrorCode::NONE.0,
                first_producer_id: first,
                count,
            },
            changes.finish(),
        )
    }
}
