//! `__consumer_offsets`: created on the first FindCoordinator for a group, replicated like any
//! topic.
//!
//! - Partitions: `offsets.topic.num.partitions` (50). Replication factor:
//!   `offsets.topic.replication.factor`, or with -1 (the default) min(3, live brokers) at
//!   creation — Kafka's default is 3 and refuses smaller clusters; ours works on one node and
//!   gets 3 copies as soon as there are 3 brokers. `min.insync.replicas` is the broker default:
//!   a coordinator's write below it fails with COORDINATOR_NOT_AVAILABLE (Kafka sets none).
//! - While it is being created (cluster: the controller decides; the client retries)
//!   FindCoordinator answers COORDINATOR_NOT_AVAILABLE.
//!
//! ## Size
//!
//! Kafka keeps the topic bounded by compaction, which Strata does not have yet, and only
//! `cleanup.policy=delete` exists. Time or size retention is *wrong* for this topic: it would
//! delete the only record of a live group's metadata or of an offset committed long ago and
//! never changed since, and consumers would silently restart from `auto.offset.reset`. So the
//! topic is created with `retention.ms=-1` and `retention.bytes=-1`: nothing is ever deleted,
//! and its size grows with every commit (about 100 bytes per partition committed). Segments are
//! 100 MiB (Kafka's `offsets.topic.segment.bytes`), so that a later snapshot-and-truncate pass can
//! drop whole segments.
//!
//! Not done yet, the intended bound: a coordinator knows the live state (its latest image), so
//! when its partition has grown by more than a threshold since the last snapshot it appends the
//! whole image again as fresh records (one batch per group, after a marker of the snapshot's
//! start offset `s`); once that snapshot is below the high watermark, every record below `s` is
//! superseded, and the log start can move to the first segment boundary at or below `s`
//! (advancing the log start offset the way DeleteRecords does, on the followers through the
//! fetch's log start offset). Load replays from the log start, so it sees the snapshot and
//! everything after it. That needs a "delete segments below offset" operation in the log.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_core::ErrorCode;
use strata_core::rpc::NewTopic;

use crate::broker::{Broker, BrokerError, Topic};

/// Kafka's name for the offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `offsets.topic.segment.bytes`.
const SEGMENT_BYTES: &str = "104857600";

/// The topic-level configs the offsets topic is created with (see the module docs).
pub fn topic_configs() -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "delete"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.bytes", SEGMENT_BYTES),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The offsets topic, created if it does not exist yet. `Err` is FindCoordinator's answer
/// meanwhile (COORDINATOR_NOT_AVAILABLE: the client retries).
pub fn ensure(broker: &Arc<Broker>) -> Result<Arc<Topic>, ErrorCode> {
    if let Some(t) = broker.topic(OFFSETS_TOPIC) {
        return Ok(t);
    }
    let partitions = i32::try_from(broker.config.cluster_int("offsets.topic.num.partitions"))
        .unwrap_or(50)
        .max(1);
    let Some(cluster) = broker.cluster() else {
        return match broker.create_topic(OFFSETS_TOPIC, partitions, topic_configs(), false) {
            Ok(t) => Ok(t),
            Err(BrokerError::AlreadyExists(_)) => broker
                .topic(OFFSETS_TOPIC)
                .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the offsets topic");
                Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
            }
        };
    };
    let image = cluster.image();
    if !image.topics.contains_key(OFFSETS_TOPIC) {
        let configured: i64 = broker
            .config
            .value("offsets.topic.replication.factor")
            .parse()
            .unwrap_or(-1);
        let live = image.live_brokers().count().max(1);
        let replication_factor = if configured > 0 {
            i16::try_from(configured).unwrap_or(i16::MAX)
        } else {
            i16::try_from(live.min(3)).unwrap_or(3)
        };
        crate::replication::admin::create_in_background(
            &cluster,
            NewTopic {
                name: OFFSETS_TOPIC.to_string(),
                num_partitions: partitions,
                replication_factor,
                assignments: BTreeMap::new(),
                configs: topic_configs(),
            },
        );
    }
    Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
}
