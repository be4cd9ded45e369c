//! AlterPartition (KIP-497): the partition leader asks to shrink or expand the ISR.
//!
//! Checks, in Kafka's order, each with the error the leader acts on:
//!
//! | check | error | what the leader does |
//! |---|---|---|
//! | topic and partition exist | `UNKNOWN_TOPIC_OR_PARTITION` | drops the request |
//! | broker epoch is current | `STALE_BROKER_EPOCH` | it is an old incarnation |
//! | leader epoch matches | `FENCED_LEADER_EPOCH` | it was deposed: waits for metadata |
//! | requester is the leader (at that epoch) | `NOT_LEADER_OR_FOLLOWER` | waits for metadata |
//! | partition epoch matches | `INVALID_UPDATE_VERSION` (+ current state) | retries from it |
//! | ISR holds the leader, is a subset of the replicas, adds only unfenced brokers | `INELIGIBLE_REPLICA` | retries later |
//!
//! An ISR equal (as a set) to the current one succeeds with no records. Success otherwise
//! commits the new ISR with `partition_epoch + 1`, same leader and leader epoch.

use super::Controller;
use super::changes::{Changes, Target, has_duplicates};
use crate::error::ErrorCode;
use crate::metadata::{MetadataRecord, PartitionImage, PartitionRecord};
use crate::rpc::{AlterPartitionRequest, Response};

fn record_of(topic: &str, partition: i32, p: &PartitionImage) -> PartitionRecord {
    PartitionRecord {
        topic: topic.to_string(),
        partition,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
    }
}

fn failed(code: ErrorCode, partition: Option<PartitionRecord>) -> (Response, Vec<MetadataRecord>) {
    (
        Response::AlterPartition {
            error_code: code.0,
            partition,
        },
        Vec::new(),
    )
}

impl Controller {
    pub(super) fn handle_alter_partition(
        &self,
        request: &AlterPartitionRequest,
    ) -> (Response, Vec<MetadataRecord>) {
        let topic = request.topic.as_str();
        let Some(current) = self.image.partition(topic, request.partition) else {
            return failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, None);
        };
        if !self.epoch_is_current(request.broker_id, request.broker_epoch) {
            return failed(ErrorCode::STALE_BROKER_EPOCH, None);
        }
        // Kafka checks the epoch first: a deposed leader learns it is fenced.
        if current.leader_epoch != request.leader_epoch {
            return failed(ErrorCode::FENCED_LEADER_EPOCH, None);
        }
        if current.leader != Some(request.broker_id) {
            return failed(ErrorCode::NOT_LEADER_OR_FOLLOWER, None);
        }
        if current.partition_epoch != request.partition_epoch {
            return failed(
                ErrorCode::INVALID_UPDATE_VERSION,
                Some(record_of(topic, request.partition, current)),
            );
        }
        let new_isr = &request.new_isr;
        let changes = Changes::new(&self.image);
        let eligible = new_isr.contains(&request.broker_id)
            && !has_duplicates(new_isr)
            && new_isr.iter().all(|r| current.replicas.contains(r))
            && new_isr
                .iter()
                .filter(|r| !current.isr.contains(r))
                .all(|r| changes.is_eligible(*r, topic, request.partition));
        if !eligible {
            return failed(ErrorCode::INELIGIBLE_REPLICA, None);
        }
        let same =
            new_isr.len() == current.isr.len() && new_isr.iter().all(|r| current.isr.contains(r));
        if same {
            return (
                Response::AlterPartition {
                    error_code: ErrorCode::NONE.0,
                    partition: Some(record_of(topic, request.partition, current)),
                },
                Vec::new(),
            );
        }
        let mut changes = changes;
        changes.set_partition(
            topic,
            request.partition,
            Target {
                replicas: current.replicas.clone(),
                isr: new_isr.clone(),
                leader: current.leader,
            },
        );
        let records = changes.finish();
        let committed = match records.as_slice() {
            [MetadataRecord::Partition(p)] => p.clone(),
            other => unreachable!("an ISR change is one partition record: {other:?}"),
        };
        assert_eq!(
            committed.leader_epoch, current.leader_epoch,
            "an ISR change keeps the leader epoch"
        );
        (
            Response::AlterPartition {
                error_code: ErrorCode::NONE.0,
                partition: Some(committed),
            },
            records,
        )
    }
}
