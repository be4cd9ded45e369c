//! Follower fetching: one task per leader broker pulls every partition this broker follows from
//! it, with the Kafka Fetch API carrying our `replica_id` — the same requests Kafka's
//! `ReplicaFetcherThread` sends.
//!
//! Per partition, in order:
//! 1. Truncate (KIP-101/279): ask the leader `OffsetForLeaderEpoch` for our latest epoch and cut
//!    our log where it diverges from the leader's.
//! 2. Fetch from our log end, append the batches verbatim (`append_replicated`: offsets and
//!    leader epochs as the leader assigned them), and take the leader's high watermark, capped
//!    by our own durable end.
//! 3. Take the leader's log start offset: delete our whole segments below it (and below our
//!    high watermark), as Kafka's follower does (`maybeIncrementLogStartOffset`). A fetch
//!    refused with OFFSET_OUT_OF_RANGE because our log ends below the leader's log start
//!    replaces our log by an empty one there (`truncateFullyAndStartAt`); other out-of-range
//!    answers send us back to step 1.
//! 4. Report our *durable* log end with every fetch (the tagged field [`DURABLE_END_TAG`]), so
//!    the leader counts a batch toward acks=-1 only once every ISR member has it on disk, while
//!    the fetch offset is our log end: the next fetch goes out while the flusher syncs what the
//!    last one brought (pipelined). While a flush is pending the fetch does not long-poll
//!    (`max_wait_ms` 0), so the leader hears the new durable end at most one round after it;
//!    when such a fetch brings nothing, the next one waits for the flush first instead of
//!    spinning.
//!
//! 5. Fetch in a session (KIP-227, [`super::fetch_session`]): after a full first fetch, each
//!    request lists only the partitions whose position (fetch offset, log start, leader epoch,
//!    durable end) changed, and forgets those this fetcher dropped; any failure starts over
//!    with a full fetch. An answer lists only partitions with news, so the leader's last high
//!    watermark and log start are kept per partition and re-applied when our durable end moves
//!    (our high watermark is capped by it).
//!
//! [`DURABLE_END_TAG`]: crate::fetch_session::DURABLE_END_TAG

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
};
use strata_core::ErrorCode;
use strata_core::log::EpochEndOffset;
use strata_core::types::{NodeId, Offset};

use crate::broker::Broker;
use crate::handlers::topic_name;
use crate::partition::Partition;
use crate::replication::ClusterState;
use crate::replication::fetch_session::{FollowerSession, Key, Position, SessionPlan};
use strata_client::connection::{Connection, ConnectionConfig};
use strata_core::replica::Role;

/// Fetch version followers send (the newest without topic ids).
const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch version followers send (v3+ carries the replica id).
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;

/// Starts the fetcher for `leader` unless one runs.
pub fn ensure_running(broker: &Arc<Broker>, leader: NodeId) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let mut running = cluster.fetchers.lock().unwrap_or_else(|p| p.into_inner());
    if running.insert(leader) {
        tokio::spawn(run(broker.clone(), leader));
    }
}

/// The partitions this broker follows `leader` for, with their epochs.
fn followed(broker: &Broker, leader: NodeId) -> Vec<(Arc<Partition>, i32, bool)> {
    let mut out = Vec::new();
    for t in broker.topics().values() {
        for p in &t.partitions {
            if let Role::Follower {
                leader: l,
                leader_epoch,
                needs_truncation,
            } = &*p.role()
                && *l == leader
            {
                out.push((p.clone(), *leader_epoch, *needs_truncation));
            }
        }
    }
    out
}

