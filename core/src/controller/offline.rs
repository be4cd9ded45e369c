//! Offline replicas: a broker that cannot hold a replica's log tells the controller, which moves
//! leadership away and takes the replica out of the ISR (Kafka's log-directory failure handling,
//! KIP-858, at partition granularity: a Strata broker has one data directory and fails logs one
//! partition at a time).
//!
//! ```text
//!   log fails / will not open ──OfflineReplicas{set}──▶ record the set; per newly offline replica:
//!                                                        leave the ISR (unless last), lose leadership,
//!                                                        an eligible ISR member takes over
//!   reopened (same incarnation) ─OfflineReplicas{set'}─▶ record set'; leaderless partitions whose
//!                                                        replica came back may elect it
//!   restart ─────────────────────RegisterBroker────────▶ set cleared; the new incarnation reports
//!                                                        again what still fails
//! ```
//!
//! Rules, the way Kafka's controller treats replicas on an offline log directory:
//! - The report is the **full set** of the broker's offline replicas (like `OfflineLogDirs` in
//!   every heartbeat), so a lost or repeated request does no harm: the controller commits a
//!   `MetadataRecord::OfflineReplicas` only when the set differs from the image's, and then
//!   derives the changes from the difference. Partitions that do not exist, or of which the
//!   broker holds no replica, are dropped from the set (a topic deleted meanwhile).
//! - An offline replica is never elected leader (clean, unclean or preferred), never added to an
//!   ISR (AlterPartition answers `INELIGIBLE_REPLICA`, as KIP-841 does for fenced brokers), and
//!   leaves the ISR — except as its **last member**: an ISR is never empty, the partition becomes
//!   leaderless and waits for that replica (or an unclean election), exactly as when the last
//!   ISR member's broker is fenced.
//! - A report from a fenced broker counts (it keeps the replica from leading once unfenced);
//!   one from an older incarnation is `STALE_BROKER_EPOCH`.
//! - The mark is cleared when the broker registers again (a restart opens its logs afresh, and
//!   the new incarnation reports whatever still fails before the heartbeat that unfences it) or
//!   reports the partition healthy again. The replica then rejoins the normal way: it follows,
//!   catches up, and its leader expands the ISR (KIP-497).

use std::collections::BTreeSet;

use super::Controller;
use super::brokers::remove_replica;
use super::changes::Changes;
use super::election::elect_leaderless;
use crate::error::ErrorCode;
use crate::metadata::MetadataRecord;
use crate::rpc::Response;
use crate::types::NodeId;

fn answer(code: ErrorCode, records: Vec<MetadataRecord>) -> (Response, Vec<MetadataRecord>) {
    (Response::OfflineReplicas { error_code: code.0 }, records)
}

impl Controller {
    /// OfflineReplicas: the broker's full set of offline replicas (see the module docs).
    pub(super) fn handle_offline_replicas(
        &self,
        broker_id: NodeId,
        broker_epoch: i64,
        partitions: &[(String, i32)],
    ) -> (Response, Vec<MetadataRecord>) {
        if !self.epoch_is_current(broker_id, broker_epoch) {
            return answer(ErrorCode::STALE_BROKER_EPOCH, Vec::new());
        }
        let reported: BTreeSet<(String, i32)> = partitions
            .iter()
            .filter(|(topic, index)| {
                self.image
                    .partition(topic, *index)
                    .is_some_and(|p| p.replicas.contains(&broker_id))
            })
            .cloned()
            .collect();
        let mut changes = Changes::new(&self.image);
        let before = changes.offline_replicas(broker_id);
        if reported == before {
            return answer(ErrorCode::NONE, Vec::new());
        }
        changes.push(MetadataRecord::OfflineReplicas {
            broker_id,
            broker_epoch,
            partitions: reported.iter().cloned().collect(),
        });
        let unclean = self.config.unclean_leader_election;
        for (topic, index) in reported.difference(&before) {
            tracing::info!(%broker_id, %topic, partition = index, "replica offline: moving it out of the ISR and leadership");
            remove_replica(&mut changes, topic, *index, broker_id, unclean);
        }
        let back: BTreeSet<(String, i32)> = before.difference(&reported).cloned().collect();
        if !back.is_empty() {
            tracing::info!(%broker_id, ?back, "replicas back online");
            // A partition waiting for this replica (its last ISR member) may lead again.
            elect_leaderless(&mut changes, unclean, |topic, index, _| {
                back.contains(&(topic.to_string(), index))
            });
        }
        answer(ErrorCode::NONE, changes.finish())
    }
}
