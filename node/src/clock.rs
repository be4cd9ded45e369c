//! The broker's only window on wall-clock time.
//!
//! Invariant: no other module in `strata-node` reads `SystemTime`; monotonic time goes through
//! `tokio::time::Instant` (which the simulator controls). Keeping the wall clock here makes it one
//! place to fake in tests and the place madsim's virtual clock enters.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (Kafka timestamps, `LogAppendTime`, retention).
pub fn now_ms() -> i64 {
    i64::try_from(now_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Nanoseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Monotonic time as core's [`strata_core::types::Instant`]: nanoseconds since `origin` (each
/// broker keeps its own origin; a process-wide static would outlive a simulated run).
pub fn instant_since(origin: tokio::time::Instant) -> strata_core::types::Instant {
    strata_core::types::Instant(
        u64::try_from(
            tokio::time::Instant::now()
                .saturating_duration_since(origin)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX),
    )
}
