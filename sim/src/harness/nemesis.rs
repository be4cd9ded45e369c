//! The nemesis: which faults a run injects (drawn from its seed: swarm testing) and how.
//!
//! Every fault here is one Strata claims to survive without losing an acknowledged write:
//! process kills, power loss (unsynced writes kept, dropped or torn), pauses, network
//! isolation, EIO on write, EIO on fsync (the node stops acknowledging), and a full disk. In a
//! cluster also: isolating the active controller, a partition leader, or a minority of nodes,
//! cutting the client host off one partition's leader (both ways, or only the leader's answers,
//! so the leader appends a batch whose acknowledgement the client never sees: the Redpanda #3039
//! pattern), cutting a partition's leader off from every other node while the client still
//! reaches it (it takes appends it can neither replicate nor learn it was deposed for), and a
//! power loss of every node at once.
//! Read bit-flips are left to a named scenario (see [`Swarm::read_flips`]).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cluster::Cluster;
use crate::disk::DiskFaults;

/// Which faults a run uses, and how often. Drawn per seed.
#[derive(Debug, Clone)]
pub struct Swarm {
    pub kill: bool,
    pub power_loss: bool,
    pub pause: bool,
    pub isolate: bool,
    pub write_eio: bool,
    pub fsync_eio: bool,
    pub disk_full: bool,
    /// Packet loss (madsim's TCP retransmits: it shows as delay) and latency on the network.
    pub lossy_network: bool,
    /// Disk latency with slow spells (group commits take longer).
    pub slow_disk: bool,
    /// Transient bit-flips on disk reads. Off in the random swarm (a flip while a restarting
    /// node reads its metadata file, which has no checksum yet, is not survived); on in a named
    /// scenario without restarts.
    pub read_flips: bool,
    /// Clusters only: cut the active controller off the network.
    pub isolate_controller: bool,
    /// Clusters only: cut the leader of partition 0 off the network.
    pub isolate_leader: bool,
    /// Clusters only: cut a minority of nodes off (each alone).
    pub isolate_minority: bool,
    /// Clusters only: every node loses power at once (correlated failure; acks=-1 writes are
    /// fsynced on every ISR member, so they survive it).
    pub power_loss_all: bool,
    /// Clusters only: cut the client host off a partition's leader (the leader still reaches
    /// the other brokers). Producers retry elsewhere once leadership moves.
    pub isolate_client_from_leader: bool,
    /// Clusters only: cut a partition's leader off from every other node (the other brokers and
    /// the controller quorum) while the client still reaches it both ways: it appends what the
    /// client sends, cannot replicate it, and is deposed without hearing of it.
    pub isolate_leader_from_peers: bool,
    /// Mean time between two faults.
    pub interval: Duration,
}

impl Swarm {
    pub fn draw(rng: &mut StdRng) -> Swarm {
        Swarm {
            kill: rng.random_bool(0.6),
            power_loss: rng.random_bool(0.6),
            pause: rng.random_bool(0.4),
            isolate: rng.random_bool(0.5),
            write_eio: rng.random_bool(0.3),
            fsync_eio: rng.random_bool(0.3),
            disk_full: rng.random_bool(0.3),
            lossy_network: rng.random_bool(0.4),
            slow_disk: rng.random_bool(0.4),
            read_flips: false,
            isolate_controller: false,
            isolate_leader: false,
            isolate_minority: false,
            power_loss_all: false,
            isolate_client_from_leader: false,
            isolate_leader_from_peers: false,
            interval: Duration::from_millis(rng.random_range(300..3_000)),
        }
    }

    /// Adds the faults that only mean something in a cluster, drawn from `rng`.
    pub fn draw_cluster_faults(&mut self, rng: &mut StdRng) {
        self.isolate_controller = rng.random_bool(0.4);
        self.isolate_leader = rng.random_bool(0.4);
        self.isolate_minority = rng.random_bool(0.3);
        self.power_loss_all = rng.random_bool(0.2);
        // Drawn last, so the faults above stay what each seed drew before these existed.
        self.isolate_client_from_leader = rng.random_bool(0.4);
        self.isolate_leader_from_peers = rng.random_bool(0.4);
    }