async fn run(broker: Arc<Broker>, leader: NodeId) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let me = cluster.node_id;
    let backoff = Duration::from_millis(broker.config.cluster_int("replica.fetch.backoff.ms"));
    let mut conn: Option<Connection> = None;
    let mut state = FetcherState::default();
    tracing::debug!(%leader, "replica fetcher started");
    loop {
        if cluster.stopping.load(Ordering::Relaxed) {
            break;
        }
        let parts = followed(&broker, leader);
        if parts.is_empty() {
            // Checked and removed under the lock, so a concurrent `ensure_running` either sees
            // this task still registered (and its partition is picked up by the next pass) or
            // starts a new one.
            let mut running = cluster.fetchers.lock().unwrap_or_else(|p| p.into_inner());
            if followed(&broker, leader).is_empty() {
                running.remove(&leader);
                tracing::debug!(%leader, "replica fetcher stopped: nothing to follow");
                return;
            }
            continue;
        }
        if conn.as_ref().is_none_or(Connection::is_broken) {
            let Some(c) = connect(&cluster, leader).await else {
                tokio::time::sleep(backoff).await;
                continue;
            };
            // Whatever the last connection's requests did to our session is unknown.
            state.session.on_failure();
            conn = Some(c);
        }
        let Some(c) = conn.as_ref() else { continue };
        let ok = if parts.iter().any(|(_, _, t)| *t) {
            truncate(&broker, c, me, &parts).await
        } else {
            fetch(&broker, c, me, &parts, &mut state).await
        };
        if !ok {
            conn = None;
            tokio::time::sleep(backoff).await;
        }
    }
    let mut running = cluster.fetchers.lock().unwrap_or_else(|p| p.into_inner());
    running.remove(&leader);
}

/// A connection to `leader`, or `None` (logged) if it has no address or cannot be reached.
async fn connect(cluster: &ClusterState, leader: NodeId) -> Option<Connection> {
    let image = cluster.image();
    let b = image.brokers.get(&leader)?;
    let addr = format!("{}:{}", b.host, b.port);
    let config = ConnectionConfig {
        client_id: format!("strata-replica-{}", cluster.node_id),
        api_versions_handshake: false,
        ..ConnectionConfig::default()
    };
    match tokio::time::timeout(Duration::from_secs(5), Connection::connect(&addr, config)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::debug!(%leader, error = %e, "cannot connect to the leader");
            None
        }
        Err(_) => {
            tracing::debug!(%leader, "connecting to the leader timed out");
            None
        }
    }
}

/// The request timeout of replica requests: the long poll plus slack.
fn request_timeout(broker: &Broker) -> Duration {
    Duration::from_millis(broker.config.cluster_int("replica.fetch.wait.max.ms"))
        + Duration::from_secs(10)
}

/// KIP-279 truncation of every partition that needs it. Returns false if the connection failed.
async fn truncate(
    broker: &Arc<Broker>,
    conn: &Connection,
    me: NodeId,
    parts: &[(Arc<Partition>, i32, bool)],
) -> bool {
    let mut topics: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut asked = Vec::new();
    for (p, epoch, needs) in parts {
        if !needs {
            continue;
        }
        let latest = {
            let guard = p.log();
            let Some(log) = guard.as_ref() else { continue };
            log.latest_epoch()
        };
        let Some(latest) = latest else {
            // An empty log (or one without epochs) has nothing to cut.
            finish_truncation(p, *epoch, None, true);
            continue;
        };
        let latest = latest.0;
        topics.entry(p.topic.clone()).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(*epoch)
                .with_leader_epoch(latest),
        );
        asked.push((p.clone(), *epoch));
    }
    if asked.is_empty() {
        return true;
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(me.0))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let response = match tokio::time::timeout(
        request_timeout(broker),
        conn.request(&request, OFFSET_FOR_LEADER_EPOCH_VERSION),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "OffsetForLeaderEpoch failed");
            return false;
        }
        Err(_) => return false,
    };
    let mut refused = false;
    for t in &response.topics {
        for r in &t.partitions {
            let Some((p, epoch)) = asked
                .iter()
                .find(|(p, _)| p.topic == t.topic.0.as_str() && p.index == r.partition)
            else {
                continue;
            };
            if r.error_code != ErrorCode::NONE.0 {
                tracing::debug!(topic = %p.topic, partition = p.index, error = r.error_code,
                    "OffsetForLeaderEpoch refused; waiting for metadata");
                refused = true;
                continue;
            }
            let state = {
                let guard = p.log();
                let Some(log) = guard.as_ref() else { continue };
                strata_core::replica::offset_truncation_state(
                    EpochEndOffset::new(r.leader_epoch, r.end_offset),
                    log.leader_epoch_entries(),
                    log.log_end_offset(),
                    Offset(p.state().high_watermark),
                )
            };
            finish_truncation(p, *epoch, Some(state.offset.0), state.truncation_completed);
        }
    }
    if refused {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Truncates to `cut` (if any) and, when `completed`, marks the partition ready to fetch — only
/// if it still follows in `epoch`. Not completed: another OffsetForLeaderEpoch round follows
/// with the new latest epoch (KIP-279).
fn finish_truncation(p: &Arc<Partition>, epoch: i32, cut: Option<i64>, completed: bool) {
    let mut replica = p.replica();
    if !matches!(replica.role(), Role::Follower { leader_epoch, .. } if *leader_epoch == epoch) {
        return;
    }
    if let Some(cut) = cut {
        let mut guard = p.log();
        let Some(log) = guard.as_mut() else { return };
        if cut < log.log_end_offset().0 {
            tracing::info!(topic = %p.topic, partition = p.index, from = log.log_end_offset().0,
                to = cut, "truncating a divergent suffix (KIP-279)");
            if let Err(e) = log.truncate_to(Offset(cut)) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
                return;
            }
            let leo = log.log_end_offset().0;
            drop(guard);
            replica.on_truncated(leo);
        }
    }
    replica.set_needs_truncation(epoch, !completed);
    p.publish(&replica);
}

