//! The network of a run: one namespace per node, a bridge in a namespace of its own, and the
//! harness on that bridge from the root namespace; iptables rules inside the node namespaces.
//!
//! Layout (design §5):
//!
//! ```text
//!   root ns: sj-host 10.77.0.100/24 ──┐
//!   sj-n1:   eth0    10.77.0.1/24  ───┤
//!   ...                               ├── sj-br ns: bridge br0 (veth ends sj-hK / sj-host-br)
//!   sj-n5:   eth0    10.77.0.5/24  ───┘
//! ```
//!
//! Clients (Strata's own in this process, confluent-kafka in Python children) run in the root
//! namespace and reach every node through `sj-host`; faults are rules inside the node
//! namespaces, so they cut broker↔broker and broker↔controller traffic as on separate machines.
//! A partition drops, in each node's `INPUT` chain, packets from the peers on the other side;
//! both sides get rules, so both directions are cut. Client traffic is never partitioned.
//!
//! Invariants:
//! - Everything this module creates is named with the prefix [`PREFIX`], so [`sweep`] can remove
//!   the leftovers of any earlier run (a crashed harness, a `kill -9` of the test) by name alone.
//! - [`sweep`] is idempotent and kills every process still inside a `sj-` namespace before it
//!   deletes the namespace (iptables rules live in the namespace and go with it; deleting `sj-br`
//!   deletes every veth pair, because each has one end there).
//! - [`Net`] sweeps on drop; [`install_cleanup_on_signals`] sweeps on SIGINT/SIGTERM and then
//!   exits, so no exit path of a run leaves a namespace, a rule, a mount or a process behind.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Prefix of every namespace, link and mount the harness creates.
pub const PREFIX: &str = "sj-";
/// The bridge's namespace.
pub const BRIDGE_NS: &str = "sj-br";
/// The root namespace's end of the harness's veth pair.
pub const HOST_LINK: &str = "sj-host";
/// The harness's (clients') address.
pub const HOST_IP: &str = "10.77.0.100";

/// Node `id`'s namespace (`1..=5`).
pub fn node_ns(id: u32) -> String {
    format!("sj-n{id}")
}

/// Node `id`'s address.
pub fn node_ip(id: u32) -> String {
    format!("10.77.0.{id}")
}

