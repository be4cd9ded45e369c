//! strata-sim: Strata's deterministic simulator.
//!
//! The real node code runs under madsim (`cargo sim`, which builds this crate with
//! `--cfg madsim`), each node on a simulated host with its own [`disk`], while a nemesis injects
//! faults and workload clients record a [`history`] that the [`checker`]s judge, together with
//! the harness's [`observation`]s of the nodes. The disk model
//! and the checkers are plain Rust and are also unit-tested in ordinary `cargo test`.

pub mod checker;
pub mod disk;
pub mod group_history;
#[cfg(madsim)]
pub mod harness;
pub mod history;
pub mod kv_history;
pub mod observation;
