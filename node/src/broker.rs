//! The broker's state: configuration, topics and their partitions, and the durable metadata.
//!
//! Invariants:
//! - The metadata file is written before a topic becomes visible (create / add partitions) and
//!   before its logs are removed (delete), so a crash never leaves a visible topic without its
//!   record. A partition directory left over from a deleted topic is removed before a topic of
//!   the same name is created, so old data never reappears.
//! - `topics` is only held for short synchronous sections, never across an `.await`.
//! - Admin operations are serialised by `admin` so the metadata file and the map agree.
//! - Single node: `producer_id_block_end` is what the metadata file says (it changes only under
//!   `admin`, after the file says so), so every save keeps the reservations (see
//!   [`crate::producer_ids`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::sync::watch;
use strata_core::ErrorCode;
use strata_core::log::{LogError, PartitionLog};
use strata_core::storage::Storage;
use thiserror::Error;

use crate::clock;
use crate::config::Config;
use crate::fetch_session::FetchSessionCache;
use crate::group::GroupCoordinators;
use crate::metadata_store::{
    MetadataError, MetadataStore, StoredMetadata, StoredTopic, new_cluster_id,
};
use crate::partition::{Partition, Signals};
use crate::producer_ids::{Block, BlockError, ProducerIds};
use crate::replication::ClusterState;
use crate::topic_config::{
    TopicError, fsync_before_ack, log_config, min_insync_replicas, validate_topic_name,
};
use strata_core::replica::Role;

pub use crate::topic::Topic;

/// A topic's config overrides, by name.
type Overrides = BTreeMap<String, String>;

/// Errors of admin operations, each with the Kafka error code it answers with.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("topic `{0}` already exists")]
    AlreadyExists(String),
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("this broker does not decide metadata; the controller does")]
    NotController,
    #[error("topic `{0}` is being created")]
    Creating(String),
    #[error("no producer id block: {0}")]
    ProducerIds(BlockError),
    /// A config change refused (IncrementalAlterConfigs, AlterConfigs), with its Kafka code.
    #[error("{message}")]
    Configs { code: ErrorCode, message: String },
}

impl BrokerError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BrokerError::Topic(TopicError::InvalidName { .. }) => {
                ErrorCode::INVALID_TOPIC_EXCEPTION
            }
            BrokerError::Topic(_) => ErrorCode::INVALID_CONFIG,
            BrokerError::AlreadyExists(_) => ErrorCode::TOPIC_ALREADY_EXISTS,
            BrokerError::UnknownTopic(_) => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            BrokerError::InvalidPartitions(_) => ErrorCode::INVALID_PARTITIONS,
            BrokerError::Metadata(_) => ErrorCode::KAFKA_STORAGE_ERROR,
            BrokerError::Log(e) => e.error_code(),
            BrokerError::NotController => ErrorCode::NOT_CONTROLLER,
            BrokerError::Creating(_) => ErrorCode::LEADER_NOT_AVAILABLE,
            // Kafka: "Exhausted all producerIds".
            BrokerError::ProducerIds(_) => ErrorCode::UNKNOWN_SERVER_ERROR,
            BrokerError::Configs { code, .. } => *code,
        }
    }
}

