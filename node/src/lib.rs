//! strata-node: the `strata` broker (tokio driver, Kafka listener, file storage, config) and
//! Strata's own Kafka client ([`client`]), which the simulator, jepsen, benchmarks and the CLI use.

pub mod client;
