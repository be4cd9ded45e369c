//! A cluster of real `strata` nodes, each on its own simulated host (`10.0.0.<n>`) with its own
//! [`SimDisk`] that the harness owns, so the disk survives kills, power losses and restarts.
//!
//! The nodes run the production code: `Server::bind_with_storage` over the disk's storage view,
//! exactly what `main` does over real files. Clients run on their own host (`10.0.1.1`), since
//! madsim's supervisor has no address.
//!
//! With more than one node, the nodes form one cluster: every node is a broker and a voter of
//! the controller quorum (KRaft's combined mode), its `CONTROLLER` listener on port
//! [`CONTROLLER_PORT`]; or, with [`Cluster::start_with_dedicated_controller`], the brokers are
//! brokers only and one more node is the quorum's only voter and no broker (KRaft's isolated
//! mode), so a broker can be cut off from the other brokers and still reach the controller.
//! Each running node's broker state is published in [`Cluster::live`], so the harness can
//! observe roles and logs in-process (madsim runs every node in one process).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;
use rand::Rng;
use strata_node::config::Sources;
use strata_node::{Config, Server};

use crate::disk::SimDisk;

/// Port every broker listens on.
pub const PORT: u16 = 9092;
/// Port of every node's controller listener (clusters of more than one node).
pub const CONTROLLER_PORT: u16 = 9093;

/// The broker state of each running node, by index (`None` while down).
pub type Live = Arc<Mutex<Vec<Option<Arc<strata_node::broker::Broker>>>>>;

/// One broker of the cluster.
pub struct Broker {
    pub name: String,
    pub ip: IpAddr,
    /// `ip:port`, what clients connect to.
    pub addr: String,
    /// The broker's disk, kept across restarts.
    pub disk: SimDisk,
    /// madsim's id of the host (stable across restarts; a `NodeHandle` is not).
    pub node: NodeId,
    /// Whether the harness has it killed (not yet restarted).
    pub down: bool,
    /// Whether the harness has it paused.
    pub paused: bool,
    /// A controller and no broker ([`Cluster::start_with_dedicated_controller`]): nothing
    /// listens at `addr`.
    pub controller_only: bool,
}

/// The brokers, and the host the clients run on.
pub struct Cluster {
    pub brokers: Vec<Broker>,
    pub client: NodeHandle,
    /// What each running node serves (filled by the node itself once bound).
    pub live: Live,
}

impl Cluster {
    /// Starts `n` brokers with `settings` (`name=value`, as `--set`) on fresh disks seeded from
    /// `seed`.
    pub fn start(n: usize, seed: u64, settings: &[String]) -> Cluster {
        Cluster::start_nodes(n, false, seed, settings)
    }

    /// Starts `brokers` nodes that are brokers only, and one more (the last index, node id
    /// `brokers + 1`) that is the controller quorum's only voter and no broker, with `settings`
    /// on fresh disks seeded from `seed`. Cutting a broker off the other brokers then leaves it
    /// the controller (in the combined mode every broker is also a voter).
    pub fn start_with_dedicated_controller(
        brokers: usize,
        seed: u64,
        settings: &[String],
    ) -> Cluster {
        assert!(brokers > 1, "a dedicated controller serves a cluster");
        Cluster::start_nodes(brokers + 1, true, seed, settings)
    }