/// The broker.
#[derive(Debug)]
pub struct Broker {
    /// Validated configuration.
    pub config: Config,
    /// The disk.
    pub(crate) storage: Arc<dyn Storage>,
    /// The metadata file (single-node cluster only; a cluster's metadata is the quorum's).
    store: Option<MetadataStore>,
    /// Persisted cluster id (single node; in a cluster the image's, see [`Broker::cluster_id`]).
    cluster_id: String,
    /// Topics by name (ordered: Metadata lists them deterministically).
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises admin operations (create, delete, add partitions) and metadata reconciles.
    admin: Mutex<()>,
    /// Bumped whenever any high watermark moves; long-polling fetches wait on it.
    pub data_signal: Arc<watch::Sender<u64>>,
    /// Bumped whenever any log end moves; followers' long-polling fetches wait on it.
    pub append_signal: Arc<watch::Sender<u64>>,
    /// Bumped whenever a partition's role or the topic map changes: the group coordinators
    /// follow the offsets topic's leadership on it.
    pub role_signal: Arc<watch::Sender<u64>>,
    /// The group coordinators of the `__consumer_offsets` partitions this broker leads.
    pub groups: Arc<GroupCoordinators>,
    /// Origin of the monotonic [`Broker::now`].
    origin: tokio::time::Instant,
    /// Membership, metadata image and controller link; `None` on a single-node cluster.
    cluster: Option<Arc<ClusterState>>,
    /// Hands out producer ids (InitProducerId).
    pub producer_ids: Arc<ProducerIds>,
    /// Single node: the end of the last producer id block reserved in the metadata file (the
    /// next block starts here). Changed only under `admin`, after the file is saved.
    producer_id_block_end: AtomicI64,
    /// Fetch sessions (KIP-227) of the fetchers of this broker's partitions
    /// ([`crate::fetch_session`]).
    pub(crate) fetch_sessions: Mutex<FetchSessionCache>,
}

/// The seed of a broker's fetch session ids: the clock (simulated time under the simulator)
/// and the node id, so brokers and restarts draw different ids.
fn session_seed(node_id: i32) -> u64 {
    (clock::now_nanos() as u64) ^ (u64::from(node_id as u32) << 32)
}

impl Broker {
    /// Opens the data dir: loads (or creates) the metadata and reopens every partition log,
    /// recovering each. Does not start background tasks (see [`Broker::start_flushers`]).
    pub fn open(config: Config, storage: Arc<dyn Storage>) -> Result<Arc<Broker>, BrokerError> {
        let data_dir = config.data_dir.clone();
        storage
            .create_dir_all(&data_dir)
            .map_err(|source| MetadataError::Io {
                path: data_dir.clone(),
                source,
            })?;
        let store = MetadataStore::new(storage.clone(), &data_dir);
        let meta = match store.load()? {
            Some(m) => m,
            None => {
                let seed = clock::now_nanos() ^ ((config.node_id as u128) << 64);
                let m = StoredMetadata {
                    cluster_id: new_cluster_id(seed),
                    producer_id_block_end: 0,
                    topics: BTreeMap::new(),
                };
                store.save(&m)?;
                tracing::info!(cluster_id = %m.cluster_id, dir = %data_dir.display(), "initialised new data dir");
                m
            }
        };
        let (data_signal, _) = watch::channel(0u64);
        let (append_signal, _) = watch::channel(0u64);
        let (role_signal, _) = watch::channel(0u64);
        let groups = Arc::new(GroupCoordinators::new(&config));
        let node_id = config.node_id;
        let fetch_sessions = FetchSessionCache::for_config(&config, session_seed(node_id));
        let broker = Broker {
            config,
            storage,
            store: Some(store),
            cluster_id: meta.cluster_id.clone(),
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            data_signal: Arc::new(data_signal),
            append_signal: Arc::new(append_signal),
            role_signal: Arc::new(role_signal),
            groups,
            origin: tokio::time::Instant::now(),
            cluster: None,
            producer_ids: ProducerIds::new(),
            producer_id_block_end: AtomicI64::new(meta.producer_id_block_end),
            fetch_sessions: Mutex::new(fetch_sessions),
        };
        let mut topics = BTreeMap::new();
        for (name, t) in &meta.topics {
            let partitions = (0..t.partitions)
                .map(|i| broker.open_partition(name, i, &t.configs, false))
                .collect::<Result<Vec<_>, _>>()?;
            topics.insert(
                name.clone(),
                Arc::new(Topic {
                    name: name.clone(),
                    configs: t.configs.clone(),
                    created_offset: 0,
                    partitions,
                }),
            );
        }
        *broker.topics.write().unwrap_or_else(|p| p.into_inner()) = topics;
        Ok(Arc::new(broker))
    }

