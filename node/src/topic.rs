//! A topic as a broker serves it: its name, overrides and partitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::partition::Partition;

/// A topic: its overrides and partitions. Replaced whole (copy on write) when it changes.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Config overrides (validated).
    pub configs: BTreeMap<String, String>,
    /// The metadata offset that created it (cluster mode; 0 on a single node): tells this topic
    /// from an older one of the same name.
    pub created_offset: u64,
    /// Partitions by index.
    pub partitions: Vec<Arc<Partition>>,
}
