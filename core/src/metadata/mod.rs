//! The cluster metadata: the records the controller quorum commits and the image they replay to.
//!
//! The metadata log is the Raft log of the controller quorum ([`crate::quorum`]): each committed
//! Raft entry carries a batch of [`MetadataRecord`]s. Every node (controller or broker) holds a
//! [`MetadataImage`] that changes **only** by replaying committed records in log order, so a node
//! that replays the same prefix holds the same image (recovery is replay).
//!
//! Invariants (checked by `assert!`s in [`MetadataImage::replay`] and by tests):
//! - `offset` only grows: records are replayed once, in order.
//! - A partition's `leader_epoch` and `partition_epoch` never go back; every change of leader
//!   bumps `leader_epoch`; every change of leader or ISR bumps `partition_epoch` (KIP-497).
//! - A leader, when there is one, is a member of the ISR; the ISR is a non-empty subset of the
//!   replicas.
//! - An offline replica (`MetadataImage::offline_replicas`) is an assigned replica of an
//!   existing partition, never its leader, and in its ISR only as the last member (checked
//!   after every replayed batch).
//!
//! Compatibility: [`MetadataRecord`] variants and the image's fields are only ever appended, so
//! a newer node replays an older log and decodes an older snapshot ([`decode_image`]).

mod image;
mod records;
mod snapshot;

pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use records::{MetadataRecord, PartitionRecord, RecordBatch};
pub use snapshot::{decode_image, encode_image};
