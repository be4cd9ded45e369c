//! Idempotent producers (KIP-98, issue 5) of two real clients — confluent-kafka (librdkafka) and
//! kafka-python — against three real `strata` processes whose partition leader is `kill -9`ed
//! twice while values are in flight.
//!
//! Each round: partition 0 has leader L and followers S (the one the controller will elect next:
//! first in replica order) and P. P is paused (SIGSTOP) for [`STALL_FOR`]: the high watermark
//! stops, so L's acks=all requests stay unanswered while S goes on copying L's log. Then L is
//! `kill -9`ed and P resumed; S becomes leader holding batches whose requests were never
//! answered, and the clients send those batches again. A broker that did not rebuild producer
//! state on followers (issue 5: "a new leader deduplicates exactly as the old one did") writes
//! them twice. L is restarted, the ISR becomes whole, and the second round kills the leader of
//! that moment, so leadership moves at least twice.
//!
//! `tests/python/idempotent_failover.py` produces and reads; this file owns the processes, does
//! the pausing and killing while the produce phase runs, and judges. What is checked, per client:
//!
//! - every value the client was given was acknowledged (an idempotent producer retries through
//!   a failover; no delivery failure and no fatal idempotence error is expected);
//! - reading every partition from offset 0 to its high watermark, every value appears exactly
//!   once, at the offset its acknowledgement named (a deduplicated retry must be answered with
//!   the original offsets), on the partition it was sent to, and no value appears that was never
//!   sent;
//! - per partition, values are in the order they were produced (strictly increasing), although
//!   the clients keep up to 5 requests in flight;
//! - the kills landed mid-stream: at each kill, values had been handed to the client and not yet
//!   acknowledged, and values were produced after each restart. For confluent-kafka, its own
//!   statistics (`txmsgs` per partition counts a message each time it is put in a
//!   ProduceRequest) must show values sent again. kafka-python has no such counter: its retry
//!   warnings are counted and printed, not asserted.
//!
//! - with idempotence on, at least one retry was answered from a broker's producer state with
//!   the original offsets (the brokers run with `strata_node::handlers::produce=debug`, which
//!   logs each one): the kills really sent batches again that the new leader already had.
//!
//! `STRATA_TEST_IDEMPOTENCE=off` runs the same with idempotence off in the clients (same acks,
//! in-flight limit and retries) and shows the checks have teeth: they then report duplicates.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::StrataCluster;
use strata_tests::tools::{ensure_python_clients, python_script, run_python};

const SCRIPT: &str = "idempotent_failover.py";
const NODES: usize = 3;
const PARTITIONS: i32 = 3;
/// Leader kills per run; each one's victim is partition 0's leader at that moment.
const KILLS: usize = 2;
/// How long a killed leader stays down: about the broker session timeout (3 s), so the
/// controller has fenced it and moved its leaderships before it comes back.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// How long the follower that will not succeed the leader is paused (SIGSTOP) before the
/// leader is killed. While it is paused the high watermark cannot pass what it has, so the
/// leader's appends stay unacknowledged (acks=all) while the other follower copies them: the
/// kill then cuts requests whose batches are already on the next leader. Well below
/// `replica.lag.time.max.ms` (5 s: the paused follower stays in the ISR) and the broker session
/// timeout (3 s: it is not fenced, so the controller keeps a quorum once it resumes).
const STALL_FOR: Duration = Duration::from_secs(1);
/// How long production runs on a whole cluster between a restart and the next kill (pacing,
/// not a measurement).
const BETWEEN_KILLS: Duration = Duration::from_secs(2);
/// Problems listed in a failure message; the rest are counted.
const SHOWN_PROBLEMS: usize = 30;
/// Lines of the producer's stderr (the client's own log) printed with the summary.
/// `STRATA_TEST_RDKAFKA_DEBUG=eos,msg` (librdkafka `debug` contexts) makes that log detailed,
/// and then all of it is printed.
const SHOWN_CLIENT_LOG: usize = 40;

#[derive(Clone, Copy, Debug)]
enum Client {
    Confluent,
    KafkaPython,
}

impl Client {
    fn arg(self) -> &'static str {
        match self {
            Client::Confluent => "confluent",
            Client::KafkaPython => "kafka-python",
        }
    }
}

/// confluent-kafka (librdkafka), `enable.idempotence=true`: about 20,000 values over two leader
/// kills, every one exactly once and in order.
#[test]
fn confluent_kafka_idempotent_exactly_once_across_leader_kills() {
    run(Client::Confluent);
}

