//! The five `strata` processes of a run, each in its own namespace ([`crate::net`]), every one a
//! broker and a voter of the controller quorum (KRaft's combined mode).
//!
//! Node `id` (`1..=5`) listens on `10.77.0.id:9092` (Kafka, advertised as such so clients on the
//! bridge reach it) and `10.77.0.id:9093` (controller); its directory in the run directory is
//! `n<id>/`, holding `data/` (its `log.dirs`, unless it is the disk-full node, whose data lives
//! on a small tmpfs at `sj-disk-n<id>/`), `strata.log` (stdout and stderr of every incarnation)
//! and `faketime` (its clock offset, when clocks are faked).
//!
//! Each process runs as `ip netns exec sj-n<id> env [faketime vars] strata ...`; `ip netns exec`
//! and `env` both exec, so the child's pid is the broker's own and signals reach it directly.
//!
//! Invariants: a node's `child` is `Some` exactly while an incarnation was started and not yet
//! reaped; dropping the cluster SIGKILLs every incarnation and then drops the network (which
//! sweeps every namespace, mount and leftover process).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use strata_client::{Admin, Connection, ConnectionConfig};

use crate::net::{self, Net};

/// The Kafka port of every node.
pub const KAFKA_PORT: u16 = 9092;
/// The controller port of every node.
pub const CONTROLLER_PORT: u16 = 9093;
/// libfaketime's multi-threaded build, from Debian's `libfaketime`.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// Size of the disk-full node's tmpfs.
pub const SMALL_DISK_MB: u64 = 256;

/// Settings every node gets: failures detected in seconds (as `tests/src/cluster.rs`), and the
/// replication the workload needs (RF 3, `min.insync.replicas=2`).
const SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.lag.time.max.ms", "5000"),
    ("min.insync.replicas", "2"),
    ("default.replication.factor", "3"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.num.partitions", "5"),
    ("group.initial.rebalance.delay.ms", "500"),
    ("controller.quorum.election.timeout.ms", "1000"),
];

/// How a cluster is started.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub strata_bin: PathBuf,
    /// The run directory: node directories go under it.
    pub dir: PathBuf,
    pub nodes: u32,
    /// Run every node under libfaketime, so its clock can be moved.
    pub fake_clocks: bool,
    /// The node whose `log.dirs` is a small tmpfs (for the disk-full nemesis).
    pub small_disk: Option<u32>,
}

/// One `strata` process.
struct Node {
    id: u32,
    /// The current incarnation, if started and not reaped.
    child: Option<Child>,
    /// Incarnations started so far.
    starts: u32,
    /// The current incarnation was ended by [`Cluster::kill`] (not by exiting on its own).
    killed: bool,
}

/// The cluster of a run (see the module docs).
pub struct Cluster {
    options: ClusterOptions,
    nodes: Vec<Node>,
    /// Declared last: dropped after every process is killed.
    net: Net,
}

