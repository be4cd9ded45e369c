//! Leader routing: which broker leads each partition, and pooled connections to those brokers.
//!
//! In a cluster only a partition's leader appends, answers ListOffsets and serves Fetch; the
//! others answer `NOT_LEADER_OR_FOLLOWER`. A [`Router`] learns the brokers' addresses
//! (Metadata `brokers[].host/port`) and each partition's `leader_id` from any reachable broker,
//! and hands out a connection to the leader. Callers call [`Router::invalidate`] after
//! `NOT_LEADER_OR_FOLLOWER`, `LEADER_NOT_AVAILABLE` or a lost connection; the next
//! [`Router::leader_connection`] then asks Metadata again (Kafka clients do the same:
//! `Metadata.requestUpdate()` on those errors).
//!
//! **Invariant: a partition's leader never goes back to an older leader epoch** (KIP-320, Kafka's
//! `Metadata.updateLatestMetadata`). Any broker answers Metadata from its own image, and a broker
//! cut off from the controller still names itself leader under the epoch it was deposed from (a
//! "zombie" leader, which has not learnt that another replica took over). Were the view to follow
//! it, a producer would send its next batch to a log that lacks the batches the new leader
//! acknowledged, and the zombie would answer `OUT_OF_ORDER_SEQUENCE_NUMBER` to a batch whose every
//! predecessor was acknowledged (seed 162370). So a partition whose answer carries an older
//! leader epoch than the one we know keeps what we know, and the epoch a leader names in its
//! Produce answers ([`Router::observe_leader`]) counts as known: a producer whose view was one
//! epoch behind when the new leader acknowledged its batch must not then follow a zombie of the
//! epoch in between (seed 509313); an answer without an epoch (Metadata
//! before v7: `-1`) replaces it. A topic answered with an error is forgotten with its epochs: we
//! have no topic ids, and a topic recreated under the same name starts again at epoch 0.
//!
//! Connections are pooled per broker (`per_broker` of them, chosen by a caller's slot), so
//! pipelined requests of different partitions can share or spread over sockets as they like.
//!
//! Every connect and every Metadata request is bounded by the request timeout; a connection
//! whose Metadata request timed out is closed, so the next lookup asks another broker (a broker
//! cut off from the client would otherwise hold the lookup forever).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::MetadataResponse;
use strata_core::error::ErrorCode;
use thiserror::Error;
use tokio::sync::Mutex;

use super::admin::{Admin, AdminError};
use super::connection::{Connection, ConnectionConfig, ConnectionError};

#[derive(Debug, Error)]
pub enum RouterError {
    #[error("no bootstrap broker reachable: {0}")]
    NoBootstrap(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("{topic}-{partition} has no leader ({code:?})")]
    NoLeader {
        topic: String,
        partition: i32,
        code: ErrorCode,
    },
    #[error("leader {0} is not among the brokers Metadata lists")]
    UnknownBroker(i32),
    #[error("{0} timed out")]
    Timeout(String),
}

/// One partition as Metadata describes it, with its replica set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: i32,
    /// `-1` while there is none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: ErrorCode,
}

/// What one Metadata answer taught us.
#[derive(Debug, Default, Clone)]
struct View {
    /// Live brokers: node id → `host:port`.
    brokers: BTreeMap<i32, String>,
    /// Per topic, partitions sorted by index.
    topics: BTreeMap<String, Vec<PartitionLeader>>,
}

impl View {
    fn apply(&mut self, resp: &MetadataResponse) {
        // A broker list replaces the old one: fenced brokers drop out of Metadata.
        self.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        for t in &resp.topics {
            let Some(name) = t.name.as_ref() else {
                continue;
            };
            let known = self.topics.get(name.as_str());
            let mut parts: Vec<PartitionLeader> = t
                .partitions
                .iter()
                .map(|p| {
                    let answered = PartitionLeader {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        error: ErrorCode(p.error_code),
                    };
                    let known_here =
                        known.and_then(|ps| ps.iter().find(|k| k.partition == answered.partition));
                    let newer_known = known_here.filter(|k| {
                        answered.leader_epoch >= 0 && k.leader_epoch > answered.leader_epoch
                    });
                    match newer_known {
                        // A stale answer (see the module docs): keep the newer epoch's leader.
                        Some(k) => {
                            tracing::debug!(
                                topic = name.as_str(),
                                partition = k.partition,
                                known_epoch = k.leader_epoch,
                                answered_epoch = answered.leader_epoch,
                                answered_leader = answered.leader,
                                "ignoring metadata of an older leader epoch"
                            );
                            k.clone()
                        }
                        None => {
                            if let Some(k) = known_here.filter(|k| {
                                (k.leader, k.leader_epoch)
                                    != (answered.leader, answered.leader_epoch)
                            }) {
                                tracing::debug!(
                                    topic = name.as_str(),
                                    partition = k.partition,
                                    known_leader = k.leader,
                                    known_epoch = k.leader_epoch,
                                    leader = answered.leader,
                                    leader_epoch = answered.leader_epoch,
                                    "partition leader moved"
                                );
                            }
                            answered
                        }
                    }
                })
                .collect();
            parts.sort_by_key(|p| p.partition);
            if t.error_code == 0 {
                self.topics.insert(name.0.to_string(), parts);
            } else {
                self.topics.remove(name.0.as_str());
            }
        }
    }

