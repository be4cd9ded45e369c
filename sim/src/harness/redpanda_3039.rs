//! The Redpanda #3039 pattern, staged step by step: an idempotent producer's batch is appended
//! and replicated by leader A, but A's answer never reaches the client; leadership then moves
//! to B, and the client's retry (same producer id, epoch and sequence) goes to B. Redpanda
//! answered `OUT_OF_ORDER_SEQUENCE_NUMBER` there, the client bumped its epoch, resent, and the
//! record was written twice. B must instead recognise the batch (its producer state was rebuilt
//! from the replicated batch) and answer with the original offset, writing nothing.
//!
//! The run records what it saw — every attempt with its broker and answer, where A had the
//! batch, B's log end right after its answer — so the test can check that the pattern really
//! happened, and records a history (the sends and a final read) for the checkers.

use std::time::Duration;

use strata_client::sender::AttemptRecord;
use strata_client::sequencer::AttemptResult;
use strata_client::{ProduceOutcome, Producer};
use strata_core::batch::BatchIter;
use strata_core::types::Offset;

use super::cluster::Cluster;
use super::run::{final_check, settle_isr, staged_three_node_partition};
use super::workload::{self, TOPIC};
use crate::checker::Report;
use crate::history::{History, ProcessId};

/// The value of the batch the pattern is about.
pub const VALUE: u64 = 3039;

/// What the staged run saw.
pub struct Seen {
    /// Node id of the leader the batch first went to.
    pub first_leader: i32,
    /// Offset at which the first leader's log held the batch (by producer id and sequence),
    /// read from that broker before leadership moved.
    pub first_leader_had_it_at: Option<i64>,
    /// Node id of the leader when the retry was answered.
    pub new_leader: Option<i32>,
    /// The new leader's log end offset right after it answered the retry.
    pub new_leader_log_end: Option<i64>,
    /// The producer's attempts of the batch, in order.
    pub attempts: Vec<AttemptRecord>,
    pub outcome: Option<ProduceOutcome>,
    pub history: History,
    pub report: Report,
}

/// The staged run (call inside a madsim runtime).
pub async fn run(seed: u64) -> Seen {
    let (mut cluster, addrs, w, tp) = staged_three_node_partition(seed).await;
    let producer = std::sync::Arc::new(Producer::new(
        &addrs.join(","),
        strata_client::ProducerConfig {
            delivery_timeout_ms: 60_000,
            attempt_log: 64,
            ..workload::producer_config(true)
        },
    ));

    // A first batch, so the producer has its id and the partition a leader with a full ISR.
    let (w1, p1, tp1) = (w.clone(), producer.clone(), tp.clone());
    let warmed = cluster
        .client
        .spawn(async move { workload::send(&w1, ProcessId(1), &p1, &tp1, &[1]).await })
        .await
        .expect("warm-up task");
    assert!(warmed, "seed {seed}: the warm-up batch was acknowledged");
    settle_isr(&cluster).await;
    let a = cluster.leader_of(0).expect("a leader after the warm-up");
    let first_leader = a as i32 + 1;

    // A's answers no longer reach the client; the request still reaches A.
    cluster.isolate_client_from(a, true);
    let (w2, p2, tp2) = (w.clone(), producer.clone(), tp.clone());
    let send = cluster.client.spawn(async move {
        workload::send_recorded(&w2, ProcessId(2), &p2, &tp2, &[VALUE]).await
    });

    // Wait until A appended the batch and every ISR member has it (A's high watermark passed it).
    let mut first_leader_had_it_at = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(found) = find_batch(&cluster, a, producer_stamp(&producer)) else {
            continue;
        };
        let committed = cluster.live_brokers().into_iter().any(|(i, b)| {
            i == a
                && b.partition(TOPIC, 0)
                    .is_some_and(|p| p.state().high_watermark > found)
        });
        if committed {
            first_leader_had_it_at = Some(found);
            break;
        }
    }

    // Leadership moves away from A: A is cut off from everyone, the controller fences it.
    cluster.isolate(a);
    let outcome = Some(send.await.expect("send task"));
    let new_leader = cluster.leader_of(0).filter(|&l| l != a);
    let new_leader_log_end = new_leader.and_then(|l| {
        let b = cluster.live_brokers().into_iter().find(|(i, _)| *i == l)?.1;
        let p = b.partition(TOPIC, 0)?;
        let guard = p.log();
        guard.as_ref().map(|log| log.log_end_offset().0)
    });
    let attempts: Vec<AttemptRecord> = producer
        .attempts()
        .into_iter()
        .filter(|r| r.stamp.is_some_and(|(_, seq)| seq.0 == 1))
        .collect();

    // Heal, and read the partition back for the checkers.
    drop(producer);
    let (history, report) = final_check(&mut cluster, w, "redpanda_3039").await;
    Seen {
        first_leader,
        first_leader_had_it_at,
        new_leader: new_leader.map(|l| l as i32 + 1),
        new_leader_log_end,
        attempts,
        outcome,
        history,
        report,
    }
}

/// The producer id the producer's first batch carried (the pattern's batch has sequence 1).
fn producer_stamp(producer: &Producer) -> Option<i64> {
    producer
        .attempts()
        .iter()
        .find_map(|r| r.stamp.map(|(id, _)| id.producer_id.0))
}

/// The offset of the batch with sequence 1 of `producer_id` in broker `i`'s log, if there.
fn find_batch(cluster: &Cluster, i: usize, producer_id: Option<i64>) -> Option<i64> {
    let producer_id = producer_id?;
    let b = cluster.live_brokers().into_iter().find(|(j, _)| *j == i)?.1;
    let p = b.partition(TOPIC, 0)?;
    let guard = p.log();
    let log = guard.as_ref()?;
    let end = log.log_end_offset();
    let r = log.read(Offset(0), 1 << 20, end).ok()?;
    BatchIter::new(&r.records).find_map(|item| {
        let (_, h) = item.ok()?;
        (h.producer_id == producer_id && h.base_sequence == 1).then_some(h.base_offset.0)
    })
}

/// Every attempt's result in one line each, for failure messages.
pub fn describe(attempts: &[AttemptRecord]) -> String {
    attempts
        .iter()
        .map(|r| {
            let result = match &r.result {
                AttemptResult::Answered { code, base_offset } => {
                    format!("answered {code:?} @{base_offset}")
                }
                other => format!("{other:?}"),
            };
            format!(
                "  {:?} attempt {} to broker {} stamp {:?}: {result}",
                r.at, r.attempt, r.broker, r.stamp
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