impl Cluster {
    /// Builds the network and starts every node (without waiting for them; see
    /// [`Cluster::wait_ready`]).
    pub fn start(options: ClusterOptions) -> Result<Cluster> {
        if !options.strata_bin.is_file() {
            bail!(
                "strata binary {} not found \
                 (build it: cargo build --release -p strata-node --bin strata, or set STRATA_BIN)",
                options.strata_bin.display()
            );
        }
        if options.fake_clocks && !Path::new(LIBFAKETIME).is_file() {
            bail!("{LIBFAKETIME} not found: apt-get install -y libfaketime faketime");
        }
        let net = Net::create(options.nodes)?;
        let mut cluster = Cluster {
            nodes: (1..=options.nodes)
                .map(|id| Node {
                    id,
                    child: None,
                    starts: 0,
                    killed: false,
                })
                .collect(),
            options,
            net,
        };
        for id in 1..=cluster.options.nodes {
            cluster.prepare_dir(id)?;
        }
        for id in 1..=cluster.options.nodes {
            cluster.launch(id)?;
        }
        Ok(cluster)
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    pub fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// `host:port` of node `id`'s Kafka listener.
    pub fn addr(&self, id: u32) -> String {
        format!("{}:{KAFKA_PORT}", net::node_ip(id))
    }

    /// Every node's Kafka address.
    pub fn addrs(&self) -> Vec<String> {
        self.ids().into_iter().map(|id| self.addr(id)).collect()
    }

    fn node_dir(&self, id: u32) -> PathBuf {
        self.options.dir.join(format!("n{id}"))
    }

    /// The mount point of node `id`'s small disk.
    pub fn disk_mount(&self, id: u32) -> PathBuf {
        self.options.dir.join(format!("sj-disk-n{id}"))
    }

    fn data_dir(&self, id: u32) -> PathBuf {
        if self.options.small_disk == Some(id) {
            self.disk_mount(id).join("data")
        } else {
            self.node_dir(id).join("data")
        }
    }

    /// Node `id`'s faketime file.
    pub fn faketime_file(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("faketime")
    }

    pub fn log_file(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("strata.log")
    }

    fn prepare_dir(&self, id: u32) -> Result<()> {
        let dir = self.node_dir(id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if self.options.small_disk == Some(id) {
            let mount = self.disk_mount(id);
            std::fs::create_dir_all(&mount)
                .with_context(|| format!("creating {}", mount.display()))?;
            let size = format!("size={SMALL_DISK_MB}m");
            net::run_cmd(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    &size,
                    "tmpfs",
                    &mount.to_string_lossy(),
                ],
            )?;
        }
        let data = self.data_dir(id);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        if self.options.fake_clocks {
            self.set_clock_offset(id, 0)?;
        }
        Ok(())
    }

    fn voters(&self) -> String {
        self.ids()
            .into_iter()
            .map(|id| format!("{id}@{}:{CONTROLLER_PORT}", net::node_ip(id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The command line of node `id` (program first).
    fn command_line(&self, id: u32) -> Vec<String> {
        let ip = net::node_ip(id);
        let mut args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            net::node_ns(id),
            "env".into(),
        ];
        if self.options.fake_clocks {
            args.push(format!("LD_PRELOAD={LIBFAKETIME}"));
            args.push("FAKETIME_DONT_FAKE_MONOTONIC=1".into());
            args.push(format!(
                "FAKETIME_TIMESTAMP_FILE={}",
                self.faketime_file(id).display()
            ));
            // Re-read the file at most once a second: every read of the wall clock would
            // otherwise open it (FAKETIME_NO_CACHE), a cost on a two-core machine.
            args.push("FAKETIME_CACHE_DURATION=1".into());
        }
        args.push(self.options.strata_bin.to_string_lossy().into_owned());
        args.push("--data-dir".into());
        args.push(self.data_dir(id).to_string_lossy().into_owned());
        let mut settings: Vec<(String, String)> = vec![
            ("node.id".into(), id.to_string()),
            ("controller.quorum.voters".into(), self.voters()),
            (
                "listeners".into(),
                format!("PLAINTEXT://{ip}:{KAFKA_PORT},CONTROLLER://{ip}:{CONTROLLER_PORT}"),
            ),
            (
                "advertised.listeners".into(),
                format!("PLAINTEXT://{ip}:{KAFKA_PORT}"),
            ),
        ];
        settings.extend(SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        for (k, v) in settings {
            args.push("--set".into());
            args.push(format!("{k}={v}"));
        }
        args
    }

    /// Starts an incarnation of node `id` (it must not be running).
    fn launch(&mut self, id: u32) -> Result<()> {
        let args = self.command_line(id);
        let log_path = self.log_file(id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut header = log.try_clone().context("cloning the log handle")?;
        let _ = writeln!(
            header,
            "=== harness: starting node {id}: ip {}",
            args.join(" ")
        );
        let err = log.try_clone().context("cloning the log handle")?;
        let child = Command::new("ip")
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        tracing::info!(node = id, pid = child.id(), "started");
        let node = self.node_mut(id)?;
        node.child = Some(child);
        node.starts += 1;
        node.killed = false;
        Ok(())
    }

    fn node_mut(&mut self, id: u32) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    fn node(&self, id: u32) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    /// The pid of node `id`'s running incarnation.
    pub fn pid(&self, id: u32) -> Option<i32> {
        let node = self.node(id).ok()?;
        let child = node.child.as_ref()?;
        i32::try_from(child.id()).ok()
    }

    /// Incarnations of node `id` started so far.
    pub fn starts(&self, id: u32) -> u32 {
        self.node(id).map(|n| n.starts).unwrap_or(0)
    }

    /// Whether node `id`'s process exists and has not exited (reaps it if it exited).
    pub fn is_running(&mut self, id: u32) -> bool {
        let Ok(node) = self.node_mut(id) else {
            return false;
        };
        match node.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                tracing::warn!(node = id, %status, "node exited");
                node.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Whether node `id` is down because [`Cluster::kill`] ended it (a fault of the harness),
    /// rather than by exiting on its own.
    pub fn was_killed(&self, id: u32) -> bool {
        self.node(id).map(|n| n.killed).unwrap_or(false)
    }

    /// `kill -9` node `id` and reap it. No-op if it is not running.
    pub fn kill(&mut self, id: u32) -> Result<()> {
        let node = self.node_mut(id)?;
        if let Some(mut child) = node.child.take() {
            // SIGKILL also ends a stopped (SIGSTOP) process.
            child.kill().with_context(|| format!("kill -9 node {id}"))?;
            child.wait().with_context(|| format!("reaping node {id}"))?;
            node.killed = true;
            tracing::info!(node = id, "killed");
        }
        Ok(())
    }

    /// Starts node `id` again if it is not running.
    pub fn restart(&mut self, id: u32) -> Result<bool> {
        if self.is_running(id) {
            return Ok(false);
        }
        self.launch(id)?;
        Ok(true)
    }

    /// `SIGSTOP` (`true`) or `SIGCONT` (`false`) node `id`.
    pub fn pause(&mut self, id: u32, stop: bool) -> Result<()> {
        let Some(pid) = self.pid(id) else {
            return Ok(());
        };
        let sig = if stop { "-STOP" } else { "-CONT" };
        net::run_cmd("kill", &[sig, &pid.to_string()])
            .with_context(|| format!("signalling node {id}"))?;
        Ok(())
    }

    /// The state letter of node `id`'s process in `/proc/<pid>/stat` (`T`: stopped).
    pub fn process_state(&self, id: u32) -> Option<char> {
        let pid = self.pid(id)?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1;
        after.trim_start().chars().next()
    }

    /// Sets node `id`'s clock offset (seconds, may be negative), re-read by libfaketime within a
    /// second (`FAKETIME_CACHE_DURATION=1`). Monotonic clocks are left alone.
    pub fn set_clock_offset(&self, id: u32, seconds: i64) -> Result<()> {
        let path = self.faketime_file(id);
        let text = if seconds >= 0 {
            format!("+{seconds}\n")
        } else {
            format!("{seconds}\n")
        };
        // Write then rename, so libfaketime never reads a half-written file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// Whether node `id`'s process has libfaketime mapped (evidence its clock can move).
    pub fn has_faketime(&self, id: u32) -> bool {
        self.pid(id)
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/maps")).ok())
            .is_some_and(|maps| maps.contains("libfaketime"))
    }

    /// The wall clock node `id` sees, in seconds since the epoch: `date +%s` run in the node's
    /// namespace with the node's faketime environment (the same library and file).
    pub fn faked_now(&self, id: u32) -> Result<i64> {
        let out = net::in_ns(
            &net::node_ns(id),
            &[
                "env",
                &format!("LD_PRELOAD={LIBFAKETIME}"),
                "FAKETIME_DONT_FAKE_MONOTONIC=1",
                &format!(
                    "FAKETIME_TIMESTAMP_FILE={}",
                    self.faketime_file(id).display()
                ),
                "FAKETIME_NO_CACHE=1",
                "date",
                "+%s",
            ],
        )?;
        out.trim()
            .parse()
            .with_context(|| format!("parsing date output {out:?}"))
    }

    /// Fills node `id`'s small disk: writes a filler file until the tmpfs answers ENOSPC.
    /// Returns the bytes written.
    pub fn fill_disk(&self, id: u32) -> Result<u64> {
        if self.options.small_disk != Some(id) {
            bail!("node {id} has no small disk");
        }
        let path = self.disk_mount(id).join("filler");
        let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e).context("filling the disk"),
            }
        }
        Ok(written)
    }

    /// Free bytes on node `id`'s small disk.
    pub fn disk_free(&self, id: u32) -> Result<u64> {
        let out = net::run_cmd(
            "df",
            &[
                "--output=avail",
                "-B1",
                &self.disk_mount(id).to_string_lossy(),
            ],
        )?;
        out.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("parsing df output {out:?}"))
    }

    /// Frees node `id`'s small disk (removes the filler).
    pub fn free_disk(&self, id: u32) -> Result<()> {
        let path = self.disk_mount(id).join("filler");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// Metadata from the first node that answers within 2 s.
    pub async fn metadata(&self, topics: Option<&[&str]>) -> Result<ClusterView> {
        let mut last = None;
        for addr in self.addrs() {
            match metadata_from(&addr, topics).await {
                Ok(view) => return Ok(view),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no nodes")))
    }

    /// Waits (at most `budget`) until some node's Metadata lists every broker and names an
    /// active controller.
    pub async fn wait_ready(&mut self, budget: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + budget;
        let want: Vec<i32> = self.ids().into_iter().map(|id| id as i32).collect();
        loop {
            let ready = match self.metadata(None).await {
                Ok(view) => {
                    view.brokers.keys().copied().collect::<Vec<_>>() == want && view.controller > 0
                }
                Err(_) => false,
            };
            if ready {
                return Ok(());
            }
            for id in self.ids() {
                if !self.is_running(id) {
                    bail!(
                        "node {id} exited while waiting for the cluster; see {}",
                        self.log_file(id).display()
                    );
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("Metadata did not list brokers {want:?} within {budget:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Kills every incarnation (SIGCONT first, so none stays stopped).
    pub fn shutdown(&mut self) {
        for id in self.ids() {
            let _ = self.pause(id, false);
            if let Err(e) = self.kill(id) {
                tracing::warn!(node = id, error = %e, "could not kill");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
        // `net` drops next and sweeps namespaces and mounts.
    }
}

/// What one node's Metadata said.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The node that answered.
    pub from: String,
    /// The active controller (`-1`: unknown).
    pub controller: i32,
    pub brokers: BTreeMap<i32, String>,
    /// Leader per (topic, partition) (`-1`: none).
    pub leaders: BTreeMap<(String, i32), i32>,
    /// ISR per (topic, partition).
    pub isr: BTreeMap<(String, i32), Vec<i32>>,
}

/// Asks `addr` for Metadata (2 s budget).
pub async fn metadata_from(addr: &str, topics: Option<&[&str]>) -> Result<ClusterView> {
    let lookup = async {
        let conn = Connection::connect(addr, ConnectionConfig::default())
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let meta = Admin::new(&conn)
            .metadata(topics)
            .await
            .with_context(|| format!("Metadata from {addr}"))?;
        anyhow::Ok(meta)
    };
    let meta = tokio::time::timeout(Duration::from_secs(2), lookup)
        .await
        .with_context(|| format!("Metadata from {addr} timed out"))??;
    let mut view = ClusterView {
        from: addr.to_string(),
        controller: meta.controller_id.0,
        ..ClusterView::default()
    };
    for b in &meta.brokers {
        view.brokers
            .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
    }
    for t in &meta.topics {
        let Some(name) = &t.name else { continue };
        for p in &t.partitions {
            let key = (name.as_str().to_string(), p.partition_index);
            view.leaders.insert(key.clone(), p.leader_id.0);
            view.isr
                .insert(key, p.isr_nodes.iter().map(|n| n.0).collect());
        }
    }
    Ok(view)
}