/// What a fetcher task keeps from one round to the next.
#[derive(Debug, Default)]
struct FetcherState {
    /// Our fetch session with the leader (KIP-227).
    session: FollowerSession,
    /// The last answer's high watermark and log start per partition, with the leader epoch we
    /// fetched in: re-applied when our durable end moves (the cap on our high watermark lifts)
    /// because an incremental answer does not list a partition whose marks stayed put.
    marks: BTreeMap<Key, LeaderMarks>,
    /// The last round went out with a flush pending and brought nothing: this round first
    /// waits for the flushes.
    idle: bool,
}

#[derive(Debug, Clone, Copy)]
struct LeaderMarks {
    leader_epoch: i32,
    high_watermark: i64,
    log_start_offset: i64,
}

/// One fetch round. Returns false if the connection failed.
async fn fetch(
    broker: &Arc<Broker>,
    conn: &Connection,
    me: NodeId,
    parts: &[(Arc<Partition>, i32, bool)],
    state: &mut FetcherState,
) -> bool {
    // A round that brought nothing while flushes were pending waits for them before the next
    // (see the module docs). A log whose fsync failed has no durable end to report: it stops
    // fetching (its node restarts), or the leader would count data this replica may lose.
    if state.idle {
        for (p, _, _) in parts {
            if p.fsync_before_ack() {
                p.wait_until_flushed().await;
            }
        }
    }
    let parts: Vec<_> = parts.iter().filter(|(p, _, _)| !p.state().failed).collect();
    if parts.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return true;
    }
    let round = fetch_request(broker, me, &parts, state);
    let response = match tokio::time::timeout(
        request_timeout(broker),
        conn.request(&round.request, FETCH_VERSION),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "replica fetch failed");
            state.session.on_failure();
            return false;
        }
        Err(_) => {
            state.session.on_failure();
            return false;
        }
    };
    let code = ErrorCode(response.error_code);
    if !state
        .session
        .on_answer(round.plan, code, response.session_id)
    {
        tracing::debug!(
            error = code.0,
            "fetch session refused; the next fetch is full"
        );
        return true;
    }
    state.idle = round.flush_pending;
    if apply_answer(state, &round.asked, &response) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Applies each partition's answer (remembering the leader's marks). Returns whether any was
/// refused (waiting for metadata, or not appended by our log: the round backs off).
fn apply_answer(
    state: &mut FetcherState,
    asked: &BTreeMap<Key, (Arc<Partition>, i32, i64)>,
    response: &FetchResponse,
) -> bool {
    let mut refused = false;
    for t in &response.responses {
        for r in &t.partitions {
            let key = (t.topic.0.to_string(), r.partition_index);
            let Some((p, epoch, fetch_offset)) = asked.get(&key) else {
                continue;
            };
            if r.error_code == ErrorCode::NONE.0 {
                let marks = LeaderMarks {
                    leader_epoch: *epoch,
                    high_watermark: r.high_watermark,
                    log_start_offset: r.log_start_offset,
                };
                state.marks.insert(key, marks);
            }
            match apply_fetched(p, *epoch, *fetch_offset, r) {
                Fetched::Refused => refused = true,
                Fetched::Records => state.idle = false,
                Fetched::Nothing => {}
            }
        }
    }
    refused
}

/// A fetch round's request: what it asks for each partition, and whether any flush was pending
/// when it was built (then it does not long-poll).
struct Round {
    request: FetchRequest,
    /// The session part of the request, for [`FollowerSession::on_answer`].
    plan: SessionPlan,
    /// `(partition, leader epoch, fetch offset)` of every partition fetched (an incremental
    /// answer may bring any of them, listed in the request or not).
    asked: BTreeMap<Key, (Arc<Partition>, i32, i64)>,
    flush_pending: bool,
}

