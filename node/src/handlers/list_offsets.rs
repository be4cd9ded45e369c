//! ListOffsets: -2 → log start offset, -1 → high watermark, a timestamp → the earliest offset
//! whose timestamp is at or after it (below the high watermark), else offset -1 / timestamp -1.
//! -3 → the first record with the largest timestamp (KIP-734). The isolation level is ignored: without transactions the last stable offset is the
//! high watermark.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strata_core::ErrorCode;

use super::fetch::check_leader_epoch;
use crate::broker::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

fn answer(
    index: i32,
    code: ErrorCode,
    offset: i64,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(code.0)
        .with_offset(offset)
        .with_timestamp(timestamp)
    // `leader_epoch` stays at its default (-1) here: it exists only from v4, and the codec
    // refuses to encode a non-default value in older versions (found by the dispatch fuzzer:
    // an error answer to ListOffsets v1 closed the connection).
}

pub fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.0.as_str());
            let partitions =
                t.partitions
                    .iter()
                    .map(|lp| {
                        let idx = lp.partition_index;
                        let Some(p) = topic.as_ref().and_then(|t| {
                            usize::try_from(idx).ok().and_then(|i| t.partitions.get(i))
                        }) else {
                            return answer(idx, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, -1, -1);
                        };
                        // Only the leader answers (KIP-207: a new leader answers only once
                        // its high watermark is established), checking the client's epoch.
                        let held = p.role().leader_epoch();
                        if let Err(code) = check_leader_epoch(held, lp.current_leader_epoch) {
                            return answer(idx, code, -1, -1);
                        }
                        let hw = match p.serving_high_watermark() {
                            Ok(hw) => hw,
                            Err(code) => return answer(idx, code, -1, -1),
                        };
                        // `leader_epoch` exists from v4; the codec refuses a non-default value
                        // before that.
                        let epoch = if version >= 4 { held.unwrap_or(-1) } else { -1 };
                        let guard = p.log();
                        let Some(log) = guard.as_ref() else {
                            return answer(idx, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, -1, -1);
                        };
                        let r = match lp.timestamp {
                            LATEST => answer(idx, ErrorCode::NONE, hw, -1),
                            EARLIEST => answer(idx, ErrorCode::NONE, log.log_start_offset().0, -1),
                            MAX_TIMESTAMP => match log.max_timestamp() {
                                Ok(Some(found)) if found.offset.0 < hw => {
                                    answer(idx, ErrorCode::NONE, found.offset.0, found.timestamp)
                                }
                                Ok(_) => answer(idx, ErrorCode::NONE, -1, -1),
                                Err(e) => answer(idx, e.error_code(), -1, -1),
                            },
                            ts if ts < 0 => answer(idx, ErrorCode::INVALID_REQUEST, -1, -1),
                            ts => match log.offset_for_timestamp(ts) {
                                Ok(Some(found)) if found.offset.0 < hw => {
                                    answer(idx, ErrorCode::NONE, found.offset.0, found.timestamp)
                                }
                                Ok(_) => answer(idx, ErrorCode::NONE, -1, -1),
                                Err(e) => answer(idx, e.error_code(), -1, -1),
                            },
                        };
                        if r.error_code == 0 {
                            r.with_leader_epoch(epoch)
                        } else {
                            r
                        }
                    })
                    .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