    /// Starts `n` nodes; with `dedicated_controller`, the last is the only voter and no broker.
    fn start_nodes(
        n: usize,
        dedicated_controller: bool,
        seed: u64,
        settings: &[String],
    ) -> Cluster {
        let handle = Handle::current();
        let mut brokers = Vec::new();
        let live: Live = Arc::new(Mutex::new(vec![None; n]));
        let voter_ids = if dedicated_controller { n..=n } else { 1..=n };
        let voters = voter_ids
            .map(|i| format!("{i}@10.0.0.{i}:{CONTROLLER_PORT}"))
            .collect::<Vec<_>>()
            .join(",");
        for i in 0..n {
            let name = format!("strata-{}", i + 1);
            let ip: IpAddr = format!("10.0.0.{}", i + 1)
                .parse()
                .expect("a valid address");
            let addr = format!("{ip}:{PORT}");
            let disk = SimDisk::new(seed.wrapping_mul(31).wrapping_add(i as u64));
            let node_disk = disk.clone();
            let controller_only = dedicated_controller && i + 1 == n;
            let mut sets = settings.to_vec();
            sets.push(format!("node.id={}", i + 1));
            if n > 1 {
                sets.push(format!("controller.quorum.voters={voters}"));
            }
            if controller_only {
                sets.push("process.roles=controller".to_string());
                sets.push(format!("listeners=CONTROLLER://{ip}:{CONTROLLER_PORT}"));
            } else if dedicated_controller {
                sets.push("process.roles=broker".to_string());
                sets.push(format!("listeners=PLAINTEXT://{addr}"));
            } else if n > 1 {
                sets.push(format!(
                    "listeners=PLAINTEXT://{addr},CONTROLLER://{ip}:{CONTROLLER_PORT}"
                ));
            }
            let listen = (n == 1).then(|| addr.clone());
            let node_live = live.clone();
            let node = handle
                .create_node()
                .name(&name)
                .ip(ip)
                .init(move || {
                    serve(
                        node_disk.clone(),
                        listen.clone(),
                        sets.clone(),
                        node_live.clone(),
                        i,
                    )
                })
                .build();
            brokers.push(Broker {
                name,
                ip,
                addr,
                disk,
                node: node.id(),
                down: false,
                paused: false,
                controller_only,
            });
        }
        let client = handle
            .create_node()
            .name("client")
            .ip("10.0.1.1".parse().expect("a valid address"))
            .build();
        Cluster {
            brokers,
            client,
            live,
        }
    }

    /// The running brokers' state, by index.
    pub fn live_brokers(&self) -> Vec<(usize, Arc<strata_node::broker::Broker>)> {
        let live = self.live.lock().expect("live lock");
        live.iter()
            .enumerate()
            .filter(|(i, _)| !self.brokers[*i].down)
            .filter_map(|(i, b)| b.clone().map(|b| (i, b)))
            .collect()
    }

    /// The node that is the active controller, as the nodes say.
    pub fn active_controller(&self) -> Option<usize> {
        self.live_brokers().into_iter().find_map(|(i, b)| {
            let c = b.cluster()?;
            let active = c
                .controller
                .lock()
                .expect("controller lock")
                .as_ref()
                .is_some_and(|h| h.is_active());
            active.then_some(i)
        })
    }

    /// The node leading `partition` of the workload topic (the highest epoch claimed).
    pub fn leader_of(&self, partition: i32) -> Option<usize> {
        let mut best: Option<(i32, usize)> = None;
        for (i, b) in self.live_brokers() {
            let Some(p) = b.partition(super::workload::TOPIC, partition) else {
                continue;
            };
            if let Some(epoch) = p.role().leader_epoch()
                && best.is_none_or(|(e, _)| epoch > e)
            {
                best = Some((epoch, i));
            }
        }
        best.map(|(_, i)| i)
    }

    fn forget(&self, i: usize) {
        if let Some(slot) = self.live.lock().expect("live lock").get_mut(i) {
            *slot = None;
        }
    }

    /// `kill -9`: the process dies, the OS page cache (unsynced writes) survives.
    pub fn kill(&mut self, i: usize) {
        self.forget(i);
        let b = &mut self.brokers[i];
        Handle::current().kill(b.node);
        b.disk.kill();
        b.down = true;
        b.paused = false;
    }

    /// Power loss: the process dies and each unsynced write is kept, dropped or torn.
    pub fn power_loss<R: Rng + ?Sized>(&mut self, i: usize, rng: &mut R) {
        self.forget(i);
        let b = &mut self.brokers[i];
        Handle::current().kill(b.node);
        b.disk.crash(rng);
        b.down = true;
        b.paused = false;
    }

    /// The worst power loss: the process dies and every unsynced write is lost.
    pub fn power_loss_losing_unsynced(&mut self, i: usize) -> crate::disk::CrashReport {
        self.forget(i);
        let b = &mut self.brokers[i];
        Handle::current().kill(b.node);
        let report = b.disk.crash_losing_unsynced();
        b.down = true;
        b.paused = false;
        report
    }

    /// Starts a killed broker again on its disk.
    pub fn restart(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        Handle::current().restart(b.node);
        b.down = false;
    }

    pub fn pause(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        if !b.down && !b.paused {
            Handle::current().pause(b.node);
            b.paused = true;
        }
    }

