//! Synchronisation primitives whose wake-up order is deterministic.
//!
//! `tokio::sync::watch` registers each waiting receiver on one of eight internal `Notify`s
//! chosen by tokio's thread-local RNG, which is seeded from std's `RandomState`. Under madsim
//! that seed is not the simulation's (std no longer draws its hash keys through the libc call
//! madsim intercepts), so the order in which receivers woke — and with it the whole schedule —
//! changed from one run of a seed to the next. [`watch`] keeps tokio's API for what we use, on
//! a single FIFO `Notify`. Code that runs under the simulator uses it, never tokio's.

pub mod watch;