/// kafka-python, `enable_idempotence=True`: the same with fewer values (a pure-Python client).
#[test]
fn kafka_python_idempotent_exactly_once_across_leader_kills() {
    run(Client::KafkaPython);
}

fn idempotence() -> &'static str {
    match std::env::var("STRATA_TEST_IDEMPOTENCE").as_deref() {
        Ok("off") => "off",
        Ok("on") | Err(_) => "on",
        Ok(other) => panic!("STRATA_TEST_IDEMPOTENCE is `on` or `off`, not {other:?}"),
    }
}

fn run(client: Client) {
    let started = Instant::now();
    let topic = format!("idempotent-{}", client.arg());
    // The brokers log every deduplicated retry at debug level: counted below.
    let mut cluster = StrataCluster::start_with_env(NODES, &[], &[("RUST_LOG", DEDUP_FILTER)]);
    let b = cluster.bootstrap();
    let mut layout = parse_layout(&run_python(SCRIPT, &["create", &b, &topic]));

    let produce_started = Instant::now();
    let mut producer = Producer::spawn(client, &b, &topic);
    producer.wait_started();
    let mut rounds = Vec::new();
    for round in 1..=KILLS {
        if round > 1 {
            std::thread::sleep(BETWEEN_KILLS);
        }
        let t = Instant::now();
        let p0 = &layout[&0];
        let victim = p0.leader;
        // The controller elects the first replica, in replica order, that is in the ISR and
        // unfenced (core/src/controller/election.rs): that one keeps fetching; the other
        // follower is paused.
        let others: Vec<i32> = p0
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != victim && p0.isr.contains(r))
            .collect();
        let [successor, stalled] = others[..] else {
            panic!("partition 0 needs a leader and two followers in its ISR: {p0:?}");
        };
        producer.mark(&format!("pause{round}"));
        cluster.pause(stalled);
        std::thread::sleep(STALL_FOR);
        producer.mark(&format!("kill{round}"));
        cluster.kill9(victim);
        cluster.resume(stalled);
        std::thread::sleep(DOWN_FOR);
        cluster.restart(victim);
        cluster.wait_ready();
        layout = parse_layout(&run_python(SCRIPT, &["wait_isr", &b, &topic]));
        producer.mark(&format!("restarted{round}"));
        println!(
            "round {round}: paused node {stalled} for {STALL_FOR:?}, killed node {victim} (leader of \
             partition 0; node {successor} should succeed it), restarted it {DOWN_FOR:?} later; \
             the ISR was whole again after {:?}, partition 0 now led by node {}",
            t.elapsed(),
            layout[&0].leader
        );
        rounds.push((victim, successor, stalled));
    }
    let (report, client_log) = producer.finish();
    let produce_took = produce_started.elapsed();
    let read = parse_read(&run_python(SCRIPT, &["consume", &b, &topic]));
    let verdict = judge(&report, &read);
    let deduplicated = broker_deduplications(&cluster);

    let stat = |k: &str| report.stats.get(k).map(String::as_str).unwrap_or("?");
    println!(
        "{} (idempotence {}): {} values produced in {produce_took:?}, {} acknowledged, {} failed; \
         rounds (killed, successor, paused): {rounds:?}; \
         read {} records ({} duplicates, {} out of order); \
         {}; broker: {deduplicated} retries answered with the original offsets; \
         producer id {} epoch {}; stats {:?}; whole run {:?}",
        stat("client"),
        idempotence(),
        report.produced,
        report.acked.len(),
        report.failed.len(),
        read.values().map(Vec::len).sum::<usize>(),
        verdict.duplicates,
        verdict.reordered,
        report
            .retries()
            .map_or("no retry counter".to_string(), |(n, what)| format!(
                "{n} {what}"
            )),
        stat("producer_id"),
        stat("producer_epoch"),
        report.stats,
        started.elapsed(),
    );
    for (label, produced, resolved) in &report.marks {
        println!("  mark {label}: {produced} values produced, {resolved} delivery reports");
    }
    for line in &report.logs {
        println!("  client log: {line}");
    }
    let log_lines: Vec<&str> = client_log.lines().collect();
    let shown = if std::env::var_os("STRATA_TEST_RDKAFKA_DEBUG").is_some() {
        log_lines.len()
    } else {
        SHOWN_CLIENT_LOG
    };
    println!(
        "  client stderr: {} lines{}",
        log_lines.len(),
        if log_lines.len() > shown {
            format!(", first {shown}:")
        } else {
            ":".to_string()
        }
    );
    for line in log_lines.iter().take(shown) {
        println!("    {line}");
    }
    assert!(
        verdict.problems.is_empty(),
        "{} problems with {} (idempotence {}) across leader kills (first {SHOWN_PROBLEMS}):\n{}",
        verdict.problems.len(),
        client.arg(),
        idempotence(),
        verdict
            .problems
            .iter()
            .take(SHOWN_PROBLEMS)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    if idempotence() == "on" {
        // The pause makes the next leader hold batches whose requests the kill cut off: the
        // client's retries of them must have reached it and been answered from its producer
        // state, or this run did not exercise what it claims to.
        assert!(
            deduplicated > 0,
            "{} (idempotence on): no broker answered a retry with the original offsets, so the \
             kills did not exercise deduplication",
            client.arg()
        );
    }
}

