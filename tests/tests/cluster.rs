//! Three real `strata` processes as one cluster (combined broker + controller nodes), driven by
//! confluent-kafka (librdkafka) through `tests/python/cluster_failover.py`.
//!
//! The script runs in phases (create, produce, consume, describe); this file owns the processes
//! and does the `kill -9` and restart while the produce phase runs. What is checked is Kafka's
//! acks=all promise: once a write is acknowledged, it survives the loss of the leader that
//! acknowledged it, at the offset it was acknowledged at (with min.insync.replicas=2 it was on
//! at least two replicas, and a new leader comes from the ISR).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::StrataCluster;
use strata_tests::tools::{ensure_python_clients, python_script, run_python};

const SCRIPT: &str = "cluster_failover.py";
const NODES: usize = 3;
const PARTITIONS: i32 = 6;
/// Values produced to partition 0.
const COUNT: u64 = 20_000;
/// Seconds over which the script spreads the second half, so the failover lands mid-stream.
const SECOND_HALF_SECONDS: &str = "10";
/// How long the killed leader stays down: about the broker session timeout (3 s), so the
/// controller has fenced it and moved leadership before it comes back.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// Problems listed in a failure message; the rest are counted.
const SHOWN_PROBLEMS: usize = 30;

/// What Metadata said about the topic (the `create` and `describe` phases).
#[derive(Debug)]
struct Layout {
    /// Broker id → `host:port`.
    brokers: BTreeMap<i32, String>,
    partitions: BTreeMap<i32, PartitionLayout>,
}