    pub fn resume(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        if b.paused {
            Handle::current().resume(b.node);
            b.paused = false;
        }
    }

    /// Cuts the broker off the network (both directions). TCP data is held until healed.
    pub fn isolate(&self, i: usize) {
        NetSim::current().clog_node(self.brokers[i].node);
    }

    /// Cuts the client host off broker `i`, both ways; with `answers_only`, only what the
    /// broker sends back (requests still arrive and are executed, their answers are held). The
    /// broker still reaches every other broker. TCP data is held until healed.
    pub fn isolate_client_from(&self, i: usize, answers_only: bool) {
        let net = NetSim::current();
        let (client, broker) = (self.client.id(), self.brokers[i].node);
        net.clog_link(broker, client);
        if !answers_only {
            net.clog_link(client, broker);
        }
    }

    /// Undoes [`Cluster::isolate_client_from`].
    pub fn reconnect_client(&self, i: usize) {
        let net = NetSim::current();
        let (client, broker) = (self.client.id(), self.brokers[i].node);
        net.unclog_link(broker, client);
        net.unclog_link(client, broker);
    }

    /// Cuts node `i` off every other node of the cluster (the other brokers, and the controller
    /// quorum, also a dedicated controller), both ways, while the client host still reaches it
    /// both ways: a leader that clients keep writing to but that can neither replicate nor hear
    /// that the controller deposed it. TCP data is held until healed.
    pub fn isolate_from_peers(&self, i: usize) {
        let others: Vec<usize> = (0..self.brokers.len()).filter(|&j| j != i).collect();
        self.cut_links(i, &others);
    }

    /// Cuts node `i` off each of `others`, both ways; every other link stays (the client's
    /// too). TCP data is held until healed.
    pub fn cut_links(&self, i: usize, others: &[usize]) {
        let net = NetSim::current();
        for &j in others {
            let (a, b) = (self.brokers[i].node, self.brokers[j].node);
            net.clog_link(a, b);
            net.clog_link(b, a);
        }
    }

    /// Undoes [`Cluster::isolate_from_peers`] and [`Cluster::cut_links`] for node `i`.
    pub fn reconnect_peers(&self, i: usize) {
        let net = NetSim::current();
        for j in (0..self.brokers.len()).filter(|&j| j != i) {
            let (a, b) = (self.brokers[i].node, self.brokers[j].node);
            net.unclog_link(a, b);
            net.unclog_link(b, a);
        }
    }

    /// The addresses clients connect to (every node but a dedicated controller).
    pub fn client_addrs(&self) -> Vec<String> {
        self.brokers
            .iter()
            .filter(|b| !b.controller_only)
            .map(|b| b.addr.clone())
            .collect()
    }

    /// Heals every fault: resumes, reconnects and restarts every broker.
    pub fn heal_all(&mut self) {
        let net = NetSim::current();
        for i in 0..self.brokers.len() {
            net.unclog_node(self.brokers[i].node);
            self.reconnect_client(i);
            self.reconnect_peers(i);
            self.resume(i);
            if self.brokers[i].down {
                self.restart(i);
            }
        }
    }
}

/// One broker process: binds over the disk's current storage view and serves until killed. A
/// start-up that fails (say an IO error during recovery under injected faults) logs and returns;
/// the node stays down until the nemesis or the liveness phase restarts it.
async fn serve(disk: SimDisk, listen: Option<String>, sets: Vec<String>, live: Live, index: usize) {
    let sources = Sources {
        listen,
        data_dir: Some("/data".into()),
        sets,
        ..Default::default()
    };
    let config = match Config::resolve(&sources) {
        Ok(c) => c,
        Err(e) => panic!("the harness built an invalid config: {e}"),
    };
    match Server::bind_with_storage(config, disk.storage()).await {
        Ok(server) => {
            if let Some(slot) = live.lock().expect("live lock").get_mut(index) {
                *slot = Some(server.broker().clone());
            }
            if let Err(e) = server.run(std::future::pending()).await {
                tracing::warn!(error = %e, "broker stopped with an error");
            }
        }
        Err(e) => tracing::warn!(error = %e, "broker failed to start"),
    }
}

/// The client host's addresses of every broker.
pub fn addrs(cluster: &Cluster) -> Arc<Vec<String>> {
    Arc::new(cluster.brokers.iter().map(|b| b.addr.clone()).collect())
}