    /// A broker of a multi-node cluster: nothing is opened until the metadata image says which
    /// partitions this broker holds (see [`crate::replication::reconcile`]).
    pub fn open_cluster(
        config: Config,
        storage: Arc<dyn Storage>,
        cluster: Arc<ClusterState>,
    ) -> Result<Arc<Broker>, BrokerError> {
        let data_dir = config.data_dir.clone();
        storage
            .create_dir_all(&data_dir)
            .map_err(|source| MetadataError::Io {
                path: data_dir.clone(),
                source,
            })?;
        let (data_signal, _) = watch::channel(0u64);
        let (append_signal, _) = watch::channel(0u64);
        let (role_signal, _) = watch::channel(0u64);
        let groups = Arc::new(GroupCoordinators::new(&config));
        let node_id = config.node_id;
        let fetch_sessions = FetchSessionCache::for_config(&config, session_seed(node_id));
        Ok(Arc::new(Broker {
            config,
            storage,
            store: None,
            cluster_id: String::new(),
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            data_signal: Arc::new(data_signal),
            append_signal: Arc::new(append_signal),
            role_signal: Arc::new(role_signal),
            groups,
            origin: tokio::time::Instant::now(),
            cluster: Some(cluster),
            producer_ids: ProducerIds::new(),
            // Unused: a cluster's blocks come from the controller.
            producer_id_block_end: AtomicI64::new(0),
            fetch_sessions: Mutex::new(fetch_sessions),
        }))
    }

    /// The cluster link, on a multi-node cluster.
    pub fn cluster(&self) -> Option<Arc<ClusterState>> {
        self.cluster.clone()
    }

    /// The cluster id: persisted on a single node, the metadata image's in a cluster.
    pub fn cluster_id(&self) -> String {
        match &self.cluster {
            Some(c) => c.image().cluster_id.clone().unwrap_or_default(),
            None => self.cluster_id.clone(),
        }
    }

    /// Monotonic time for the core state machines.
    pub fn now(&self) -> strata_core::types::Instant {
        clock::instant_since(self.origin)
    }

    /// The wake-up signals partitions bump.
    pub fn signals(&self) -> Signals {
        Signals {
            data: self.data_signal.clone(),
            append: self.append_signal.clone(),
            roles: self.role_signal.clone(),
        }
    }

