//! Opening a replica's log in cluster mode, with the topic incarnation check; and which of this
//! broker's replicas are offline.
//!
//! A replica is **offline** here when its log failed (`PartitionLog::is_failed`: an fsync
//! error, a write or truncation that could not be cut back, a failed directory fsync) or could
//! not be opened (the partition is then served as a log-less entry although the image assigns
//! it here). A failed log stays failed until the broker restarts; an open that failed is tried
//! again at the next metadata change. The set goes to the controller (`membership`), which
//! moves leadership away and takes the replica out of the ISR (`strata_core::controller`,
//! `offline.rs`).
//!
//! `partition.metadata` in each partition directory (after Kafka's file of that name):
//!
//! ```text
//! version: 0\n
//! created_offset: <metadata offset of the topic's creation, decimal>\n
//! ```
//!
//! Written (tmp file, fsync, rename, directory sync) before the log's first segment, so a
//! directory whose marker is missing or names another incarnation holds no data of this topic
//! and is emptied before use.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use strata_core::log::LogError;
use strata_core::metadata::{MetadataImage, TopicImage};
use strata_core::storage::{Storage, read_vec};
use strata_core::types::NodeId;

use crate::broker::{Broker, BrokerError};
use crate::partition::Partition;
use strata_core::replica::Role;

const MARKER: &str = "partition.metadata";
const MARKER_TMP: &str = "partition.metadata.tmp";

fn read_marker(storage: &dyn Storage, dir: &Path) -> Option<u64> {
    let names = storage.list_dir(dir).ok()?;
    if !names.iter().any(|n| n == MARKER) {
        return None;
    }
    let file = storage.open(&dir.join(MARKER)).ok()?;
    let len = usize::try_from(file.len().ok()?.min(256)).ok()?;
    let raw = read_vec(&*file, 0, len).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "version: 0" {
        return None;
    }
    lines
        .next()?
        .strip_prefix("created_offset: ")?
        .trim()
        .parse()
        .ok()
}

fn write_marker(storage: &dyn Storage, dir: &Path, created_offset: u64) -> std::io::Result<()> {
    let tmp = dir.join(MARKER_TMP);
    let _ = storage.remove_file(&tmp);
    let file = storage.open(&tmp)?;
    let text = format!("version: 0\ncreated_offset: {created_offset}\n");
    file.set_len(0)?;
    file.write_at(text.as_bytes(), 0)?;
    file.sync_data()?;
    storage.rename(&tmp, &dir.join(MARKER))?;
    storage.sync_dir(dir)
}

impl Broker {
    /// Opens this broker's replica of `topic`'s partition `index`, creating it empty if the
    /// directory is missing or belongs to another incarnation of the topic.
    pub(crate) fn open_replica(
        &self,
        topic: &TopicImage,
        index: i32,
    ) -> Result<Arc<Partition>, BrokerError> {
        let dir = self.partition_dir(&topic.name, index);
        let io = |op: &'static str, source: std::io::Error| {
            BrokerError::Log(LogError::Io {
                op,
                path: dir.clone(),
                source,
            })
        };
        let storage = self.storage.clone();
        if read_marker(&*storage, &dir) != Some(topic.created_offset) {
            storage
                .remove_dir_all(&dir)
                .map_err(|e| io("remove stale partition dir", e))?;
            storage
                .create_dir_all(&dir)
                .map_err(|e| io("create partition dir", e))?;
            if let Some(parent) = dir.parent() {
                storage
                    .sync_dir(parent)
                    .map_err(|e| io("sync data dir", e))?;
            }
            write_marker(&*storage, &dir, topic.created_offset)
                .map_err(|e| io("write partition.metadata", e))?;
        }
        self.open_partition_as(
            &topic.name,
            index,
            &topic.configs,
            false,
            Role::Remote {
                leader: None,
                leader_epoch: -1,
            },
        )
    }
}

/// Whether the partition's local log failed (it holds one, and it refuses everything).
pub(crate) fn log_failed(partition: &Partition) -> bool {
    partition.state().failed || partition.log().as_ref().is_some_and(|l| l.is_failed())
}

impl Broker {
    /// The partitions whose replica on this broker (`me`) is offline: assigned here by `image`,
    /// and served by this broker (for the same incarnation of the topic) with a failed log or
    /// with none. Partitions the broker has not reconciled yet are left out.
    pub(crate) fn offline_replicas(
        &self,
        image: &MetadataImage,
        me: NodeId,
    ) -> BTreeSet<(String, i32)> {
        let mut offline = BTreeSet::new();
        for (name, served) in self.topics() {
            let Some(topic) = image
                .topics
                .get(&name)
                .filter(|t| t.created_offset == served.created_offset)
            else {
                continue;
            };
            for partition in &served.partitions {
                let assigned = topic
                    .partitions
                    .get(&partition.index)
                    .is_some_and(|p| p.replicas.contains(&me));
                if assigned && (!partition.has_log() || log_failed(partition)) {
                    offline.insert((name.clone(), partition.index));
                }
            }
        }
        offline
    }
}
