//! Producer ids on a real three-node cluster (KIP-98 InitProducerId, blocks from the controller
//! per KIP-730): every broker hands out ids nobody else has, and none comes back after brokers
//! are `kill -9`ed and restarted, one at a time or all at once.
//!
//! Spoken with Strata's own connection and raw `kafka-protocol` requests, so the test sees the
//! exact error codes. `COORDINATOR_LOAD_IN_PROGRESS` (a broker not registered yet, or its block
//! not fetched yet) is retried, as every client does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest};
use strata_core::error::ErrorCode;
use strata_tests::StrataCluster;
use strata_tests::kafka::connect;

const NODES: i32 = 3;
/// Ids asked of each broker per round.
const PER_BROKER: usize = 30;
/// How long one broker may keep answering COORDINATOR_LOAD_IN_PROGRESS.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// `n` producer ids from broker `id`, in the order handed out.
async fn ids_from(cluster: &StrataCluster, id: i32, n: usize) -> Vec<i64> {
    let conn = connect(&cluster.node(id).bootstrap()).await;
    let version = conn
        .version_for(ApiKey::InitProducerId, (0, 5))
        .expect("the broker advertises InitProducerId");
    assert_eq!(version, 5, "broker {id} advertises InitProducerId up to v5");
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let mut ids = Vec::with_capacity(n);
    let deadline = Instant::now() + RETRY_FOR;
    while ids.len() < n {
        let resp = conn
            .request(&req, version)
            .await
            .unwrap_or_else(|e| panic!("InitProducerId to broker {id}: {e}"));
        if resp.error_code == ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0 && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(resp.error_code, 0, "InitProducerId to broker {id}");
        assert_eq!(resp.producer_epoch, 0, "a fresh producer id has epoch 0");
        ids.push(resp.producer_id.0);
    }
    ids
}

/// What the test has seen: every id (and where it came from), and which broker incarnation
/// owns each block of 1000 ids (the controller's block size).
#[derive(Default)]
struct Seen {
    ids: BTreeMap<i64, String>,
    owners: BTreeMap<i64, (i32, u32)>,
    /// Broker id → how many times it was restarted.
    incarnation: BTreeMap<i32, u32>,
}

/// One round: `PER_BROKER` ids from every broker. Each broker's ids increase; no id was handed
/// out before; and a block of ids belongs to one broker incarnation only (a restarted broker
/// takes a fresh block from the controller, never one it or another broker used).
async fn round(cluster: &StrataCluster, seen: &mut Seen, name: &str) {
    for id in 1..=NODES {
        let ids = ids_from(cluster, id, PER_BROKER).await;
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{name}: broker {id} handed out {ids:?}, not increasing"
        );
        let me = (id, seen.incarnation.get(&id).copied().unwrap_or(0));
        for &pid in &ids {
            assert!(pid >= 0, "{name}: broker {id} handed out {pid}");
            if let Some(before) = seen.ids.insert(pid, format!("{name}, broker {id}")) {
                panic!("{name}: broker {id} handed out producer id {pid} again (first: {before})");
            }
            let owner = *seen.owners.entry(pid / 1000).or_insert(me);
            assert_eq!(
                owner,
                me,
                "{name}: block {} of (broker, incarnation) {owner:?} used by {me:?}",
                pid / 1000
            );
        }
    }
}

fn restarted(seen: &mut Seen, id: i32) {
    *seen.incarnation.entry(id).or_insert(0) += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_are_unique_across_brokers_and_restarts() {
    let mut cluster = StrataCluster::start(NODES as usize);
    let mut seen = Seen::default();
    round(&cluster, &mut seen, "start").await;

    for victim in 1..=NODES {
        cluster.kill9(victim);
        cluster.restart(victim);
        restarted(&mut seen, victim);
        cluster.wait_ready();
        round(
            &cluster,
            &mut seen,
            &format!("after kill -9 of broker {victim}"),
        )
        .await;
    }

    // Every node at once: the controller quorum itself restarts from its log.
    for id in 1..=NODES {
        cluster.kill9(id);
    }
    for id in 1..=NODES {
        cluster.restart(id);
        restarted(&mut seen, id);
    }
    cluster.wait_ready();
    round(&cluster, &mut seen, "after kill -9 of every node").await;

    assert_eq!(seen.ids.len(), 5 * NODES as usize * PER_BROKER);
    // 3 first incarnations, 3 single restarts, 3 after the full restart.
    assert!(seen.owners.len() >= 9, "blocks used: {:?}", seen.owners);
    eprintln!(
        "blocks of 1000 ids → (broker, incarnation): {:?}",
        seen.owners
    );
}
