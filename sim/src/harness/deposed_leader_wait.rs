//! An acks=-1 produce left waiting at a deposed leader, staged (the bug the cluster sweep found
//! at seeds 1092, 1194 and 1777; planted bug 12): its acknowledgement must not come from the
//! high watermark of a later leader epoch.
//!
//! Leader A of a three-node partition is cut off from the other two nodes — the other brokers
//! and the controller quorum — while the client still reaches it both ways. Over one connection
//! the client sends A a long poll (a Fetch of nothing, which the broker holds for its longest
//! wait, 30 s) and right behind it an acks=-1 produce of one value V. A appends V at offset `o`,
//! where no follower can copy it. A connection's replies go back in request order (its writer
//! awaits each deferred reply in turn), so the produce's acknowledgement wait first looks at
//! the partition only when the long poll ends. Meanwhile the controller fences A and elects B,
//! other writes go to B past `o`, A is healed, truncates V as B's follower, catches up, and the
//! preferred-leader rebalance makes A leader again in a later epoch, with a high watermark
//! above `o` — over B's batch there, not V. When the wait finally looks, the epoch of the append
//! has ended: the answer must be NOT_LEADER_OR_FOLLOWER (indefinite). A wait that fences only
//! *older* epochs (planted bug 12) acknowledges V at `o`, and the final read finds another
//! value there: lost-write.
//!
//! Why the long poll: a follower publishes leader epoch -1, so a wait that looks while A
//! follows ends NOT_LEADER even when it only fences older epochs; the difference shows only
//! when the wait's first look after the append finds A leading a later epoch. (The sweep's
//! seeds reached it through the watch coalescing a role change with a high watermark move; the
//! order of the checks fixed that, see `Partition::wait_for_ack`.)
//!
//! The run records what it saw, so the test can check the pattern really happened.

use std::time::Duration;

use bytes::Bytes;
use strata_client::consumer::start_fetch;
use strata_client::producer::{finish_attempt, single_attempt_outcome, start_produce};
use strata_client::sequencer::AttemptResult;
use strata_client::{Connection, ConnectionConfig, FetchConfig};
use strata_core::batch::build_batch;

use super::run::{
    final_check, replica_view, send_values, staged_three_node_partition, wait_until, warm_up,
};
use super::workload::{self, TOPIC};
use crate::checker::Report;
use crate::history::{Acks, Call, History, ProcessId, Value};

/// How long A holds the long poll (the broker's cap on a Fetch's `max_wait_ms`).
pub const HOLD: Duration = Duration::from_secs(30);
/// Writes that go to the new leader while A is cut off.
pub const WRITES_TO_NEW_LEADER: usize = 5;

/// What the staged run saw. Times are simulated, from the moment A was cut off.
pub struct Seen {
    /// Index of the first leader, A.
    pub a: usize,
    /// A's leader epoch when it appended V.
    pub a_epoch: i32,
    /// Whether A is the partition's preferred replica (so the rebalance brings leadership back).
    pub a_preferred: bool,
    /// The value left waiting at A.
    pub value: u64,
    /// The offset A appended V at (its log end moved past it while it still led in `a_epoch`).
    pub appended_at: Option<i64>,
    /// The leader elected while A was cut off: index and epoch.
    pub new_leader: Option<(usize, i32)>,
    /// The new leader's log end once the other writes were acknowledged.
    pub new_leader_log_end: Option<i64>,
    /// Writes acknowledged by the new leader.
    pub acknowledged_elsewhere: usize,
    /// A leading again: its epoch, its high watermark, and when that was first seen.
    pub a_leads_again: Option<(i32, i64, Duration)>,
    /// When the long poll's answer reached the client (the produce's wait starts then).
    pub hold_ended: Option<Duration>,
    /// The produce's answer.
    pub result: AttemptResult,
    pub history: History,
    pub report: Report,
}

