//! Three controller services on 127.0.0.1 (in-memory storage each): election, broker
//! registration and heartbeats, topic creation, FetchMetadata, failover and restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_core::metadata::{MetadataImage, MetadataRecord};
use strata_core::rpc::{CreateTopicsRequest, MetadataDelta, NewTopic, Request, Response};
use strata_core::storage::{MemStorage, Storage};
use strata_core::types::NodeId;
use strata_node::controller::{
    ControllerClient, ControllerHandle, ControllerService, ControllerServiceConfig, Voter,
};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(15);

struct Cluster {
    voters: Vec<Voter>,
    storages: Vec<MemStorage>,
    handles: Vec<Option<ControllerHandle>>,
    compact_after_entries: usize,
}

fn service_config(
    id: NodeId,
    voters: &[Voter],
    compact_after_entries: usize,
) -> ControllerServiceConfig {
    let mut c = ControllerServiceConfig::new(
        id,
        voters.to_vec(),
        "127.0.0.1:0".into(),
        PathBuf::from(format!("/data/{}", id.0)),
    );
    c.tick_ms = 20;
    c.seed = 42;
    c.request_timeout = Duration::from_secs(5);
    c.compact_after_entries = compact_after_entries;
    c.controller.session_timeout_ms = 60_000;
    c
}

impl Cluster {
    async fn start(n: i32, compact_after_entries: usize) -> Cluster {
        // Step one: bind every listener, so the voters' ports are known.
        let mut bound = Vec::new();
        for _ in 0..n {
            bound.push(ControllerService::bind("127.0.0.1:0").await.expect("bind"));
        }
        let voters: Vec<Voter> = bound
            .iter()
            .enumerate()
            .map(|(i, b)| Voter {
                id: NodeId(i as i32),
                host: "127.0.0.1".into(),
                port: b.local_addr().port(),
            })
            .collect();
        let storages: Vec<MemStorage> = (0..n).map(|_| MemStorage::new()).collect();
        let mut handles = Vec::new();
        for (i, b) in bound.into_iter().enumerate() {
            let storage: Arc<dyn Storage> = Arc::new(storages[i].clone());
            let config = service_config(NodeId(i as i32), &voters, compact_after_entries);
            handles.push(Some(b.start(config, storage).await.expect("start")));
        }
        Cluster {
            voters,
            storages,
            handles,
            compact_after_entries,
        }
    }