    /// A broker answered a request for `topic`-`partition` as its leader under `leader_epoch`:
    /// taken if newer than what we know (never older, as for Metadata). A partition we do not
    /// know yet is left to Metadata, which also brings the broker's address.
    fn observe_leader(&mut self, topic: &str, partition: i32, leader: i32, leader_epoch: i32) {
        let Some(known) = self
            .topics
            .get_mut(topic)
            .and_then(|ps| ps.iter_mut().find(|p| p.partition == partition))
        else {
            return;
        };
        if leader_epoch > known.leader_epoch {
            tracing::debug!(
                topic,
                partition,
                known_leader = known.leader,
                known_epoch = known.leader_epoch,
                leader,
                leader_epoch,
                "partition leader moved (named by the leader)"
            );
            known.leader = leader;
            known.leader_epoch = leader_epoch;
            known.error = ErrorCode::NONE;
        }
    }

    fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topics
            .get(topic)?
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
            .filter(|&l| l >= 0)
    }
}

#[derive(Default)]
struct State {
    view: View,
    /// Per broker id: `per_broker` slots, opened lazily and reopened once broken.
    pools: BTreeMap<i32, Vec<Option<Arc<Connection>>>>,
    /// Set by [`Router::invalidate`] (leaders may have moved): the next lookup asks Metadata.
    stale: bool,
}

/// Routes requests for a partition to its leader's connection.
pub struct Router {
    bootstrap: Vec<String>,
    config: ConnectionConfig,
    per_broker: usize,
    /// Bound on each connect and each Metadata request.
    request_timeout: Duration,
    /// Whether Metadata may create the topics it asks about (producers: yes, as Kafka's
    /// `allow.auto.create.topics` default).
    auto_create: bool,
    state: Mutex<State>,
}

/// Default bound on a Metadata request (Kafka's `request.timeout.ms`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest bound on one connect (Kafka's `socket.connection.setup.timeout.max.ms` is 30 s, its
/// first try 10 s): the router's lock is held meanwhile, so a black-holed broker must not stall
/// every partition's lookup for a whole request timeout.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `addr` within `timeout` (at most [`MAX_CONNECT_TIMEOUT`]).
async fn connect(
    addr: &str,
    config: &ConnectionConfig,
    timeout: Duration,
) -> Result<Connection, RouterError> {
    let timeout = timeout.min(MAX_CONNECT_TIMEOUT);
    match tokio::time::timeout(timeout, Connection::connect(addr, config.clone())).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RouterError::Timeout(format!("connect to {addr}"))),
    }
}

impl Router {
    /// `per_broker` is at least 1.
    pub fn new(bootstrap: &[String], config: ConnectionConfig, per_broker: usize) -> Router {
        assert!(!bootstrap.is_empty(), "at least one bootstrap address");
        Router {
            bootstrap: bootstrap.to_vec(),
            config,
            per_broker: per_broker.max(1),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            auto_create: false,
            state: Mutex::new(State {
                stale: true,
                ..State::default()
            }),
        }
    }

    /// Bounds each connect and Metadata request by `timeout` instead of
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Router {
        self.request_timeout = timeout;
        self
    }

    /// Lets the broker create the topics leader lookups ask about (if it allows auto-creation).
    pub fn with_auto_create(mut self, auto_create: bool) -> Router {
        self.auto_create = auto_create;
        self
    }

    /// A live connection to some broker: a pooled one, else the first bootstrap that answers.
    pub async fn any_connection(&self) -> Result<Arc<Connection>, RouterError> {
        let mut st = self.state.lock().await;
        self.any_connection_locked(&mut st).await
    }

