//! The real node under madsim: one broker on a simulated host, Strata's own client on another,
//! a produce/fetch round trip. The first brick of the simulator.
#![cfg(madsim)]

use std::sync::Arc;
use std::time::Duration;

use madsim::runtime::Handle;
use strata_client::{
    Connection, ConnectionConfig, Consumer, FetchConfig, ProduceOutcome, Producer, ProducerConfig,
};
use strata_core::storage::MemStorage;
use strata_node::config::Sources;
use strata_node::{Config, Server};

#[madsim::test]
async fn single_node_produce_and_fetch() {
    strata_sim::harness::sweep::init_logging();
    let handle = Handle::current();
    let storage = MemStorage::new();
    handle
        .create_node()
        .name("strata-1")
        .ip("10.0.0.1".parse().expect("ip"))
        .init(move || {
            let storage = storage.clone();
            async move {
                let sources = Sources {
                    listen: Some("10.0.0.1:9092".into()),
                    data_dir: Some("/data".into()),
                    ..Default::default()
                };
                let config = Config::resolve(&sources).expect("config");
                let server = Server::bind_with_storage(config, Arc::new(storage))
                    .await
                    .expect("bind");
                server.run(std::future::pending()).await.expect("run");
            }
        })
        .build();
    let client = handle
        .create_node()
        .name("client")
        .ip("10.0.0.100".parse().expect("ip"))
        .build();
    client
        .spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let producer = Producer::new("10.0.0.1:9092", ProducerConfig::default());
            for i in 0..50i64 {
                let value = format!("v{i}");
                let out = producer
                    .produce_values("t", 0, &[(value.as_bytes(), None)], 0)
                    .await;
                assert_eq!(out.len(), 1);
                match &out[0].1 {
                    ProduceOutcome::Ok { base_offset, .. } => assert_eq!(*base_offset, i),
                    other => panic!("produce {i}: {other:?}"),
                }
            }
            let conn = Arc::new(
                Connection::connect("10.0.0.1:9092", ConnectionConfig::default())
                    .await
                    .expect("connect"),
            );
            let mut consumer = Consumer::new(conn, FetchConfig::default());
            consumer.assign("t", 0, 0);
            let mut seen = Vec::new();
            while seen.len() < 50 {
                for p in consumer.poll().await.expect("poll") {
                    seen.extend(p.records.iter().map(|r| (r.offset, r.value.clone())));
                }
            }
            for (i, (offset, value)) in seen.iter().enumerate() {
                assert_eq!(*offset, i as i64);
                assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()));
            }
        })
        .await
        .expect("client task");
}
