//! Strata's own Kafka client, built on `kafka-protocol`.
