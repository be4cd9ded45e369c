//! The simulation harness (madsim builds only): real `strata` nodes on simulated hosts with
//! simulated disks ([`cluster`]), workload clients that record a history ([`workload`]),
//! consumer-group members that record a group history ([`group_workload`]), keyed writers of
//! a compacted topic that record a history of their own ([`compaction_workload`]), a
//! nemesis that injects faults drawn per seed ([`nemesis`]), and one run of it all —
//! fault phase, liveness phase, final read, checkers ([`run`]); and staged scenarios that
//! need more choreography than a nemesis draw ([`redpanda_3039`], [`offline_replica`],
//! [`deposed_leader_wait`], [`min_insync`], [`zombie_epoch`], [`divergent_epoch`],
//! [`group_scenarios`]).

pub mod cluster;
pub mod compaction_workload;
pub mod deposed_leader_wait;
pub mod divergent_epoch;
pub mod group_scenarios;
pub mod group_workload;
pub mod min_insync;
pub mod nemesis;
pub mod observe;
pub mod offline_replica;
pub mod redpanda_3039;
pub mod run;
pub mod sweep;
pub mod unsynced_follower;
pub mod workload;
pub mod zombie_epoch;