    /// No faults at all (the baseline scenario).
    pub fn none() -> Swarm {
        Swarm {
            kill: false,
            power_loss: false,
            pause: false,
            isolate: false,
            write_eio: false,
            fsync_eio: false,
            disk_full: false,
            lossy_network: false,
            slow_disk: false,
            read_flips: false,
            isolate_controller: false,
            isolate_leader: false,
            isolate_minority: false,
            power_loss_all: false,
            isolate_client_from_leader: false,
            isolate_leader_from_peers: false,
            interval: Duration::from_secs(1),
        }
    }

    fn faults(&self) -> Vec<Fault> {
        let mut f = Vec::new();
        let on = [
            (self.kill, Fault::Kill),
            (self.power_loss, Fault::PowerLoss),
            (self.pause, Fault::Pause),
            (self.isolate, Fault::Isolate),
            (self.write_eio, Fault::WriteEio),
            (self.fsync_eio, Fault::FsyncEio),
            (self.disk_full, Fault::DiskFull),
            (self.lossy_network, Fault::LossyNetwork),
            (self.slow_disk, Fault::SlowDisk),
            (self.read_flips, Fault::ReadFlips),
            (self.isolate_controller, Fault::IsolateController),
            (self.isolate_leader, Fault::IsolateLeader),
            (self.isolate_minority, Fault::IsolateMinority),
            (self.power_loss_all, Fault::PowerLossAll),
            (
                self.isolate_client_from_leader,
                Fault::IsolateClientFromLeader,
            ),
            (
                self.isolate_leader_from_peers,
                Fault::IsolateLeaderFromPeers,
            ),
        ];
        for (enabled, fault) in on {
            if enabled {
                f.push(fault);
            }
        }
        f
    }
}

/// One fault the nemesis can inject on one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Kill,
    PowerLoss,
    Pause,
    Isolate,
    WriteEio,
    FsyncEio,
    DiskFull,
    LossyNetwork,
    SlowDisk,
    ReadFlips,
    IsolateController,
    IsolateLeader,
    IsolateMinority,
    PowerLossAll,
    /// The client cannot reach the leader of one partition (or, half the time, hears nothing
    /// back from it).
    IsolateClientFromLeader,
    /// The leader of one partition is cut off from every other node; the client still reaches
    /// it.
    IsolateLeaderFromPeers,
}

/// Drives faults for `duration` of simulated time, then heals them all.
pub struct Nemesis {
    rng: StdRng,
    swarm: Swarm,
    /// Faults applied, for the run's summary.
    pub log: Vec<(Duration, Fault, usize)>,
}

impl Nemesis {
    pub fn new(seed: u64, swarm: Swarm) -> Nemesis {
        Nemesis {
            rng: StdRng::seed_from_u64(seed ^ 0x6e656d65736973),
            swarm,
            log: Vec::new(),
        }
    }

    pub async fn run(&mut self, cluster: &mut Cluster, duration: Duration) {
        let faults = self.swarm.faults();
        let start = tokio::time::Instant::now();
        if faults.is_empty() {
            tokio::time::sleep(duration).await;
            return;
        }
        while start.elapsed() < duration {
            let gap = self.jitter(self.swarm.interval);
            tokio::time::sleep(gap).await;
            let fault = faults[self.rng.random_range(0..faults.len())];
            let n = cluster.brokers.len();
            let i = self.rng.random_range(0..n);
            let targets: Vec<usize> = match fault {
                Fault::IsolateController => vec![cluster.active_controller().unwrap_or(i)],
                Fault::IsolateClientFromLeader | Fault::IsolateLeaderFromPeers => {
                    let partition = self.rng.random_range(0..3);
                    vec![cluster.leader_of(partition).unwrap_or(i)]
                }
                Fault::IsolateLeader => vec![cluster.leader_of(0).unwrap_or(i)],
                Fault::IsolateMinority => (0..(n - 1) / 2).map(|k| (i + k) % n).collect(),
                Fault::PowerLossAll => (0..n).collect(),
                _ => vec![i],
            };
            self.log.push((
                start.elapsed(),
                fault,
                targets.first().copied().unwrap_or(i),
            ));
            for &t in &targets {
                self.inject(cluster, fault, t);
            }
            let hold = self.jitter(self.swarm.interval);
            tokio::time::sleep(hold).await;
            for &t in &targets {
                self.heal(cluster, fault, t);
            }
        }
    }