/// The broker's debug line for a retry answered with the original offsets
/// (`node/src/handlers/produce.rs`).
const DEDUP_LOG: &str = "idempotent retry: answered with the original offsets";

/// The brokers' log filter: info, plus the produce handler's debug lines (deduplications).
const DEDUP_FILTER: &str = "info,strata_node::handlers::produce=debug";

/// How many retries the brokers answered with the original offsets (their logs, [`DEDUP_LOG`]).
fn broker_deduplications(cluster: &StrataCluster) -> usize {
    (1..=NODES as i32)
        .map(|id| cluster.node(id).log().matches(DEDUP_LOG).count())
        .sum()
}

/// The produce phase, running while the test kills and restarts brokers. The script reads
/// commands on stdin (`MARK label`, `FINISH`) and answers on stdout.
struct Producer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// The client's own log (librdkafka logs every disconnect; kafka-python its warnings): a
    /// file, so the script never blocks on a full pipe.
    stderr: tempfile::NamedTempFile,
    command: String,
}

impl Producer {
    fn spawn(client: Client, bootstrap: &str, topic: &str) -> Producer {
        ensure_python_clients();
        let script = python_script(SCRIPT);
        let args = ["produce", client.arg(), bootstrap, topic, idempotence()];
        let command = format!("python3 {} {}", script.display(), args.join(" "));
        let stderr = tempfile::NamedTempFile::new().expect("temp file for the producer's stderr");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                stderr.reopen().expect("reopen the stderr temp file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Producer {
            child,
            stdin,
            stdout,
            stderr,
            command,
        }
    }