    /// Wakes every long poll and the group coordinators (topics appeared or went away).
    pub fn wake_waiters(&self) {
        self.data_signal.send_modify(|v| *v = v.wrapping_add(1));
        self.append_signal.send_modify(|v| *v = v.wrapping_add(1));
        self.role_signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Serialises admin operations and metadata reconciles.
    pub(crate) fn admin_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the topic map (cluster mode: after a reconcile). Flushers of partitions that
    /// are new in the map are started.
    pub(crate) fn replace_topics(&self, topics: BTreeMap<String, Arc<Topic>>) {
        let old = self.topics();
        for t in topics.values() {
            for p in &t.partitions {
                let known = old
                    .get(&t.name)
                    .and_then(|o| o.partitions.iter().find(|q| Arc::ptr_eq(q, p)))
                    .is_some();
                if !known && p.has_log() {
                    self.spawn_flusher(p);
                }
            }
        }
        for t in topics.values() {
            let changed = old
                .get(&t.name)
                .is_some_and(|o| o.created_offset == t.created_offset && o.configs != t.configs);
            if changed {
                self.apply_topic_configs(t);
            }
        }
        *self.topics.write().unwrap_or_else(|p| p.into_inner()) = topics;
        self.role_signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Gives every partition of `topic` the settings of its (changed) overrides.
    fn apply_topic_configs(&self, topic: &Topic) {
        let log = log_config(&topic.configs, &self.config);
        let fsync = fsync_before_ack(&topic.configs, &self.config);
        let min_isr = min_insync_replicas(&topic.configs, &self.config);
        for p in &topic.partitions {
            p.apply_configs(log.clone(), fsync, min_isr);
        }
        tracing::info!(topic = %topic.name, configs = ?topic.configs, "topic configs changed");
    }

    /// Single node: replaces topic `name`'s overrides with what `change` makes of them (or only
    /// computes them, with `validate_only`). The metadata file is saved before the topic shows
    /// the new overrides and its logs take them. Returns the new overrides.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        change: impl FnOnce(&Overrides) -> Result<Overrides, BrokerError>,
        validate_only: bool,
    ) -> Result<Overrides, BrokerError> {
        let _admin = self.admin_lock();
        let Some(topic) = self.topic(name) else {
            return Err(BrokerError::UnknownTopic(name.to_string()));
        };
        let configs = change(&topic.configs)?;
        if validate_only || configs == topic.configs {
            return Ok(configs);
        }
        let mut meta = self.stored();
        meta.topics.insert(
            name.to_string(),
            StoredTopic {
                partitions: topic.partitions.len() as i32,
                configs: configs.clone(),
            },
        );
        self.save(&meta)?;
        let altered = Arc::new(Topic {
            name: name.to_string(),
            configs: configs.clone(),
            created_offset: topic.created_offset,
            partitions: topic.partitions.clone(),
        });
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), altered.clone());
        self.apply_topic_configs(&altered);
        Ok(configs)
    }

    pub(crate) fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        configs: &BTreeMap<String, String>,
        fresh: bool,
    ) -> Result<Arc<Partition>, BrokerError> {
        self.open_partition_as(topic, index, configs, fresh, Role::Sole)
    }

    /// Opens (recovers) or, with `fresh`, creates a partition's log.
    pub(crate) fn open_partition_as(
        &self,
        topic: &str,
        index: i32,
        configs: &BTreeMap<String, String>,
        fresh: bool,
        role: Role,
    ) -> Result<Arc<Partition>, BrokerError> {
        let dir = self.partition_dir(topic, index);
        if fresh {
            // A leftover of a deleted topic of the same name must not come back.
            self.storage
                .remove_dir_all(&dir)
                .map_err(|source| LogError::Io {
                    op: "remove stale dir",
                    path: dir.clone(),
                    source,
                })?;
        }
        let (log, report) = PartitionLog::open(
            self.storage.clone(),
            dir.clone(),
            log_config(configs, &self.config),
            clock::now_ms(),
        )?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                topic,
                partition = index,
                truncated_bytes = report.truncated_bytes,
                "recovery cut a torn or corrupt tail"
            );
        }
        for c in &report.corrupt_batches {
            tracing::error!(
                topic,
                partition = index,
                segment = c.segment.0,
                position = c.position,
                offset = c.offset.0,
                "corrupt batch found in the middle of the log; it will not be served"
            );
        }
        if !fresh {
            tracing::debug!(
                topic,
                partition = index,
                segments = report.segments,
                rebuilt_indexes = report.rebuilt_indexes,
                "partition recovered"
            );
        }
        Ok(Partition::new(
            topic.to_string(),
            index,
            log,
            fsync_before_ack(configs, &self.config),
            self.signals(),
            role,
        ))
    }

    /// Spawns the flusher of each partition.
    pub fn start_flushers(&self) {
        for t in self.topics().values() {
            for p in &t.partitions {
                self.spawn_flusher(p);
            }
        }
    }

    pub(crate) fn spawn_flusher(&self, p: &Arc<Partition>) {
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        tokio::spawn(p.clone().run_flusher(interval));
    }

    /// A snapshot of all topics.
    pub fn topics(&self) -> BTreeMap<String, Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let t = self.topic(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i).cloned())
    }

    /// Writes the single-node metadata file.
    fn save(&self, meta: &StoredMetadata) -> Result<(), BrokerError> {
        match &self.store {
            Some(store) => Ok(store.save(meta)?),
            // Reached only through a bug: cluster-mode admin goes to the controller.
            None => Err(BrokerError::NotController),
        }
    }

    fn stored(&self) -> StoredMetadata {
        StoredMetadata {
            cluster_id: self.cluster_id.clone(),
            producer_id_block_end: self.producer_id_block_end.load(Ordering::SeqCst),
            topics: self
                .topics()
                .into_iter()
                .map(|(n, t)| {
                    (
                        n,
                        StoredTopic {
                            partitions: t.partitions.len() as i32,
                            configs: t.configs.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Single node: reserves the next `count` producer ids, `[end, end + count)` where `end` is
    /// the stored end of the last block, by saving the new end in the metadata file. Returns
    /// only after the save (fsync, rename, directory fsync) succeeded: no id of a block is handed
    /// out before a restart would skip it.
    pub fn reserve_producer_id_block(&self, count: i32) -> Result<Block, BrokerError> {
        let _admin = self.admin_lock();
        let first = self.producer_id_block_end.load(Ordering::SeqCst);
        let block = Block::new(first, count).map_err(BrokerError::ProducerIds)?;
        let mut meta = self.stored();
        meta.producer_id_block_end = block.end();
        self.save(&meta)?;
        self.producer_id_block_end
            .store(block.end(), Ordering::SeqCst);
        tracing::debug!(
            first = block.first(),
            end = block.end(),
            "reserved producer ids"
        );
        Ok(block)
    }

    /// Refuses to grow the broker past `max.partitions` partitions in all (KIP-578's name): every
    /// partition is files and a flusher task, and a request for 2^31 of them must get an error,
    /// not exhaust the machine.
    fn check_partition_limit(&self, more: i64) -> Result<(), BrokerError> {
        let now: i64 = self
            .topics()
            .values()
            .map(|t| t.partitions.len() as i64)
            .sum();
        let max = self.config.max_partitions;
        if now + more > max {
            return Err(BrokerError::InvalidPartitions(format!(
                "{more} more partitions would exceed max.partitions={max} ({now} exist)"
            )));
        }
        Ok(())
    }

    /// Creates a topic (or only validates it). `partitions` must be ≥ 1.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        if partitions <= 0 {
            return Err(BrokerError::InvalidPartitions(format!(
                "number of partitions must be larger than 0, got {partitions}"
            )));
        }
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        if self.topic(name).is_some() {
            return Err(BrokerError::AlreadyExists(name.to_string()));
        }
        self.check_partition_limit(i64::from(partitions))?;
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_string(),
                configs,
                created_offset: 0,
                partitions: Vec::new(),
            }));
        }
        let parts = (0..partitions)
            .map(|i| self.open_partition(name, i, &configs, true))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = Arc::new(Topic {
            name: name.to_string(),
            configs,
            created_offset: 0,
            partitions: parts,
        });
        let mut meta = self.stored();
        meta.topics.insert(
            name.to_string(),
            StoredTopic {
                partitions,
                configs: topic.configs.clone(),
            },
        );
        self.save(&meta)?;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), topic.clone());
        for p in &topic.partitions {
            self.spawn_flusher(p);
        }
        self.role_signal.send_modify(|v| *v = v.wrapping_add(1));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Auto-creates `name` with `num.partitions` if allowed; returns the topic either way. In a
    /// cluster the controller creates topics: the outcome is then `BrokerError::Creating`, and
    /// the caller asks the controller (`handlers::admin::topic_or_create` does both).
    pub fn topic_or_create(&self, name: &str, allow: bool) -> Result<Arc<Topic>, BrokerError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        validate_topic_name(name)?;
        if !(allow && self.config.auto_create_topics) {
            return Err(BrokerError::UnknownTopic(name.to_string()));
        }
        if self.cluster.is_some() {
            return Err(BrokerError::Creating(name.to_string()));
        }
        match self.create_topic(name, self.config.num_partitions, BTreeMap::new(), false) {
            Err(BrokerError::AlreadyExists(_)) => self
                .topic(name)
                .ok_or_else(|| BrokerError::UnknownTopic(name.to_string())),
            other => other,
        }
    }

    /// Deletes a topic: metadata first, then the logs.
    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let Some(topic) = self.topic(name) else {
            return Err(BrokerError::UnknownTopic(name.to_string()));
        };
        let mut meta = self.stored();
        meta.topics.remove(name);
        self.save(&meta)?;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        for p in &topic.partitions {
            if let Err(e) = p.delete() {
                tracing::warn!(topic = name, partition = p.index, error = %e, "could not remove partition files");
            }
        }
        // Wake fetches waiting on this topic so they notice it is gone.
        self.wake_waiters();
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Raises a topic's partition count to `count`.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let Some(topic) = self.topic(name) else {
            return Err(BrokerError::UnknownTopic(name.to_string()));
        };
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(BrokerError::InvalidPartitions(format!(
                "topic currently has {current} partitions, which is higher than or equal to the requested {count}"
            )));
        }
        self.check_partition_limit(i64::from(count - current))?;
        if validate_only {
            return Ok(());
        }
        let mut parts = topic.partitions.clone();
        let mut added = Vec::new();
        for i in current..count {
            let p = self.open_partition(name, i, &topic.configs, true)?;
            parts.push(p.clone());
            added.push(p);
        }
        let new_topic = Arc::new(Topic {
            name: name.to_string(),
            configs: topic.configs.clone(),
            created_offset: 0,
            partitions: parts,
        });
        let mut meta = self.stored();
        meta.topics.insert(
            name.to_string(),
            StoredTopic {
                partitions: count,
                configs: topic.configs.clone(),
            },
        );
        self.save(&meta)?;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), new_topic);
        for p in &added {
            self.spawn_flusher(p);
        }
        self.role_signal.send_modify(|v| *v = v.wrapping_add(1));
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// One retention pass over every log.
    pub fn enforce_retention(&self) {
        let now = clock::now_ms();
        for t in self.topics().values() {
            for p in &t.partitions {
                let mut guard = p.log();
                let Some(log) = guard.as_mut() else { continue };
                match log.enforce_retention(now) {
                    Ok(r) if r.deleted_segments > 0 => {
                        tracing::info!(topic = %t.name, partition = p.index,
                        deleted_segments = r.deleted_segments, deleted_bytes = r.deleted_bytes,
                        log_start_offset = r.log_start_offset.0, "retention deleted segments")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(topic = %t.name, partition = p.index, error = %e, "retention pass failed")
                    }
                }
            }
        }
    }

    /// Persists every log's recovery point (its flushed offset), so that the next start-up
    /// scans only what may have been written after it. At a clean `shutdown` each log also
    /// syncs its active segment's indexes, so that the next start-up scans nothing
    /// (`PartitionLog::checkpoint_clean_shutdown`).
    pub fn checkpoint_recovery_points(&self, shutdown: bool) -> bool {
        let mut ok = true;
        for t in self.topics().values() {
            for p in &t.partitions {
                let mut guard = p.log();
                let Some(log) = guard.as_mut() else { continue };
                let done = if shutdown {
                    log.checkpoint_clean_shutdown()
                } else {
                    log.checkpoint_recovery_point()
                };
                if let Err(e) = done {
                    tracing::warn!(topic = %t.name, partition = p.index, error = %e, "recovery point checkpoint failed");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Stops every flusher, fsyncs every log and checkpoints its recovery point (graceful
    /// shutdown). Returns false if any flush failed.
    pub async fn flush_all(&self) -> bool {
        let mut ok = true;
        for t in self.topics().values() {
            for p in &t.partitions {
                p.stop();
                ok &= p.flush_once().await;
            }
        }
        ok && self.checkpoint_recovery_points(true)
    }
}

impl crate::group::GroupHost for Broker {
    fn now(&self) -> strata_core::types::Instant {
        Broker::now(self)
    }

    fn offsets_topic(&self) -> Option<Arc<Topic>> {
        self.topic(crate::group::OFFSETS_TOPIC)
    }

    fn roles(&self) -> watch::Receiver<u64> {
        self.role_signal.subscribe()
    }
}