/// The staged run (call inside a madsim runtime).
pub async fn run(seed: u64) -> Seen {
    let (mut cluster, addrs, w, tp) = staged_three_node_partition(seed).await;

    let a = warm_up(&cluster, &w, &tp, seed).await;
    let view = replica_view(&cluster, a).expect("the leader's replica");
    let a_epoch = view.leader_epoch.expect("A leads");
    let a_preferred = view.replicas.first() == Some(&(a as i32 + 1));
    let end_before = view.log_end_offset.expect("A holds a log");

    // A is cut off from the other brokers and the controller quorum; the client still reaches
    // it. Over one connection: the long poll, then the produce of V right behind it.
    cluster.isolate_from_peers(a);
    let cut_at = tokio::time::Instant::now();
    let value = w.next_value();
    let p = ProcessId(2);
    w.invoke(
        p,
        Call::Send {
            tp: tp.clone(),
            values: vec![Value(value)],
            acks: Acks::All,
            resends: false,
        },
    );
    let client = {
        let addr = addrs[a].clone();
        cluster.client.spawn(async move {
            let conn = match Connection::connect(&addr, ConnectionConfig::default()).await {
                Ok(c) => c,
                Err(e) => return (None, AttemptResult::NoAnswer(e.to_string())),
            };
            let hold = FetchConfig {
                max_wait_ms: HOLD.as_millis() as i32,
                min_bytes: 1,
                max_bytes: 1 << 20,
                partition_max_bytes: 1 << 20,
            };
            let held = start_fetch(&conn, &[], &hold).await;
            let bytes = value.to_be_bytes();
            let batch = Bytes::from(build_batch(&[(&bytes[..], None)], 0));
            let timeout_ms = HOLD.as_millis() as i32;
            let produce = start_produce(&conn, TOPIC, 0, batch, -1, timeout_ms).await;
            let hold_ended = match held {
                Ok(h) => h.wait().await.ok().map(|_| cut_at.elapsed()),
                Err(_) => None,
            };
            let result = match produce {
                Ok(Some(in_flight)) => finish_attempt(in_flight, 0).await,
                Ok(None) => AttemptResult::NoAnswer("acks=0".into()),
                Err(e) => AttemptResult::NoAnswer(e.to_string()),
            };
            (hold_ended, result)
        })
    };

    // A appends V while it still leads in its epoch.
    let appended_at = wait_until(Duration::from_secs(5), || {
        let v = replica_view(&cluster, a)?;
        (v.leader_epoch == Some(a_epoch) && v.log_end_offset? > end_before).then_some(end_before)
    })
    .await;

    // The controller fences A and elects another leader.
    let new_leader = wait_until(Duration::from_secs(20), || {
        (0..cluster.brokers.len())
            .filter(|&j| j != a)
            .find_map(|j| {
                let epoch = replica_view(&cluster, j)?.leader_epoch?;
                (epoch > a_epoch).then_some((j, epoch))
            })
    })
    .await;

    // Other writes go to the new leader, past A's offset (a producer that only knows the other
    // two brokers, so it never asks the cut-off A who leads).
    let others: Vec<String> = (0..addrs.len())
        .filter(|&j| j != a)
        .map(|j| addrs[j].clone())
        .collect();
    let acknowledged_elsewhere =
        send_values(&cluster, &w, &others, ProcessId(3), WRITES_TO_NEW_LEADER).await;
    let new_leader_log_end =
        new_leader.and_then(|(b, _)| replica_view(&cluster, b)?.log_end_offset);

    // A is healed: it follows, truncates V, catches up, and the rebalance makes it leader
    // again; then its high watermark passes V's offset.
    cluster.reconnect_peers(a);
    let a_leads_again = wait_until(HOLD, || {
        let v = replica_view(&cluster, a)?;
        let epoch = v.leader_epoch.filter(|&e| e > a_epoch)?;
        let past = appended_at.is_some_and(|o| v.high_watermark > o);
        past.then(|| (epoch, v.high_watermark, cut_at.elapsed()))
    })
    .await;

    let (hold_ended, result) = client.await.expect("client task");
    workload::record_outcome(&w, p, &single_attempt_outcome(result.clone()));

    let (history, report) = final_check(&mut cluster, w, "deposed_leader_wait").await;
    Seen {
        a,
        a_epoch,
        a_preferred,
        value,
        appended_at,
        new_leader,
        new_leader_log_end,
        acknowledged_elsewhere,
        a_leads_again,
        hold_ended,
        result,
        history,
        report,
    }
}