    fn jitter(&mut self, mean: Duration) -> Duration {
        let ms = mean.as_millis() as u64;
        Duration::from_millis(self.rng.random_range(ms / 2..=ms * 3 / 2).max(1))
    }

    fn inject(&mut self, cluster: &mut Cluster, fault: Fault, i: usize) {
        match fault {
            Fault::Kill => cluster.kill(i),
            Fault::PowerLoss | Fault::PowerLossAll => cluster.power_loss(i, &mut self.rng),
            Fault::Pause => cluster.pause(i),
            Fault::Isolate
            | Fault::IsolateController
            | Fault::IsolateLeader
            | Fault::IsolateMinority => cluster.isolate(i),
            Fault::IsolateClientFromLeader => {
                let answers_only = self.rng.random_bool(0.5);
                cluster.isolate_client_from(i, answers_only);
            }
            Fault::IsolateLeaderFromPeers => cluster.isolate_from_peers(i),
            Fault::WriteEio => cluster.brokers[i].disk.set_faults(DiskFaults {
                write_eio_probability: 0.2,
                ..DiskFaults::default()
            }),
            Fault::FsyncEio => cluster.brokers[i].disk.fail_next_syncs(1),
            Fault::DiskFull => {
                let used = cluster.brokers[i].disk.used_bytes();
                cluster.brokers[i].disk.set_faults(DiskFaults {
                    capacity: Some(used + 4096),
                    ..DiskFaults::default()
                });
            }
            Fault::LossyNetwork => {
                let loss = self.rng.random_range(0.05..0.4);
                let latency = Duration::from_millis(self.rng.random_range(2..80));
                madsim::net::NetSim::current().update_config(|c| {
                    c.packet_loss_rate = loss;
                    c.send_latency = Duration::from_millis(1)..latency;
                });
            }
            Fault::ReadFlips => cluster.brokers[i].disk.set_faults(DiskFaults {
                read_bitflip_probability: 0.05,
                ..DiskFaults::default()
            }),
            Fault::SlowDisk => cluster.brokers[i].disk.set_faults(DiskFaults {
                latency: Duration::from_millis(self.rng.random_range(1..20)),
                slow_spell_probability: 0.05,
                slow_spell_calls: 20,
                slow_latency: Duration::from_millis(self.rng.random_range(100..2_000)),
                ..DiskFaults::default()
            }),
        }
    }

    fn heal(&mut self, cluster: &mut Cluster, fault: Fault, i: usize) {
        match fault {
            Fault::Kill | Fault::PowerLoss | Fault::PowerLossAll => cluster.restart(i),
            Fault::Pause => cluster.resume(i),
            Fault::Isolate
            | Fault::IsolateController
            | Fault::IsolateLeader
            | Fault::IsolateMinority => {
                madsim::net::NetSim::current().unclog_node(cluster.brokers[i].node)
            }
            Fault::IsolateClientFromLeader => cluster.reconnect_client(i),
            Fault::IsolateLeaderFromPeers => cluster.reconnect_peers(i),
            Fault::WriteEio | Fault::DiskFull | Fault::ReadFlips | Fault::SlowDisk => {
                cluster.brokers[i].disk.set_faults(DiskFaults::default())
            }
            Fault::LossyNetwork => madsim::net::NetSim::current()
                .update_config(|c| *c = madsim::net::Config::default()),
            // A node whose fsync failed stops acknowledging until it is restarted. A plain
            // restart keeps the page cache (whose failed pages Linux marks clean: recovery must
            // rewrite them), a power cycle does not; both must keep every acknowledged write.
            Fault::FsyncEio => {
                cluster.brokers[i].disk.fail_next_syncs(0);
                if self.rng.random_bool(0.5) {
                    cluster.kill(i);
                } else {
                    cluster.power_loss(i, &mut self.rng);
                }
                cluster.restart(i);
            }
        }
    }
}