/// Runs `program args`, failing with its stderr when it exits non-zero.
pub fn run_cmd(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{program} {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `args` inside namespace `ns` (`ip netns exec`).
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    run_cmd("ip", &full)
}

/// Fails loudly unless the harness can do what it needs: root, `ip`, `iptables`.
pub fn preflight() -> Result<()> {
    let euid = run_cmd("id", &["-u"]).context("running id -u")?;
    let euid = euid.trim();
    if euid != "0" {
        bail!("strata-jepsen must run as root (network namespaces, iptables); euid is {euid}");
    }
    run_cmd("ip", &["-V"]).context("`ip` (iproute2) is needed")?;
    run_cmd("iptables", &["--version"])
        .context("`iptables` is needed: apt-get install -y iptables")?;
    Ok(())
}

/// The network of one run. Dropping it removes everything (see the module docs).
pub struct Net {
    pub nodes: u32,
}

impl Net {
    /// Sweeps leftovers, then builds the bridge, `nodes` node namespaces and the host link.
    pub fn create(nodes: u32) -> Result<Net> {
        sweep();
        let net = Net { nodes };
        net.build()?;
        Ok(net)
    }

    fn build(&self) -> Result<()> {
        run_cmd("ip", &["netns", "add", BRIDGE_NS])?;
        in_ns(BRIDGE_NS, &["ip", "link", "set", "lo", "up"])?;
        in_ns(BRIDGE_NS, &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns(BRIDGE_NS, &["ip", "link", "set", "br0", "up"])?;
        for id in 1..=self.nodes {
            let ns = node_ns(id);
            let br_end = format!("sj-h{id}");
            run_cmd("ip", &["netns", "add", &ns])?;
            in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
            // Both ends are created in the node's namespace, then one moves to the bridge's.
            in_ns(
                &ns,
                &[
                    "ip", "link", "add", "eth0", "type", "veth", "peer", "name", &br_end,
                ],
            )?;
            in_ns(&ns, &["ip", "link", "set", &br_end, "netns", BRIDGE_NS])?;
            in_ns(
                &ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", node_ip(id)),
                    "dev",
                    "eth0",
                ],
            )?;
            in_ns(&ns, &["ip", "link", "set", "eth0", "up"])?;
            in_ns(BRIDGE_NS, &["ip", "link", "set", &br_end, "master", "br0"])?;
            in_ns(BRIDGE_NS, &["ip", "link", "set", &br_end, "up"])?;
        }
        run_cmd(
            "ip",
            &[
                "link",
                "add",
                HOST_LINK,
                "type",
                "veth",
                "peer",
                "name",
                "sj-host-br",
            ],
        )?;
        run_cmd("ip", &["link", "set", "sj-host-br", "netns", BRIDGE_NS])?;
        run_cmd(
            "ip",
            &["addr", "add", &format!("{HOST_IP}/24"), "dev", HOST_LINK],
        )?;
        run_cmd("ip", &["link", "set", HOST_LINK, "up"])?;
        in_ns(
            BRIDGE_NS,
            &["ip", "link", "set", "sj-host-br", "master", "br0"],
        )?;
        in_ns(BRIDGE_NS, &["ip", "link", "set", "sj-host-br", "up"])?;
        tracing::info!(
            nodes = self.nodes,
            "network up: bridge, namespaces, host link"
        );
        Ok(())
    }

    /// Cuts traffic between every node of `a` and every node of `b` (both directions).
    pub fn partition(&self, a: &[u32], b: &[u32]) -> Result<()> {
        for &x in a {
            for &y in b {
                if x == y {
                    continue;
                }
                drop_from(x, y)?;
                drop_from(y, x)?;
            }
        }
        Ok(())
    }

    /// Drops a fraction `probability` of the packets node `id` receives on its bridge link.
    pub fn lose(&self, id: u32, probability: f64) -> Result<()> {
        let p = format!("{probability:.3}");
        in_ns(
            &node_ns(id),
            &[
                "iptables",
                "-A",
                "INPUT",
                "-i",
                "eth0",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        )?;
        Ok(())
    }

    /// Packets dropped so far by node `id`'s rules (the evidence that a rule did something).
    pub fn dropped_packets(&self, id: u32) -> Result<u64> {
        let out = in_ns(&node_ns(id), &["iptables", "-L", "INPUT", "-v", "-n", "-x"])?;
        Ok(out
            .lines()
            .filter(|l| l.contains("DROP"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    /// Removes every rule of every node.
    pub fn heal(&self) -> Result<()> {
        for id in 1..=self.nodes {
            in_ns(&node_ns(id), &["iptables", "-F"])?;
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        sweep();
    }
}

/// Node `at` drops every packet from node `from`.
fn drop_from(at: u32, from: u32) -> Result<()> {
    in_ns(
        &node_ns(at),
        &[
            "iptables",
            "-A",
            "INPUT",
            "-s",
            &node_ip(from),
            "-j",
            "DROP",
        ],
    )?;
    Ok(())
}

/// Every namespace whose name starts with [`PREFIX`].
pub fn leftover_namespaces() -> Vec<String> {
    let Ok(out) = run_cmd("ip", &["netns", "list"]) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

/// Pids of the processes inside namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<i32> {
    run_cmd("ip", &["netns", "pids", ns])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes everything any run left: processes in `sj-` namespaces (SIGCONT then SIGKILL, so a
/// paused one dies too), the namespaces, the host link, and `sj-` tmpfs mounts. Never fails:
/// each step is tried and logged.
pub fn sweep() {
    for ns in leftover_namespaces() {
        for pid in pids_in(&ns) {
            let pid = pid.to_string();
            let _ = run_cmd("kill", &["-CONT", &pid]);
            let _ = run_cmd("kill", &["-KILL", &pid]);
        }
    }
    // Reap: wait (briefly) until the namespaces are empty, so deleting them frees everything.
    for _ in 0..50 {
        if leftover_namespaces()
            .iter()
            .all(|ns| pids_in(ns).is_empty())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for ns in leftover_namespaces() {
        if let Err(e) = run_cmd("ip", &["netns", "del", &ns]) {
            tracing::warn!(ns, error = %e, "could not delete namespace");
        }
    }
    if run_cmd("ip", &["link", "show", HOST_LINK]).is_ok()
        && let Err(e) = run_cmd("ip", &["link", "del", HOST_LINK])
    {
        tracing::warn!(error = %e, "could not delete the host link");
    }
    for mount in leftover_mounts() {
        if let Err(e) = run_cmd("umount", &["-l", &mount]) {
            tracing::warn!(mount, error = %e, "could not unmount");
        }
    }
}

/// Mount points of tmpfs file systems the harness mounted (their path has a `sj-disk` part).
pub fn leftover_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _dev = f.next()?;
            let at = f.next()?;
            let fs = f.next()?;
            (fs == "tmpfs"
                && Path::new(at).components().any(|c| {
                    c.as_os_str()
                        .to_str()
                        .is_some_and(|s| s.starts_with("sj-disk"))
                }))
            .then(|| at.to_string())
        })
        .collect()
}

/// What is still there that [`sweep`] should have removed (empty when clean).
pub fn leftovers() -> Vec<String> {
    let mut left = leftover_namespaces();
    if run_cmd("ip", &["link", "show", HOST_LINK]).is_ok() {
        left.push(HOST_LINK.to_string());
    }
    left.extend(leftover_mounts());
    left
}

/// On SIGINT or SIGTERM: sweep, then exit with 130. Call once, inside a tokio runtime.
pub fn install_cleanup_on_signals() {
    tokio::spawn(async {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            tracing::warn!("no SIGTERM handler: cleanup only on SIGINT and normal exits");
            let _ = tokio::signal::ctrl_c().await;
            sweep();
            std::process::exit(130);
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("signal: removing namespaces, rules and processes");
        sweep();
        std::process::exit(130);
    });
}
