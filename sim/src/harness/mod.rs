//! The simulation harness (madsim builds only): real `strata` nodes on simulated hosts with
//! simulated disks ([`cluster`]), workload clients that record a history ([`workload`]), a
//! nemesis that injects faults drawn per seed ([`nemesis`]), and one run of it all —
//! fault phase, liveness phase, final read, checkers ([`run`]).

pub mod cluster;
pub mod nemesis;
pub mod observe;
pub mod run;
pub mod sweep;
pub mod workload;
