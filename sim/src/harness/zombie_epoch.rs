//! A zombie producer epoch, staged (planted bug 18): once a newer epoch of a producer id is
//! written, a late batch of an older epoch is fenced with INVALID_PRODUCER_EPOCH, even one
//! with sequence 0 (which the new-epoch rule alone would let through).
//!
//! An idempotent producer (id from InitProducerId, epoch 0) sends value X as epoch 0, sequence
//! 0; that request is held in the network (modelled by sending it, hand-built, only at the
//! end). The producer gives up on it, bumps its epoch locally (KIP-360, as librdkafka's
//! idempotent producer and our resending producers do, `ResetPolicy::ResendUnderNewEpoch`: a
//! non-transactional producer gets no epoch from InitProducerId) and resends X as epoch 1,
//! sequence 0, then writes Y as epoch 1, sequence 1; both are acknowledged. Then the held
//! request arrives at the leader. It must be refused INVALID_PRODUCER_EPOCH and write nothing;
//! a broker that forgot the epoch fence writes X a second time under the older epoch, after
//! the newer epoch's batches, which the `producer_fencing` checker reports from the batch
//! headers the final read returns (`fenced-epoch-write`; the duplicate checker also sees X
//! twice, not one copy per growing epoch).
//!
//! The run records what it saw, so the test can check the pattern really happened.

use bytes::Bytes;
use strata_client::producer_id::init_producer_id;
use strata_client::sender::stamp_batch;
use strata_client::sequencer::{AttemptResult, ProducerIdentity};
use strata_client::{Connection, ConnectionConfig};
use strata_core::batch::build_batch;
use strata_core::types::Sequence;

use super::run::{final_check, produce_once, replica_view, staged_three_node_partition, warm_up};
use super::workload::{self, Workload};
use crate::checker::Report;
use crate::history::{Acks, Call, History, ProcessId, Reply, SendAck, TopicPartition, Value};

/// What the staged run saw.
pub struct Seen {
    /// Index of the leader every request went to.
    pub leader: usize,
    /// The producer's identity from InitProducerId (epoch 0).
    pub identity: Option<ProducerIdentity>,
    /// The value whose first request is held, and the value written after the bump.
    pub values: (u64, u64),
    /// The answers to X resent as epoch 1 / sequence 0 and to Y as epoch 1 / sequence 1.
    pub newer_epoch: Vec<AttemptResult>,
    /// The answer to the held request (epoch 0, sequence 0) when it finally arrived.
    pub late: Option<AttemptResult>,
    /// The leader's log end right before and right after the held request arrived.
    pub log_end_around_late: (Option<i64>, Option<i64>),
    pub history: History,
    pub report: Report,
}

/// The staged run (call inside a madsim runtime).
pub async fn run(seed: u64) -> Seen {
    let (mut cluster, addrs, w, tp) = staged_three_node_partition(seed).await;

    let leader = warm_up(&cluster, &w, &tp, seed).await;
    let addr = addrs[leader].clone();
    let (x, y) = (w.next_value(), w.next_value());

    // The producer's id, then X as epoch 0 / sequence 0: the request that is held.
    let (identity, held) = {
        let addr = addr.clone();
        cluster
            .client
            .spawn(async move {
                let conn = Connection::connect(&addr, ConnectionConfig::default())
                    .await
                    .ok()?;
                let identity = init_producer_id(&conn).await.ok()?;
                Some((identity, batch(x, identity, 0)))
            })
            .await
            .expect("InitProducerId task")
            .unwrap_or_else(|| panic!("seed {seed}: no producer id"))
    };
    let p = ProcessId(2);
    invoke_send(&w, p, &tp, x);

    // The producer gave up on that request, bumped its epoch and resends X from sequence 0,
    // then writes Y.
    let bumped = identity.bumped().expect("epoch 0 can be bumped");
    let mut newer_epoch = Vec::new();
    let resent = send_once(&cluster, &addr, batch(x, bumped, 0)).await;
    // X's send ends here, acknowledged as a possible duplicate: its first attempt's fate is
    // unknown to the producer (the resending producers record it so, see `workload`).
    match &resent {
        AttemptResult::Answered { code, base_offset } if code.is_ok() => w.ok(
            p,
            Reply::Send(SendAck {
                base_offset: Some(strata_core::types::Offset(*base_offset)),
                leader_survived: false,
                possible_duplicate: true,
            }),
        ),
        other => w.info(p, format!("{other:?}")),
    }
    newer_epoch.push(resent);
    invoke_send(&w, p, &tp, y);
    let next = send_once(&cluster, &addr, batch(y, bumped, 1)).await;
    workload::record_outcome(
        &w,
        p,
        &strata_client::producer::single_attempt_outcome(next.clone()),
    );
    newer_epoch.push(next);

    // The held request arrives.
    let before = replica_view(&cluster, leader).and_then(|v| v.log_end_offset);
    let late = Some(send_once(&cluster, &addr, held).await);
    let after = replica_view(&cluster, leader).and_then(|v| v.log_end_offset);

    let (history, report) = final_check(&mut cluster, w, "zombie_epoch").await;
    Seen {
        leader,
        identity: Some(identity),
        values: (x, y),
        newer_epoch,
        late,
        log_end_around_late: (before, after),
        history,
        report,
    }
}

/// A one-value batch of `identity` at `sequence`.
fn batch(value: u64, identity: ProducerIdentity, sequence: i32) -> Bytes {
    let bytes = value.to_be_bytes();
    let raw = build_batch(&[(&bytes[..], None)], 0);
    stamp_batch(&raw, identity, Sequence(sequence))
}

/// Records process `p`'s acks=-1 send of `value`, resent under a new epoch if need be.
fn invoke_send(w: &Workload, p: ProcessId, tp: &TopicPartition, value: u64) {
    w.invoke(
        p,
        Call::Send {
            tp: tp.clone(),
            values: vec![Value(value)],
            acks: Acks::All,
            resends: true,
        },
    );
}

/// One acks=-1 Produce of `records` to `addr` from the client host, and its answer.
async fn send_once(cluster: &super::cluster::Cluster, addr: &str, records: Bytes) -> AttemptResult {
    let addr = addr.to_string();
    cluster
        .client
        .spawn(async move { produce_once(&addr, records, -1, 3_000).await })
        .await
        .expect("send task")
}