/// Every partition a round fetches: the partition, its leader epoch and position.
type Wanted = BTreeMap<Key, (Arc<Partition>, i32, Position)>;

/// Each partition's position this round: from its log end, with its durable end; and whether
/// any flush is pending.
fn positions(broker: &Broker, parts: &[&(Arc<Partition>, i32, bool)]) -> (Wanted, bool) {
    let partition_max_bytes =
        i32::try_from(broker.config.cluster_int("replica.fetch.max.bytes")).unwrap_or(i32::MAX);
    let mut out = BTreeMap::new();
    let mut flush_pending = false;
    for &(p, epoch, _) in parts {
        let (leo, log_start) = {
            let guard = p.log();
            let Some(log) = guard.as_ref() else { continue };
            (log.log_end_offset().0, log.log_start_offset().0)
        };
        let durable_end = p.state().durable_end.min(leo);
        flush_pending |= durable_end < leo;
        let position = Position {
            fetch_offset: leo,
            log_start_offset: log_start,
            current_leader_epoch: *epoch,
            partition_max_bytes,
            durable_end,
        };
        out.insert((p.topic.clone(), p.index), (p.clone(), *epoch, position));
    }
    (out, flush_pending)
}

/// Re-applies the leader's last high watermark and log start to each partition this round
/// lists (its durable end may have moved, lifting the cap on our high watermark), if we still
/// fetch it in the epoch they came in; forgets the marks of partitions no longer fetched.
fn reapply_marks(state: &mut FetcherState, wanted: &Wanted, plan: &SessionPlan) {
    state.marks.retain(|key, _| wanted.contains_key(key));
    for t in &plan.topics {
        for fp in &t.partitions {
            let key = (t.topic.0.to_string(), fp.partition);
            let (Some(marks), Some((p, epoch, _))) = (state.marks.get(&key), wanted.get(&key))
            else {
                continue;
            };
            if marks.leader_epoch == *epoch {
                p.set_follower_high_watermark(marks.high_watermark);
                p.delete_segments_below(marks.log_start_offset);
            }
        }
    }
}

/// The Fetch request for `parts`: what our session lists of them (KIP-227).
fn fetch_request(
    broker: &Broker,
    me: NodeId,
    parts: &[&(Arc<Partition>, i32, bool)],
    state: &mut FetcherState,
) -> Round {
    let (wanted, flush_pending) = positions(broker, parts);
    let plan = state.session.plan(
        wanted
            .iter()
            .map(|(k, (_, _, position))| (k.clone(), position.clone()))
            .collect(),
    );
    reapply_marks(state, &wanted, &plan);
    let max_wait_ms = if flush_pending {
        0
    } else {
        i32::try_from(broker.config.cluster_int("replica.fetch.wait.max.ms")).unwrap_or(500)
    };
    let max_bytes = broker
        .config
        .cluster_int("replica.fetch.response.max.bytes");
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(me.0))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(i32::try_from(max_bytes).unwrap_or(i32::MAX))
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.session_epoch)
        .with_topics(plan.topics.clone())
        .with_forgotten_topics_data(plan.forgotten.clone());
    let asked = wanted
        .into_iter()
        .map(|(k, (p, epoch, position))| (k, (p, epoch, position.fetch_offset)))
        .collect();
    Round {
        request,
        plan,
        asked,
        flush_pending,
    }
}

/// What one partition's answer brought.
enum Fetched {
    /// Refused (waiting for metadata), or our log refused the records: the round backs off.
    Refused,
    /// Records came (appended, or stale for a role or log that moved on).
    Records,
    /// No records (or an answer handled otherwise: out of range, a role that moved on).
    Nothing,
}