    /// The next stdout line; panics with the client's log if the script ended.
    fn line(&mut self) -> String {
        match self.stdout.next() {
            Some(Ok(line)) => line,
            other => panic!(
                "`{}` ended early ({other:?}); stderr tail:\n{}",
                self.command,
                tail(&self.log(), 60)
            ),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Waits until the first value is acknowledged: the producer has its id and writes flow.
    fn wait_started(&mut self) {
        let line = self.line();
        assert_eq!(line, "STARTED", "first line of `{}`", self.command);
    }

    /// Records in the script how far production got, and waits for its answer.
    fn mark(&mut self, label: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open until finish");
        writeln!(stdin, "MARK {label}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("write to `{}`: {e}", self.command));
        let want = format!("MARKED {label} ");
        let line = self.line();
        assert!(
            line.starts_with(&want),
            "`{}` answered {line:?} to MARK {label}",
            self.command
        );
    }

    /// Tells the script to finish; returns its report and its stderr.
    fn finish(mut self) -> (Report, String) {
        let mut stdin = self.stdin.take().expect("finish once");
        writeln!(stdin, "FINISH")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("write to `{}`: {e}", self.command));
        drop(stdin);
        let lines: Vec<String> = self
            .stdout
            .by_ref()
            .map(|l| l.expect("read the producer's stdout"))
            .collect();
        let status = self.child.wait().expect("wait for the producer");
        let log = self.log();
        assert!(
            status.success(),
            "`{}` failed with {status}\n--- stdout tail ---\n{}\n--- stderr tail ---\n{}",
            self.command,
            tail(&lines.join("\n"), 50),
            tail(&log, 100)
        );
        (parse_report(&lines, &self.command), log)
    }
}

impl Drop for Producer {
    /// Killed if the test panics while it runs (it would go on producing for its delivery
    /// timeout).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the produce phase reported.
#[derive(Debug, Default)]
struct Report {
    /// Values handed to the client: `0..produced`.
    produced: u64,
    /// (label, values produced, delivery reports received) when the test sent `MARK label`.
    marks: Vec<(String, u64, u64)>,
    /// Value → (partition, offset) its acknowledgement named.
    acked: BTreeMap<u64, (i32, i64)>,
    /// Value → the delivery error.
    failed: BTreeMap<u64, String>,
    /// Client-level errors: (`fatal` or `other`, text).
    errors: Vec<(String, String)>,
    /// The client's counters (see the script's `report`).
    stats: BTreeMap<String, String>,
    /// kafka-python's warnings, counted by message template.
    logs: Vec<String>,
}

impl Report {
    /// The client's own evidence that it sent something again, and what it counts:
    /// confluent-kafka's `txmsgs` over all partitions minus the number of values (messages put
    /// into a ProduceRequest more than once); kafka-python's retry warnings (one per batch
    /// re-enqueued after an error). `None` if the report lacks the counter.
    fn retries(&self) -> Option<(i64, &'static str)> {
        if let Some(t) = self.stats.get("transmitted") {
            let transmitted: i64 = t.parse().ok()?;
            return Some((
                transmitted - self.produced as i64,
                "values sent again (librdkafka txmsgs - values)",
            ));
        }
        let warnings: i64 = self.stats.get("retry_warnings")?.parse().ok()?;
        Some((warnings, "batches retried (kafka-python warnings)"))
    }

    fn mark(&self, label: &str) -> Option<(u64, u64)> {
        self.marks
            .iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, p, r)| (*p, *r))
    }
}

fn parse_report(lines: &[String], command: &str) -> Report {
    let mut r = Report::default();
    let mut done = false;
    for line in lines {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        match f.as_slice() {
            ["MARK", label, produced, resolved] => {
                r.marks.push((
                    label.to_string(),
                    number(produced, line),
                    number(resolved, line),
                ));
            }
            ["ACK", v, p, o] => {
                r.acked
                    .insert(number(v, line), (number(p, line), number(o, line)));
            }
            ["FAILED", v, rest @ ..] => {
                r.failed.insert(number(v, line), rest.join(" "));
            }
            ["ERROR", kind, rest @ ..] => r.errors.push((kind.to_string(), rest.join(" "))),
            ["STAT", name, rest @ ..] => {
                r.stats.insert(name.to_string(), rest.join(" "));
            }
            ["LOG", ..] => r.logs.push(line["LOG ".len()..].to_string()),
            ["DONE", produced, ..] => {
                r.produced = number(
                    produced
                        .strip_prefix("produced=")
                        .unwrap_or_else(|| panic!("bad DONE line {line:?}")),
                    line,
                );
                done = true;
            }
            _ => panic!("unexpected line from `{command}`: {line:?}"),
        }
    }
    assert!(done, "`{command}` did not finish its report");
    r
}

/// The checks, collected rather than stopping at the first, so a failure shows its extent.
struct Verdict {
    problems: Vec<String>,
    /// Records whose value was already read at a lower offset.
    duplicates: usize,
    /// Records whose value is not above the one before it in the partition.
    reordered: usize,
}

fn judge(report: &Report, read: &BTreeMap<i32, Vec<(i64, String)>>) -> Verdict {
    let mut problems = Vec::new();
    let mut duplicates = 0;
    let mut reordered = 0;

    // Every delivery succeeded, and the client had no fatal (idempotence) error.
    if report.produced == 0 {
        problems.push("nothing was produced".to_string());
    }
    if !report.failed.is_empty() {
        let first: Vec<String> = report
            .failed
            .iter()
            .take(5)
            .map(|(v, e)| format!("{v}: {e}"))
            .collect();
        problems.push(format!(
            "{} of {} values failed delivery (an idempotent producer retries through a failover): {}",
            report.failed.len(),
            report.produced,
            first.join("; ")
        ));
    }
    for (kind, text) in &report.errors {
        if kind == "fatal" {
            problems.push(format!("fatal client error: {text}"));
        }
    }
    for (v, (p, _)) in &report.acked {
        if *p != (*v % PARTITIONS as u64) as i32 {
            problems.push(format!("value {v} acknowledged on partition {p}"));
        }
    }

    // What was read: dense offsets from 0, every value sent once, on its partition, in order.
    let mut at: BTreeMap<(i32, i64), u64> = BTreeMap::new();
    let mut first_seen: BTreeMap<u64, (i32, i64)> = BTreeMap::new();
    for (p, records) in read {
        let mut last: Option<u64> = None;
        for (i, (o, text)) in records.iter().enumerate() {
            if *o != i as i64 {
                problems.push(format!(
                    "partition {p}: record {i} read has offset {o} (a gap or a log start above 0)"
                ));
            }
            let v = match text.parse::<u64>() {
                Ok(v) if v < report.produced => v,
                _ => {
                    problems.push(format!(
                        "partition {p} offset {o} holds {text:?}, which was never produced"
                    ));
                    continue;
                }
            };
            at.insert((*p, *o), v);
            if (v % PARTITIONS as u64) as i32 != *p {
                problems.push(format!(
                    "value {v} read from partition {p} offset {o}, sent to another"
                ));
            }
            if let Some(first) = first_seen.get(&v) {
                duplicates += 1;
                problems.push(format!(
                    "value {v} duplicated: partition {p} offset {o}, first at {first:?}"
                ));
            } else {
                first_seen.insert(v, (*p, *o));
            }
            if let Some(prev) = last
                && v <= prev
            {
                reordered += 1;
                problems.push(format!(
                    "partition {p} offset {o}: value {v} after {prev} (out of production order)"
                ));
            }
            last = Some(v);
        }
    }
    // Every acknowledged value where its acknowledgement said (a duplicate answered by the
    // broker must name the original offset).
    for (v, (p, o)) in &report.acked {
        match at.get(&(*p, *o)) {
            Some(got) if got == v => {}
            Some(got) => problems.push(format!(
                "value {v} acknowledged at partition {p} offset {o}, which holds {got}"
            )),
            None => problems.push(format!(
                "value {v} acknowledged at partition {p} offset {o}, which was not read"
            )),
        }
    }
    let unread = (0..report.produced)
        .filter(|v| !first_seen.contains_key(v))
        .count();
    if unread > 0 {
        problems.push(format!(
            "{unread} of {} produced values were never read",
            report.produced
        ));
    }

    // The kills landed mid-stream: values unacknowledged at each kill, values produced after
    // each restart.
    for round in 1..=KILLS {
        match (
            report.mark(&format!("kill{round}")),
            report.mark(&format!("restarted{round}")),
        ) {
            (Some((produced, resolved)), Some((after, _))) => {
                if produced <= resolved {
                    problems.push(format!(
                        "kill {round}: every one of the {produced} values produced had its delivery report: nothing in flight"
                    ));
                }
                if after >= report.produced {
                    problems.push(format!("nothing produced after restart {round}"));
                }
            }
            other => problems.push(format!("marks of round {round} missing: {other:?}")),
        }
    }
    // Something was sent again (the client's own count): otherwise no request was cut by a
    // kill and this run proved nothing about deduplication.
    match report.retries() {
        Some((n, _)) if n > 0 => {}
        Some((n, what)) => problems.push(format!(
            "{n} {what}: no retry happened, so the kills did not exercise deduplication"
        )),
        None => problems.push(format!(
            "the client reported no retry counter: {:?}",
            report.stats
        )),
    }
    Verdict {
        problems,
        duplicates,
        reordered,
    }
}

#[derive(Debug)]
struct PartitionLayout {
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

fn parse_layout(out: &str) -> BTreeMap<i32, PartitionLayout> {
    let mut layout = BTreeMap::new();
    for line in out.lines() {
        if let ["PARTITION", p, leader, replicas, isr] =
            line.split_whitespace().collect::<Vec<_>>()[..]
        {
            layout.insert(
                number(p, line),
                PartitionLayout {
                    leader: number(leader, line),
                    replicas: ids(replicas, line),
                    isr: ids(isr, line),
                },
            );
        }
    }
    assert_eq!(
        layout.len(),
        PARTITIONS as usize,
        "partitions in the layout:\n{out}"
    );
    for (p, l) in &layout {
        assert!(l.leader > 0, "partition {p} has no leader:\n{out}");
    }
    layout
}

/// Partition → (offset, value) in the order read; checks the watermarks match what was read.
fn parse_read(out: &str) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut watermarks = BTreeMap::new();
    for line in out.lines() {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["WATERMARKS", p, low, high] => {
                let p: i32 = number(p, line);
                watermarks.insert(p, (number::<i64>(low, line), number::<i64>(high, line)));
                read.entry(p).or_default();
            }
            ["READ", p, o, v] => read
                .entry(number(p, line))
                .or_default()
                .push((number(o, line), v.to_string())),
            _ => panic!("unexpected line from the consume phase: {line:?}"),
        }
    }
    let want: BTreeSet<i32> = (0..PARTITIONS).collect();
    assert_eq!(
        watermarks.keys().copied().collect::<BTreeSet<_>>(),
        want,
        "watermarks of every partition:\n{}",
        tail(out, 20)
    );
    for (p, (low, high)) in &watermarks {
        assert_eq!(
            (*low, (high - low) as usize),
            (0, read[p].len()),
            "partition {p}: (log start, records between the watermarks) vs (0, records read)"
        );
    }
    read
}

fn ids(s: &str, line: &str) -> Vec<i32> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| number(x, line))
        .collect()
}

fn number<T: std::str::FromStr>(s: &str, line: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a number in {line:?}"))
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
