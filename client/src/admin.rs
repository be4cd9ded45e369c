//! Cluster and topic administration: Metadata, CreateTopics and ListOffsets.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata_core::error::ErrorCode;
use thiserror::Error;

use super::connection::{Connection, ConnectionError};

/// Metadata versions we speak (12 is the last that names topics without needing ids).
pub const METADATA_VERSIONS: (i16, i16) = (1, 12);
/// CreateTopics versions we speak.
pub const CREATE_TOPICS_VERSIONS: (i16, i16) = (2, 7);
/// ListOffsets versions we speak (8 is the last before KIP-1005's new sentinels).
pub const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 8);

/// `timestamp` sentinel of ListOffsets: the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// `timestamp` sentinel of ListOffsets: the high watermark.
pub const LATEST_TIMESTAMP: i64 = -1;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("broker error {code:?}: {message}")]
    Broker { code: ErrorCode, message: String },
    #[error("response has no entry for {0}")]
    Missing(String),
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub error: ErrorCode,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub error: ErrorCode,
    pub partitions: Vec<PartitionInfo>,
}

/// Admin calls over one connection.
pub struct Admin<'a> {
    conn: &'a Connection,
}

impl<'a> Admin<'a> {
    pub fn new(conn: &'a Connection) -> Admin<'a> {
        Admin { conn }
    }

    /// The full Metadata response for `topics` (`None`: every topic).
    pub async fn metadata(&self, topics: Option<&[&str]>) -> Result<MetadataResponse, AdminError> {
        self.metadata_creating(topics, false).await
    }

    /// As [`Admin::metadata`], letting the broker create missing topics when
    /// `auto.create.topics.enable` is on (`allow_auto_topic_creation`, what producers send).
    pub async fn metadata_creating(
        &self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, AdminError> {
        let version = self.conn.version_for(ApiKey::Metadata, METADATA_VERSIONS)?;
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        Ok(self.conn.request(&req, version).await?)
    }

    /// One topic's partitions, from Metadata.
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo, AdminError> {
        let resp = self.metadata(Some(&[topic])).await?;
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
            .ok_or_else(|| AdminError::Missing(topic.to_string()))?;
        let mut partitions: Vec<PartitionInfo> = t
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                partition: p.partition_index,
                leader: p.leader_id.0,
                error: ErrorCode(p.error_code),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(TopicInfo {
            name: topic.to_string(),
            error: ErrorCode(t.error_code),
            partitions,
        })
    }

    /// Creates a topic with `configs` (e.g. `("segment.bytes", "1048576")`). An existing topic
    /// is an error (`TOPIC_ALREADY_EXISTS`).
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> Result<(), AdminError> {
        let version = self
            .conn
            .version_for(ApiKey::CreateTopics, CREATE_TOPICS_VERSIONS)?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication_factor)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.to_string()))
                                    .with_value(Some(StrBytes::from_string(v.to_string())))
                            })
                            .collect(),
                    ),
            ]);
        let resp = self.conn.request(&req, version).await?;
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic)
            .ok_or_else(|| AdminError::Missing(topic.to_string()))?;
        if t.error_code != 0 {
            return Err(AdminError::Broker {
                code: ErrorCode(t.error_code),
                message: t
                    .error_message
                    .as_ref()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// ListOffsets for one partition: `timestamp` is a time in ms or [`EARLIEST_TIMESTAMP`] /
    /// [`LATEST_TIMESTAMP`]. Returns `(offset, timestamp)`; offset `-1` when no record is at or
    /// after the time.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64), AdminError> {
        let version = self
            .conn
            .version_for(ApiKey::ListOffsets, LIST_OFFSETS_VERSIONS)?;
        let req = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_isolation_level(0)
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let resp = self.conn.request(&req, version).await?;
        let p = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| AdminError::Missing(format!("{topic}-{partition}")))?;
        if p.error_code != 0 {
            return Err(AdminError::Broker {
                code: ErrorCode(p.error_code),
                message: String::new(),
            });
        }
        Ok((p.offset, p.timestamp))
    }
}
