//! # strata-fuzz: fuzz targets over `strata-core`
//!
//! One public function per target, taking the fuzzer's bytes. Each is a thin drive of the
//! functions the node itself uses (batch validation, `PartitionLog::open` = recovery, appends,
//! group commit, reads, retention, truncation) with the target's properties as `assert!`s, so a
//! property violation is a crash libFuzzer reports. `fuzz_targets/*.rs` wrap them for
//! `cargo fuzz`; `tests/corpus.rs` replays every file of `corpus/` through them in `cargo test`.
//!
//! `group_coordinator` drives the consumer-group coordinator (`strata_core::group`) as its
//! driver does, and `group_records` the `__consumer_offsets` record formats.
//!
//! `log_cleaner` drives the log cleaner (issue #16) on a compacted log, on `PowerLossDisk`
//! (`power_loss`), which also loses unsynced directory changes and fails on demand at the n-th
//! operation (a crash in the middle of a cleaning).
//!
//! Every log target runs on `MemStorage` (`log_ops` and `producer_ops` through `DurableStorage`,
//! which models lost unsynced writes), which has no IO errors: an `Err` from the log is a failure.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod batch_validate;
pub mod checkpoint_file;
pub mod cleaner_model;
pub mod controller_ops;
pub mod dispatch;
pub mod durable;
mod group_clients;
pub mod group_coordinator;
mod group_foreign;
pub mod group_model;
pub mod group_records;
mod group_replies;
pub mod group_scenario;
pub mod group_steps;
pub mod image;
pub mod index_files;
pub mod input;
pub mod log_cleaner;
pub mod log_cleaner_seeds;
pub mod log_ops;
pub mod power_loss;
pub mod producer_model;
pub mod producer_ops;
mod producer_replica;
pub mod producer_snapshot;
pub mod quorum_step;
pub mod record_codec;
pub mod rpc_decode;
pub mod rpc_roundtrip;
pub mod seeds;
pub mod segment_recovery;

pub use batch_validate::batch_validate;
pub use checkpoint_file::checkpoint_file;
pub use controller_ops::controller_ops;
pub use group_coordinator::group_coordinator;
pub use group_records::group_records;
pub use index_files::index_files;
pub use log_cleaner::log_cleaner;
pub use log_ops::log_ops;
pub use producer_ops::producer_ops;
pub use producer_snapshot::producer_snapshot;
pub use quorum_step::quorum_step;
pub use record_codec::record_codec;
pub use rpc_decode::rpc_decode;
pub use rpc_roundtrip::rpc_roundtrip;
pub use segment_recovery::segment_recovery;

/// Every target by name, for the corpus replay and the seed generator.
/// A target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

pub const TARGETS: &[Target] = &[
    ("batch_validate", batch_validate),
    ("segment_recovery", segment_recovery),
    ("index_files", index_files),
    ("checkpoint_file", checkpoint_file),
    ("log_ops", log_ops),
    ("dispatch", dispatch::dispatch_frame),
    ("rpc_decode", rpc_decode),
    ("rpc_roundtrip", rpc_roundtrip),
    ("quorum_step", quorum_step),
    ("controller_ops", controller_ops),
    ("producer_ops", producer_ops),
    ("producer_snapshot", producer_snapshot),
    ("group_coordinator", group_coordinator),
    ("group_records", group_records),
    ("record_codec", record_codec),
    ("log_cleaner", log_cleaner),
];