    async fn active(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let active: Vec<NodeId> = self
                .handles
                .iter()
                .enumerate()
                .filter(|(_, h)| h.as_ref().is_some_and(|h| h.is_active()))
                .map(|(i, _)| NodeId(i as i32))
                .collect();
            if active.len() == 1 {
                return active[0];
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no single active controller: {active:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self, id: NodeId) {
        let handle = self.handles[id.0 as usize].take().expect("running");
        handle.shutdown().await.expect("clean shutdown");
    }

    /// Restarts `id` on its old port from its storage (a clean restart: MemStorage holds what
    /// was written).
    async fn restart(&mut self, id: NodeId) {
        let voter = self.voters[id.0 as usize].clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        let bound = loop {
            // The old accept loop may still hold the port for a moment.
            match ControllerService::bind(&voter.addr()).await {
                Ok(b) => break b,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let storage: Arc<dyn Storage> = Arc::new(self.storages[id.0 as usize].clone());
        let config = service_config(id, &self.voters, self.compact_after_entries);
        self.handles[id.0 as usize] = Some(bound.start(config, storage).await.expect("restart"));
    }

    fn client(&self) -> ControllerClient {
        ControllerClient::new(self.voters.clone(), Duration::from_secs(10))
    }

    async fn shutdown(mut self) {
        for i in 0..self.handles.len() {
            if self.handles[i].is_some() {
                self.stop(NodeId(i as i32)).await;
            }
        }
    }
}

async fn register(client: &ControllerClient, broker: i32) -> i64 {
    let response = client
        .send(Request::RegisterBroker {
            broker_id: NodeId(broker),
            host: "localhost".into(),
            port: 9000 + broker as u16,
            rack: None,
        })
        .await
        .expect("register");
    match response {
        Response::Registered { broker_epoch } => broker_epoch,
        other => panic!("unexpected {other:?}"),
    }
}

async fn heartbeat(client: &ControllerClient, broker: i32, epoch: i64) {
    let response = client
        .send(Request::Heartbeat {
            broker_id: NodeId(broker),
            broker_epoch: epoch,
            // Caught up with its own registration (the epoch is its offset): may be unfenced.
            metadata_offset: epoch as u64,
            want_shutdown: false,
        })
        .await
        .expect("heartbeat");
    assert!(
        matches!(
            response,
            Response::Heartbeat {
                error_code: 0,
                fenced: false,
                ..
            }
        ),
        "{response:?}"
    );
}

async fn create_topic(client: &ControllerClient, name: &str, partitions: i32) {
    let response = client
        .send(Request::CreateTopics(CreateTopicsRequest {
            topics: vec![NewTopic {
                name: name.into(),
                num_partitions: partitions,
                replication_factor: -1,
                assignments: BTreeMap::new(),
                configs: BTreeMap::new(),
            }],
            validate_only: false,
        }))
        .await
        .expect("create topic");
    match response {
        Response::Topics(results) => assert_eq!(results[0].error_code, 0, "{results:?}"),
        other => panic!("unexpected {other:?}"),
    }
}

async fn fetch(client: &ControllerClient, from_offset: u64, max_wait_ms: u32) -> MetadataDelta {
    match client
        .send(Request::FetchMetadata {
            from_offset,
            max_wait_ms,
        })
        .await
        .expect("fetch")
    {
        Response::Metadata(delta) => delta,
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits until `handle`'s published image satisfies `pred`.
async fn wait_image(
    handle: &ControllerHandle,
    pred: impl Fn(&MetadataImage) -> bool,
) -> Arc<MetadataImage> {
    let mut rx = handle.image();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let image = rx.borrow_and_update().clone();
        if pred(&image) {
            return image;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "image never matched; last: {image:?}");
        let _ = tokio::time::timeout(left, rx.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_register_create_and_serve_metadata() {
    let cluster = Cluster::start(3, 10_000).await;
    let active = cluster.active().await;
    for h in cluster.handles.iter().flatten() {
        let deadline = tokio::time::Instant::now() + WAIT;
        while h.leader_id() != Some(active) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "every node learns the leader"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let client = cluster.client();
    let e1 = register(&client, 1).await;
    let e2 = register(&client, 2).await;
    assert!(e2 > e1);
    heartbeat(&client, 1, e1).await;
    heartbeat(&client, 2, e2).await;
    create_topic(&client, "orders", 3).await;
    assert_eq!(client.active_controller(), Some(active));

    // From 0: the whole image.
    let image = match fetch(&client, 0, 0).await {
        MetadataDelta::Image(image) => image,
        other => panic!("expected the image, got {other:?}"),
    };
    assert_eq!(image.cluster_id.as_deref(), Some("strata-cluster"));
    assert_eq!(image.brokers.len(), 2);
    assert!(image.brokers.values().all(|b| !b.fenced));
    assert_eq!(image.topics["orders"].partitions.len(), 3);

    // Nothing newer: the long poll ends empty after max_wait_ms.
    let started = tokio::time::Instant::now();
    match fetch(&client, image.offset, 200).await {
        MetadataDelta::Records(batches) => assert!(batches.is_empty(), "{batches:?}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(150));

    // A long poll is woken by a commit, and carries the records after its offset.
    let client = Arc::new(client);
    let poller = {
        let client = client.clone();
        let offset = image.offset;
        tokio::spawn(async move { fetch(&client, offset, 5_000).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    create_topic(&client, "payments", 1).await;
    let delta = tokio::time::timeout(Duration::from_secs(3), poller)
        .await
        .expect("woken before max_wait")
        .expect("poller");
    let MetadataDelta::Records(batches) = delta else {
        panic!("expected records, got {delta:?}");
    };
    assert!(batches.iter().all(|(offset, _)| *offset > image.offset));
    assert!(
        batches
            .iter()
            .flat_map(|(_, r)| r)
            .any(|r| matches!(r, MetadataRecord::Topic { name, .. } if name == "payments"))
    );

    // Every node's image follows.
    for h in cluster.handles.iter().flatten() {
        wait_image(h, |i| i.topics.contains_key("payments")).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_fails_over_and_the_client_follows() {
    let mut cluster = Cluster::start(3, 10_000).await;
    let client = cluster.client();
    let e1 = register(&client, 1).await;
    heartbeat(&client, 1, e1).await;
    create_topic(&client, "before", 2).await;
    let old = cluster.active().await;
    cluster.stop(old).await;

    let new = cluster.active().await;
    assert_ne!(new, old);
    create_topic(&client, "after", 1).await;
    assert_eq!(client.active_controller(), Some(new));
    let image = match fetch(&client, 0, 0).await {
        MetadataDelta::Image(image) => image,
        other => panic!("unexpected {other:?}"),
    };
    assert!(image.topics.contains_key("before") && image.topics.contains_key("after"));

    // The old leader comes back from its storage and catches up as a follower.
    cluster.restart(old).await;
    let h = cluster.handles[old.0 as usize].as_ref().expect("restarted");
    wait_image(h, |i| i.topics.contains_key("after")).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_the_same_storage_recovers_the_image() {
    // Compact every few entries so recovery goes through a snapshot as well as the log.
    let mut cluster = Cluster::start(3, 4).await;
    let client = cluster.client();
    let epoch = register(&client, 1).await;
    heartbeat(&client, 1, epoch).await;
    for i in 0..8 {
        create_topic(&client, &format!("t{i}"), 1).await;
    }
    let active = cluster.active().await;
    let before = cluster.handles[active.0 as usize]
        .as_ref()
        .expect("up")
        .image()
        .borrow()
        .clone();
    for h in cluster.handles.iter().flatten() {
        wait_image(h, |i| i.offset >= before.offset).await;
    }
    // An offset older than the window (compaction cleared it on followers that installed...)
    // or 0 gets the image; a recent one gets records.
    assert!(matches!(
        fetch(&client, 0, 0).await,
        MetadataDelta::Image(_)
    ));

    for i in 0..3 {
        cluster.stop(NodeId(i)).await;
    }
    for i in 0..3 {
        let names = cluster.storages[i as usize].paths();
        assert!(
            names
                .iter()
                .any(|p| p.ends_with("__cluster_metadata/snapshot")),
            "{names:?}"
        );
        cluster.restart(NodeId(i)).await;
    }
    // Committed entries replay from the snapshot and the log before any election.
    for h in cluster.handles.iter().flatten() {
        let image = wait_image(h, |i| i.offset >= before.offset).await;
        assert_eq!(image.topics, before.topics);
        assert_eq!(image.brokers, before.brokers);
    }
    cluster.active().await;
    create_topic(&client, "after-restart", 1).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_close_only_that_connection() {
    let cluster = Cluster::start(3, 10_000).await;
    cluster.active().await;
    for frame in [
        vec![0xff, 0xff, 0xff, 0xff],
        vec![0, 0, 0, 3, 0xff, 0xff, 0xff],
    ] {
        let mut s = tokio::net::TcpStream::connect(cluster.voters[0].addr())
            .await
            .expect("connect");
        s.write_all(&frame).await.expect("write");
        s.flush().await.expect("flush");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut s, &mut buf),
        )
        .await
        .expect("closed promptly")
        .unwrap_or(0);
        assert_eq!(n, 0, "the connection is closed");
    }
    let client = cluster.client();
    register(&client, 7).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_error_stops_the_controller() {
    let bound = ControllerService::bind("127.0.0.1:0").await.expect("bind");
    let voters = vec![Voter {
        id: NodeId(0),
        host: "127.0.0.1".into(),
        port: bound.local_addr().port(),
    }];
    let disk = MemStorage::new();
    let handle = bound
        .start(
            service_config(NodeId(0), &voters, 10_000),
            Arc::new(disk.clone()),
        )
        .await
        .expect("start");
    register(
        &ControllerClient::new(voters.clone(), Duration::from_secs(5)),
        1,
    )
    .await;
    disk.fail_syncs(true);
    // The next proposal's append cannot be synced: the driver stops instead of answering.
    let client = ControllerClient::new(voters, Duration::from_millis(1500));
    let outcome = client
        .send(Request::RegisterBroker {
            broker_id: NodeId(2),
            host: "h".into(),
            port: 1,
            rack: None,
        })
        .await;
    assert!(
        !matches!(outcome, Ok(Response::Registered { .. })),
        "{outcome:?}"
    );
    let mut status = handle.status();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !status.borrow_and_update().stopped {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "the driver stopped");
        let _ = tokio::time::timeout(left, status.changed()).await;
    }
    let err = handle
        .shutdown()
        .await
        .expect_err("the fatal error is reported");
    assert!(format!("{err:#}").contains("injected EIO"), "{err:#}");
}