/// Applies one partition's answer to a fetch from `fetch_offset` in leader epoch `epoch`.
fn apply_fetched(p: &Arc<Partition>, epoch: i32, fetch_offset: i64, r: &PartitionData) -> Fetched {
    match ErrorCode(r.error_code) {
        ErrorCode::NONE => {}
        ErrorCode::OFFSET_OUT_OF_RANGE if r.log_start_offset > fetch_offset => {
            // Kafka's `handleOutOfRangeError`: the leader deleted everything we have and more
            // (retention, or an offsets partition's snapshot while we were away); fetching
            // from its log start is the only way on.
            start_at_leader_log_start(p, epoch, r.log_start_offset);
            return Fetched::Nothing;
        }
        ErrorCode::OFFSET_OUT_OF_RANGE => {
            tracing::warn!(topic = %p.topic, partition = p.index, fetch_offset,
                "leader says our fetch offset is out of range; truncating again");
            mark_needs_truncation(p, epoch);
            return Fetched::Nothing;
        }
        code => {
            tracing::debug!(topic = %p.topic, partition = p.index, error = code.0,
                "replica fetch refused; waiting for metadata");
            return Fetched::Refused;
        }
    }
    let records = r.records.clone().unwrap_or_default();
    let mut fetched = Fetched::Nothing;
    if !records.is_empty() {
        fetched = Fetched::Records;
        match append_fetched(p, epoch, fetch_offset, records) {
            Appended::Yes(leo) => p.on_appended(leo),
            // Refused by our own log (a full disk, EIO): the round backs off instead of
            // refetching the same records at once (found by jepsen/'s disk nemesis: thousands
            // of failed appends and error lines a second, a core burnt).
            Appended::No => return Fetched::Refused,
            Appended::MovedOn => return Fetched::Records,
        }
    }
    p.set_follower_high_watermark(r.high_watermark);
    // Kafka's follower `maybeIncrementLogStartOffset`: the leader deleted what is below its log
    // start (retention, or an offsets partition's snapshot); so do we, in whole segments and
    // only below our own high watermark.
    p.delete_segments_below(r.log_start_offset);
    fetched
}

/// Whether fetched records were appended.
enum Appended {
    /// Appended; the new log end offset.
    Yes(i64),
    /// Not appended: the log moved (another round appended) or refused them.
    No,
    /// We no longer follow in that epoch, or must truncate first: the answer is stale.
    MovedOn,
}

/// Appends fetched `records` verbatim, if we still follow in `epoch` and our log still ends at
/// `fetch_offset`.
fn append_fetched(p: &Arc<Partition>, epoch: i32, fetch_offset: i64, records: Bytes) -> Appended {
    let role = p.role();
    let still = matches!(&*role,
        Role::Follower { leader_epoch, needs_truncation: false, .. } if *leader_epoch == epoch);
    if !still {
        return Appended::MovedOn;
    }
    let mut guard = p.log();
    let Some(log) = guard.as_mut() else {
        return Appended::MovedOn;
    };
    if log.log_end_offset().0 != fetch_offset {
        return Appended::MovedOn;
    }
    match log.append_replicated(records, crate::clock::now_ms()) {
        Ok(_) => Appended::Yes(log.log_end_offset().0),
        // Said once: a failed log refuses every later append the same way until a restart's
        // recovery (the replica is offline meanwhile).
        Err(e @ strata_core::log::LogError::Failed(_)) => {
            tracing::debug!(topic = %p.topic, partition = p.index, error = %e,
                "cannot append replicated batches");
            Appended::No
        }
        Err(e) => {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e,
                "cannot append replicated batches");
            Appended::No
        }
    }
}

/// Replaces our whole log by an empty one at the leader's log start (Kafka's
/// `truncateFullyAndStartAt`), if we still follow in `epoch` and our log still ends below it.
/// Nothing of ours is lost that the leader still serves: everything we hold lies below its log
/// start.
pub(crate) fn start_at_leader_log_start(p: &Arc<Partition>, epoch: i32, leader_log_start: i64) {
    let role = p.role();
    if !matches!(&*role, Role::Follower { leader_epoch, .. } if *leader_epoch == epoch) {
        return;
    }
    let mut guard = p.log();
    let Some(log) = guard.as_mut() else { return };
    let from = (log.log_start_offset().0, log.log_end_offset().0);
    match log.truncate_fully_and_start_at(Offset(leader_log_start)) {
        Ok(true) => {
            tracing::warn!(topic = %p.topic, partition = p.index, log_start_offset = from.0,
                log_end_offset = from.1, leader_log_start,
                "our log ends below the leader's log start: starting afresh there");
            let leo = log.log_end_offset().0;
            drop(guard);
            drop(role);
            p.on_log_replaced(leo);
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e,
                "cannot start the log afresh at the leader's log start");
        }
    }
}

fn mark_needs_truncation(p: &Arc<Partition>, epoch: i32) {
    p.update(|r| r.set_needs_truncation(epoch, true));
}