    async fn any_connection_locked(&self, st: &mut State) -> Result<Arc<Connection>, RouterError> {
        let pooled = st
            .pools
            .values()
            .flatten()
            .flatten()
            .find(|c| !c.is_broken());
        if let Some(c) = pooled {
            return Ok(Arc::clone(c));
        }
        // Known brokers first (the bootstrap list may hold dead nodes), then the bootstrap list.
        let mut errors = Vec::new();
        let mut addrs: Vec<String> = st.view.brokers.values().cloned().collect();
        addrs.extend(self.bootstrap.iter().cloned());
        for addr in addrs {
            match connect(&addr, &self.config, self.request_timeout).await {
                Ok(c) => return Ok(Arc::new(c)),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(RouterError::NoBootstrap(errors.join("; ")))
    }

    /// Asks Metadata about `topics` (`None`: every topic) and remembers the answer.
    async fn refresh_locked(
        &self,
        st: &mut State,
        topics: Option<&[&str]>,
    ) -> Result<MetadataResponse, RouterError> {
        let conn = self.any_connection_locked(st).await?;
        // Only named topics are created, never "every topic".
        let create = self.auto_create && topics.is_some_and(|t| !t.is_empty());
        let admin = Admin::new(&conn);
        let lookup = admin.metadata_creating(topics, create);
        let resp = match tokio::time::timeout(self.request_timeout, lookup).await {
            Ok(resp) => resp?,
            Err(_) => {
                conn.close("Metadata request timed out");
                return Err(RouterError::Timeout(format!(
                    "Metadata from {}",
                    conn.addr()
                )));
            }
        };
        st.view.apply(&resp);
        st.stale = false;
        Ok(resp)
    }

    /// Live brokers (id → `host:port`) per a fresh Metadata.
    pub async fn brokers(&self) -> Result<BTreeMap<i32, String>, RouterError> {
        let mut st = self.state.lock().await;
        self.refresh_locked(&mut st, Some(&[])).await?;
        Ok(st.view.brokers.clone())
    }

    /// `topic`'s partitions per a fresh Metadata (empty if the topic is unknown).
    pub async fn partitions(&self, topic: &str) -> Result<Vec<PartitionLeader>, RouterError> {
        let mut st = self.state.lock().await;
        self.refresh_locked(&mut st, Some(&[topic])).await?;
        Ok(st.view.topics.get(topic).cloned().unwrap_or_default())
    }

    /// A broker answered for `topic`-`partition` as its leader under `leader_epoch` (Produce's
    /// `current_leader`): from now on the view never names a leader of an older epoch, even if a
    /// deposed broker's Metadata does (see the module docs).
    pub async fn observe_leader(
        &self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
    ) {
        self.state
            .lock()
            .await
            .view
            .observe_leader(topic, partition, leader, leader_epoch);
    }

    /// Forget what we know about leaders; the next lookup asks Metadata again.
    pub async fn invalidate(&self) {
        self.state.lock().await.stale = true;
    }

    /// The connection in `slot` (modulo the pool size) to the leader of `topic`-`partition`,
    /// asking Metadata first if the leader is unknown or [`Router::invalidate`] was called.
    pub async fn leader_connection(
        &self,
        topic: &str,
        partition: i32,
        slot: usize,
    ) -> Result<(i32, Arc<Connection>), RouterError> {
        let mut st = self.state.lock().await;
        if st.stale || st.view.leader(topic, partition).is_none() {
            self.refresh_locked(&mut st, Some(&[topic])).await?;
        }
        let Some(leader) = st.view.leader(topic, partition) else {
            let code = st
                .view
                .topics
                .get(topic)
                .and_then(|ps| ps.iter().find(|p| p.partition == partition))
                .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, |p| p.error);
            return Err(RouterError::NoLeader {
                topic: topic.to_string(),
                partition,
                code,
            });
        };
        let addr = st
            .view
            .brokers
            .get(&leader)
            .cloned()
            .ok_or(RouterError::UnknownBroker(leader))?;
        let per_broker = self.per_broker;
        let pool = st
            .pools
            .entry(leader)
            .or_insert_with(|| vec![None; per_broker]);
        let entry = &mut pool[slot % per_broker];
        if let Some(c) = entry
            .as_ref()
            .filter(|c| !c.is_broken() && c.addr() == addr)
        {
            return Ok((leader, Arc::clone(c)));
        }
        let c = Arc::new(connect(&addr, &self.config, self.request_timeout).await?);
        *entry = Some(Arc::clone(&c));
        Ok((leader, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn partition(index: i32, leader: i32) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_replica_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
            .with_isr_nodes(vec![BrokerId(1), BrokerId(2)])
    }

    fn response(brokers: &[i32], parts: Vec<MetadataResponsePartition>) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(
                brokers
                    .iter()
                    .map(|&id| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(id))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(id * 10000 + 9092)
                    })
                    .collect(),
            )
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(parts),
            ])
    }

    #[test]
    fn leaders_and_addresses_come_from_metadata() {
        let mut view = View::default();
        view.apply(&response(
            &[1, 2, 3],
            vec![partition(1, 3), partition(0, 2)],
        ));
        assert_eq!(view.leader("t", 0), Some(2));
        assert_eq!(view.leader("t", 1), Some(3));
        assert_eq!(view.leader("t", 2), None);
        assert_eq!(view.leader("u", 0), None);
        assert_eq!(view.brokers[&3], "127.0.0.1:39092");
        assert_eq!(view.topics["t"][0].isr, vec![1, 2]);
    }

    fn at_epoch(p: MetadataResponsePartition, epoch: i32) -> MetadataResponsePartition {
        p.with_leader_epoch(epoch)
    }

    /// Seed 162370: broker 1, deposed while cut off from the controller, still named itself leader
    /// under epoch 0 after broker 2 had acknowledged a batch under epoch 1; the producer followed
    /// it and broker 1 refused the next batch's sequence. KIP-320: the view keeps epoch 1.
    #[test]
    fn a_stale_broker_cannot_move_a_leader_back_to_an_older_epoch() {
        let mut view = View::default();
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 1), 0)]));
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 2), 1)]));
        assert_eq!(view.leader("t", 0), Some(2));
        // The zombie's answer: itself, under the epoch it was deposed from.
        view.apply(&response(
            &[1, 2, 3],
            vec![at_epoch(partition(0, 1), 0), at_epoch(partition(1, 1), 0)],
        ));
        assert_eq!(view.leader("t", 0), Some(2), "epoch 1 is kept");
        assert_eq!(view.topics["t"][0].leader_epoch, 1);
        assert_eq!(
            view.leader("t", 1),
            Some(1),
            "a partition not known before is taken"
        );
        // The same epoch (an ISR change) and newer epochs are taken.
        let shrunk = at_epoch(partition(0, 2), 1).with_isr_nodes(vec![BrokerId(2)]);
        view.apply(&response(&[1, 2, 3], vec![shrunk]));
        assert_eq!(view.topics["t"][0].isr, vec![2]);
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 3), 2)]));
        assert_eq!(view.leader("t", 0), Some(3));
        // Leaderless under a newer epoch: no leader, rather than the old one.
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, -1), 3)]));
        assert_eq!(view.leader("t", 0), None);
    }

    /// Seed 509313: the producer's view still said epoch 1 when broker 2, leader since epoch 3,
    /// acknowledged its batch; a Metadata answer from broker 1, deposed at epoch 2 while cut off
    /// from the controller, then looked newer than what the view knew, and broker 1 refused the
    /// next batch's sequence. The epoch broker 2 named in its acknowledgement is known from then on.
    #[test]
    fn an_epoch_named_by_a_leader_outranks_a_zombie_in_between() {
        let mut view = View::default();
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 2), 1)]));
        view.observe_leader("t", 0, 2, 3);
        assert_eq!(view.topics["t"][0].leader_epoch, 3);
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 1), 2)]));
        assert_eq!(
            view.leader("t", 0),
            Some(2),
            "the zombie of epoch 2 is ignored"
        );
        // Older or equal epochs named later change nothing; a newer one moves the leader.
        view.observe_leader("t", 0, 1, 2);
        view.observe_leader("t", 0, 1, 3);
        assert_eq!(view.leader("t", 0), Some(2));
        view.observe_leader("t", 0, 3, 4);
        assert_eq!(view.leader("t", 0), Some(3));
        // A partition the view does not know is left to Metadata.
        view.observe_leader("u", 0, 1, 9);
        assert_eq!(view.leader("u", 0), None);
    }

    #[test]
    fn answers_without_epochs_and_recreated_topics_are_taken() {
        let mut view = View::default();
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 2), 5)]));
        // Metadata before v7 carries no epoch (-1): nothing to compare, so it is taken.
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 3), -1)]));
        assert_eq!(view.leader("t", 0), Some(3));
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 2), 5)]));
        // Deleted (answered with an error), then recreated: its epochs start again at 0.
        let mut deleted = response(&[1, 2, 3], vec![]);
        deleted.topics[0].error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;
        view.apply(&deleted);
        assert_eq!(view.leader("t", 0), None);
        view.apply(&response(&[1, 2, 3], vec![at_epoch(partition(0, 1), 0)]));
        assert_eq!(view.leader("t", 0), Some(1));
    }

    #[test]
    fn a_partition_without_leader_has_none_and_brokers_are_replaced() {
        let mut view = View::default();
        view.apply(&response(&[1, 2, 3], vec![partition(0, 2)]));
        view.apply(&response(&[1, 3], vec![partition(0, -1)]));
        assert_eq!(view.leader("t", 0), None);
        assert!(!view.brokers.contains_key(&2), "a fenced broker drops out");
    }
}