#[derive(Debug)]
struct PartitionLayout {
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// What the produce phase reported.
#[derive(Debug, Default)]
struct Produced {
    /// Value → the offset its acknowledgement named.
    acked: BTreeMap<u64, i64>,
    /// Value → the delivery error.
    failed: BTreeMap<u64, String>,
}

/// What the consume phase read from partition 0.
#[derive(Debug, Default)]
struct Read0 {
    low: i64,
    high: i64,
    /// (offset, value) in the order read.
    records: Vec<(i64, String)>,
}

/// acks=all with min.insync.replicas=2 on an RF=3 topic: `kill -9` of partition 0's leader in
/// the middle of 20,000 produces, then a restart. Every acknowledged value is read back at its
/// acknowledged offset, offsets are dense from 0 to the high watermark, acknowledged values
/// have increasing offsets (one request in flight, so librdkafka never reorders), and every
/// value is eventually acknowledged (failover happens within delivery.timeout.ms). Duplicates
/// from retries of requests whose response was lost are allowed without idempotence and only
/// reported.
#[test]
fn acks_all_survives_leader_kill9() {
    let topic = "failover";
    let mut cluster = StrataCluster::start(NODES);
    let b = cluster.bootstrap();
    let layout = parse_layout(&run_python(SCRIPT, &["create", &b, topic]));
    assert_leaders_spread(&layout);
    let victim = layout.partitions[&0].leader;

    let produced = produce_killing_leader(&mut cluster, topic, victim);
    cluster.wait_ready();
    let read = parse_read(&run_python(SCRIPT, &["consume", &b, topic]));
    let after = parse_layout(&run_python(SCRIPT, &["describe", &b, topic]));

    // The killed broker is partition 0's preferred replica: once back in the ISR, a preferred
    // election (ElectLeaders through confluent-kafka's AdminClient) gives it its leadership back,
    // and DescribeCluster lists every node.
    let elected = run_python(SCRIPT, &["elect", &b, topic]);
    let restored = parse_layout(&elected);
    assert_eq!(
        restored.partitions[&0].leader, victim,
        "preferred leader restored:\n{elected}"
    );
    assert!(
        elected
            .lines()
            .any(|l| l.starts_with("CLUSTER ") && l.ends_with("nodes 1,2,3")),
        "DescribeCluster lists the three brokers:\n{elected}"
    );

    let verdict = judge(&produced, &read);
    let p0 = &after.partitions[&0];
    println!(
        "killed node {victim} (leader of partition 0) after {} acknowledged values, restarted it {DOWN_FOR:?} later; \
         {} acknowledged, {} failed; read offsets {}..{} ({} records, {} duplicates); \
         partition 0 now: leader {}, isr {:?}",
        COUNT / 2,
        produced.acked.len(),
        produced.failed.len(),
        read.low,
        read.high,
        read.records.len(),
        verdict.duplicates,
        p0.leader,
        p0.isr,
    );
    assert!(
        verdict.problems.is_empty(),
        "{} problems after kill -9 of the leader (first {SHOWN_PROBLEMS}):\n{}",
        verdict.problems.len(),
        verdict
            .problems
            .iter()
            .take(SHOWN_PROBLEMS)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `min.insync.replicas` holds acks=all writes back: with RF 3 and min.insync.replicas=3, once a
/// follower is killed and fenced (the ISR shrinks to two), an acks=all write is refused with
/// NOT_ENOUGH_REPLICAS; with the follower back in the ISR, writes succeed again.
#[test]
fn acks_all_refused_below_min_insync_replicas() {
    let topic = "strict";
    let mut cluster = StrataCluster::start(NODES);
    let b = cluster.bootstrap();
    let isr = run_python(SCRIPT, &["strict", &b, topic]);
    let leader: i32 = isr
        .lines()
        .find_map(|l| l.strip_prefix("ISR "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ISR line:\n{isr}"));
    let follower = (1..=NODES as i32)
        .find(|n| *n != leader)
        .expect("a follower");
    assert_eq!(
        run_python(SCRIPT, &["produce_one", &b, topic]).trim(),
        "DELIVERY ok 0",
        "a write with a full ISR"
    );
    cluster.kill9(follower);
    run_python(SCRIPT, &["isr2", &b, topic]);
    let refused = run_python(SCRIPT, &["produce_one", &b, topic]);
    assert_eq!(
        refused.trim(),
        "DELIVERY err NOT_ENOUGH_REPLICAS",
        "acks=all with 2 of min.insync.replicas=3 in sync"
    );
    cluster.restart(follower);
    cluster.wait_ready();
    run_python(SCRIPT, &["strict_wait3", &b, topic]);
    let back = run_python(SCRIPT, &["produce_one", &b, topic]);
    assert!(
        back.trim().starts_with("DELIVERY ok "),
        "writes succeed once the ISR is whole again: {back}"
    );
}

/// Metadata from a fresh three-node cluster: all three brokers at their PLAINTEXT addresses,
/// and a topic created with replication factor 3 has three replicas and a full ISR on every
/// partition, with leadership spread over all brokers.
#[test]
fn metadata_lists_three_brokers_and_replicas() {
    let cluster = StrataCluster::start(NODES);
    let b = cluster.bootstrap();
    let layout = parse_layout(&run_python(SCRIPT, &["create", &b, "layout"]));
    let want_brokers: BTreeMap<i32, String> = (1..=NODES as i32)
        .map(|id| (id, format!("127.0.0.1:{}", cluster.ports(id).kafka)))
        .collect();
    assert_eq!(layout.brokers, want_brokers, "brokers in Metadata");
    assert_eq!(layout.partitions.len(), PARTITIONS as usize);
    let all: Vec<i32> = (1..=NODES as i32).collect();
    for (p, l) in &layout.partitions {
        assert_eq!(sorted(&l.replicas), all, "replicas of partition {p}: {l:?}");
        assert_eq!(
            sorted(&l.isr),
            all,
            "ISR of partition {p} right after creation: {l:?}"
        );
        assert!(
            l.replicas.contains(&l.leader),
            "partition {p}: leader is not a replica: {l:?}"
        );
    }
    assert_leaders_spread(&layout);
}

/// Each broker leads at least one partition.
fn assert_leaders_spread(layout: &Layout) {
    let leaders: BTreeSet<i32> = layout.partitions.values().map(|p| p.leader).collect();
    let brokers: BTreeSet<i32> = (1..=NODES as i32).collect();
    assert_eq!(
        leaders, brokers,
        "leaders are not spread over all brokers: {layout:#?}"
    );
}

/// Runs the produce phase; on its `HALFWAY` line, `kill -9`s `victim`, waits [`DOWN_FOR`] and
/// restarts it, while the script goes on producing.
fn produce_killing_leader(cluster: &mut StrataCluster, topic: &str, victim: i32) -> Produced {
    ensure_python_clients();
    let script = python_script(SCRIPT);
    let bootstrap = cluster.bootstrap();
    let count = COUNT.to_string();
    let args = [
        "produce",
        bootstrap.as_str(),
        topic,
        count.as_str(),
        SECOND_HALF_SECONDS,
    ];
    let command = format!("python3 {} {}", script.display(), args.join(" "));
    // librdkafka logs every broker disconnect on stderr: into a file, so the script never
    // blocks on a full pipe.
    let stderr_file = tempfile::NamedTempFile::new().expect("temp file for the producer's stderr");
    let mut child = KillOnDrop(
        Command::new("python3")
            .arg(&script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                stderr_file.reopen().expect("reopen the stderr temp file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{command}`: {e}")),
    );
    let stdout = BufReader::new(child.0.stdout.take().expect("piped stdout"));
    let mut lines = Vec::new();
    let mut killed = false;
    for line in stdout.lines() {
        let line = line.expect("read the producer's stdout");
        if line == "HALFWAY" && !killed {
            let t = Instant::now();
            cluster.kill9(victim);
            std::thread::sleep(DOWN_FOR);
            cluster.restart(victim);
            killed = true;
            println!(
                "node {victim} killed and listening again after {:?}",
                t.elapsed()
            );
            continue;
        }
        lines.push(line);
    }
    let status = child.0.wait().expect("wait for the producer");
    let stderr = std::fs::read_to_string(stderr_file.path()).unwrap_or_default();
    assert!(
        status.success(),
        "`{command}` failed with {status}\n--- stdout tail ---\n{}\n--- stderr tail ---\n{}",
        tail(&lines.join("\n"), 50),
        tail(&stderr, 100)
    );
    assert!(killed, "`{command}` never printed HALFWAY");

    let mut produced = Produced::default();
    let mut done = false;
    for line in &lines {
        let mut f = line.splitn(3, ' ');
        match (f.next(), f.next(), f.next()) {
            (Some("ACK"), Some(v), Some(o)) => {
                produced.acked.insert(number(v, line), number(o, line));
            }
            (Some("FAILED"), Some(v), e) => {
                produced
                    .failed
                    .insert(number(v, line), e.unwrap_or("").to_string());
            }
            (Some("DONE"), _, _) => done = true,
            _ => panic!("unexpected line from `{command}`: {line:?}"),
        }
    }
    assert!(done, "`{command}` did not finish its report");
    assert_eq!(
        (produced.acked.len() + produced.failed.len()) as u64,
        COUNT,
        "every value is either acknowledged or failed"
    );
    produced
}

/// The checks, collected rather than stopping at the first, so a failure shows its extent.
struct Verdict {
    problems: Vec<String>,
    /// Records whose value was also read at a lower offset.
    duplicates: usize,
}

fn judge(produced: &Produced, read: &Read0) -> Verdict {
    let mut problems = Vec::new();
    if read.low != 0 {
        problems.push(format!(
            "log start offset is {}, want 0 (nothing was deleted)",
            read.low
        ));
    }
    // Dense offsets from the log start to the high watermark, in order.
    for (i, (o, _)) in read.records.iter().enumerate() {
        let want = read.low + i as i64;
        if *o != want {
            problems.push(format!(
                "record {i} read has offset {o}, want {want} (a gap or reordering)"
            ));
            break;
        }
    }
    if read.low + read.records.len() as i64 != read.high {
        problems.push(format!(
            "read {} records from {}, high watermark is {}",
            read.records.len(),
            read.low,
            read.high
        ));
    }
    let by_offset: BTreeMap<i64, &str> =
        read.records.iter().map(|(o, v)| (*o, v.as_str())).collect();
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for (o, v) in &read.records {
        match v.parse::<u64>() {
            Ok(n) if n < COUNT => {
                if !seen.insert(n) {
                    duplicates += 1;
                }
            }
            _ => problems.push(format!("offset {o} holds {v:?}, which was never produced")),
        }
    }
    // Every acknowledged value, at the offset its acknowledgement named.
    for (v, o) in &produced.acked {
        let want = v.to_string();
        match by_offset.get(o) {
            Some(got) if *got == want => {}
            Some(got) => problems.push(format!(
                "acknowledged value {v} at offset {o} is missing: the offset holds {got:?}"
            )),
            None => problems.push(format!(
                "acknowledged value {v} at offset {o} is missing: offset not read (high watermark {})",
                read.high
            )),
        }
    }
    // Acknowledged in production order, at increasing offsets.
    let mut last: Option<(u64, i64)> = None;
    for (v, o) in &produced.acked {
        if let Some((pv, po)) = last
            && *o <= po
        {
            problems.push(format!(
                "value {v} acknowledged at offset {o}, not after value {pv} at offset {po}"
            ));
        }
        last = Some((*v, *o));
    }
    // Liveness: the cluster failed over within delivery.timeout.ms.
    if !produced.failed.is_empty() {
        let first: Vec<String> = produced
            .failed
            .iter()
            .take(5)
            .map(|(v, e)| format!("{v}: {e}"))
            .collect();
        problems.push(format!(
            "{} values were never acknowledged (delivery.timeout.ms 120 s): {}",
            produced.failed.len(),
            first.join("; ")
        ));
    }
    Verdict {
        problems,
        duplicates,
    }
}

fn parse_layout(out: &str) -> Layout {
    let mut layout = Layout {
        brokers: BTreeMap::new(),
        partitions: BTreeMap::new(),
    };
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["BROKER", id, addr] => {
                layout.brokers.insert(number(id, line), addr.to_string());
            }
            ["PARTITION", p, leader, replicas, rest @ ..] => {
                let isr = rest.first().copied().unwrap_or("");
                layout.partitions.insert(
                    number(p, line),
                    PartitionLayout {
                        leader: number(leader, line),
                        replicas: ids(replicas, line),
                        isr: ids(isr, line),
                    },
                );
            }
            _ => {}
        }
    }
    assert_eq!(
        layout.partitions.len(),
        PARTITIONS as usize,
        "partitions in the layout:\n{out}"
    );
    layout
}

fn parse_read(out: &str) -> Read0 {
    let mut read = Read0::default();
    let mut watermarks = false;
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["WATERMARKS", low, high] => {
                read.low = number(low, line);
                read.high = number(high, line);
                watermarks = true;
            }
            ["READ", o, v] => read.records.push((number(o, line), v.to_string())),
            _ => panic!("unexpected line from the consume phase: {line:?}"),
        }
    }
    assert!(
        watermarks,
        "the consume phase printed no watermarks:\n{}",
        tail(out, 20)
    );
    read
}

fn number<T: std::str::FromStr>(s: &str, line: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a number in {line:?}"))
}

fn ids(s: &str, line: &str) -> Vec<i32> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| number(x, line))
        .collect()
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// The producer script, killed if the test panics while it runs (it would otherwise go on
/// producing for up to its delivery timeout).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
