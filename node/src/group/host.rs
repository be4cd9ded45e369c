//! What the group coordinators need of the broker that hosts them, so that the group code does
//! not depend on the broker (which owns the coordinators).

use std::sync::Arc;

use strata_core::types::Instant;

use crate::sync::watch;
use crate::topic::Topic;

/// The broker, as the coordinators see it.
pub trait GroupHost: Send + Sync + 'static {
    /// Monotonic time (the broker's clock origin; simulated under madsim).
    fn now(&self) -> Instant;
    /// `__consumer_offsets` as this broker serves it, if it exists here.
    fn offsets_topic(&self) -> Option<Arc<Topic>>;
    /// Changes whenever some partition's role changes (the coordinators follow leadership).
    fn roles(&self) -> watch::Receiver<u64>;
}
