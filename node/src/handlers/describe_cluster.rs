//! DescribeCluster (KIP-700): the cluster id, the active controller and the registered brokers
//! (fenced ones flagged, v2's `is_fenced`). On a single node: this broker alone.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let cfg = &broker.config;
    let advertised = cfg
        .advertised
        .clone()
        .unwrap_or_else(|| cfg.listener.clone());
    let (controller, brokers) = match broker.cluster() {
        Some(cluster) => {
            let image = cluster.image();
            let brokers = image
                .brokers
                .values()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.broker_id.0))
                        .with_host(str_bytes(&b.host))
                        .with_port(i32::from(b.port))
                        .with_rack(b.rack.as_deref().map(str_bytes))
                        .with_is_fenced(b.fenced)
                })
                .collect();
            (cluster.controller_id(), brokers)
        }
        None => (
            cfg.node_id,
            vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(cfg.node_id))
                    .with_host(str_bytes(&advertised.host))
                    .with_port(i32::from(advertised.port)),
            ],
        ),
    };
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(str_bytes(&broker.cluster_id()))
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}
