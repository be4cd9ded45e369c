//! Controller settings: Kafka's names, Kafka's defaults.

use thiserror::Error;

/// Most partitions one topic may have: a CreateTopics or CreatePartitions asking for more is
/// refused with `INVALID_PARTITIONS` (every partition is a record in one Raft entry; an
/// unbounded count would let one request exhaust the controller's memory).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// The controller's settings (the node maps its `server.properties` onto these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms` (KIP-631): an unfenced broker whose last heartbeat is older
    /// than this is fenced. Kafka default 9000.
    pub session_timeout_ms: u64,
    /// `num.partitions`: used when CreateTopics asks for -1 partitions.
    pub default_num_partitions: i32,
    /// `default.replication.factor`: used when CreateTopics asks for -1.
    pub default_replication_factor: i16,
    /// `auto.leader.rebalance.enable`: periodically move leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds (Kafka: 300 s).
    pub leader_imbalance_check_interval_ms: u64,
    /// `unclean.leader.election.enable`: an offline partition may elect a replica outside its
    /// ISR (and lose committed data). Off by default, as in Kafka.
    pub unclean_leader_election: bool,
    /// Producer ids handed out per AllocateProducerIds (KIP-730: 1000).
    pub producer_id_block_size: i32,
    /// Written as the `ClusterId` record by the first active controller if the image has none.
    pub cluster_id: String,
}

/// A setting the controller cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("broker.session.timeout.ms must be positive")]
    SessionTimeout,
    #[error("num.partitions must be in 1..={MAX_PARTITIONS_PER_TOPIC}, got {0}")]
    NumPartitions(i32),
    #[error("default.replication.factor must be positive, got {0}")]
    ReplicationFactor(i16),
    #[error("leader.imbalance.check.interval must be positive")]
    ImbalanceInterval,
    #[error("the producer id block size must be positive, got {0}")]
    ProducerIdBlockSize(i32),
    #[error("the cluster id must not be empty")]
    ClusterId,
}

impl ControllerConfig {
    /// Kafka's defaults, with the given cluster id.
    pub fn kafka_defaults(cluster_id: impl Into<String>) -> ControllerConfig {
        ControllerConfig {
            session_timeout_ms: 9_000,
            default_num_partitions: 1,
            default_replication_factor: 1,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            unclean_leader_election: false,
            producer_id_block_size: 1_000,
            cluster_id: cluster_id.into(),
        }
    }

    /// Checks the settings (the node calls this when it loads its configuration; the controller
    /// asserts it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.session_timeout_ms == 0 {
            return Err(ConfigError::SessionTimeout);
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&self.default_num_partitions) {
            return Err(ConfigError::NumPartitions(self.default_num_partitions));
        }
        if self.default_replication_factor <= 0 {
            return Err(ConfigError::ReplicationFactor(
                self.default_replication_factor,
            ));
        }
        if self.leader_imbalance_check_interval_ms == 0 {
            return Err(ConfigError::ImbalanceInterval);
        }
        if self.producer_id_block_size <= 0 {
            return Err(ConfigError::ProducerIdBlockSize(
                self.producer_id_block_size,
            ));
        }
        if self.cluster_id.is_empty() {
            return Err(ConfigError::ClusterId);
        }
        Ok(())
    }

    /// The session timeout in [`crate::types::Instant`] units (nanoseconds).
    pub(super) fn session_timeout_nanos(&self) -> u64 {
        self.session_timeout_ms.saturating_mul(1_000_000)
    }
}
