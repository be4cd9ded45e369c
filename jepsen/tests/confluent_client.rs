//! confluent-kafka clients against one real `strata` process, without faults: in `assign` mode
//! and in `subscribe` mode (a consumer group that commits), then a final read; the history must
//! be valid and hold acknowledged sends and polls that returned records.
//!
//! Needs `target/release/strata` (or `STRATA_BIN`; build it with
//! `cargo build --release -p strata-node --bin strata`) and `python3` with `confluent_kafka`.
//! The broker runs on a free port with a temporary data directory, removed afterwards.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_jepsen::confluent::{self, ConfluentOptions};
use strata_jepsen::plot::svg;
use strata_jepsen::verdict::judge;
use strata_sim::group_history::{GroupCall, GroupHistory, GroupOutcome};
use strata_sim::history::{Call, History, OpKind, ProcessId, Reply, TopicPartition};

/// One `strata` broker; killed and its directory removed on drop.
struct Broker {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Broker {
    fn start() -> Broker {
        let bin = std::env::var_os("STRATA_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/strata"),
            PathBuf::from,
        );
        assert!(
            bin.is_file(),
            "{} missing: cargo build --release -p strata-node --bin strata",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "strata-jepsen-confluent-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("create the data dir");
        let log = std::fs::File::create(dir.join("strata.log")).expect("create the log");
        let err = log.try_clone().expect("clone the log handle");
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--set", "num.partitions=2"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn strata");
        let mut broker = Broker { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("strata exited with {status}:\n{}", broker.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "strata never listened:\n{}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, keeping the directory.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("strata.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- strata log, last 100 lines ---\n{}",
                lines[lines.len().saturating_sub(100)..].join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn python_has_confluent_kafka() {
    let status = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .status()
        .expect("run python3");
    assert!(status.success(), "python3 cannot import confluent_kafka");
}

/// Process ids per round of clients.
const ROUND_PROCESSES: u32 = 100;

struct Run {
    history: History,
    groups: GroupHistory,
}

/// Runs the confluent clients for `run_for` on `topic`, `rounds` times one after the other
/// (new clients each round: under subscribe, new members resume at the previous round's
/// commits), then a final read.
fn run(subscribe: bool, topic: &str, rounds: u32, run_for: Duration) -> Run {
    python_has_confluent_kafka();
    let broker = Broker::start();
    let options = ConfluentOptions {
        bootstrap: broker.bootstrap(),
        partitions: vec![TopicPartition::new(topic, 0), TopicPartition::new(topic, 1)],
        subscribe,
        acks: -1,
        first_process: ProcessId(ROUND_PROCESSES),
        exec_prefix: Vec::new(),
    };
    let history = Arc::new(Mutex::new(History::new()));
    let groups = Arc::new(Mutex::new(GroupHistory::new()));
    let start = Instant::now();
    let clock: Arc<dyn Fn() -> u64 + Send + Sync> =
        Arc::new(move || start.elapsed().as_nanos() as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        for round in 1..=rounds {
            let options = ConfluentOptions {
                first_process: ProcessId(round * ROUND_PROCESSES),
                ..options.clone()
            };
            assert!(confluent::process_count(&options) < ROUND_PROCESSES);
            confluent::run(
                options,
                history.clone(),
                groups.clone(),
                clock.clone(),
                run_for,
            )
            .await
            .expect("the confluent clients ran");
        }
        let final_process = ProcessId((rounds + 1) * ROUND_PROCESSES);
        confluent::final_read(
            &options,
            history.clone(),
            clock.clone(),
            final_process,
            Duration::from_secs(30),
        )
        .await
        .expect("the final read");
    });
    drop(runtime);
    drop(broker);
    let history = history.lock().expect("not poisoned").clone();
    let groups = groups.lock().expect("not poisoned").clone();
    Run { history, groups }
}

/// Counts of ok sends and of ok non-final polls that returned records.
fn ok_sends_and_polls(history: &History) -> (usize, usize) {
    let mut sends = 0;
    let mut polls = 0;
    for op in history.operations() {
        match (op.call(), op.outcome(), op.reply()) {
            (Call::Send { .. }, OpKind::Ok, _) => sends += 1,
            (
                Call::Poll {
                    final_read: false, ..
                },
                OpKind::Ok,
                Some(Reply::Poll(r)),
            ) if !r.records.is_empty() => polls += 1,
            _ => {}
        }
    }
    (sends, polls)
}

fn check(run: &Run, name: &str, with_groups: bool) {
    let verdicts = judge(&run.history, with_groups.then_some(&run.groups));
    // `STRATA_JEPSEN_DUMP=<dir>` keeps the run's output for a look.
    if let Some(dir) = std::env::var_os("STRATA_JEPSEN_DUMP") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join(format!("{name}.history.jsonl")),
            run.history.to_jsonl(),
        );
        let _ = std::fs::write(
            dir.join(format!("{name}.groups.jsonl")),
            run.groups.to_jsonl(),
        );
        let _ = std::fs::write(dir.join(format!("{name}.svg")), svg(&run.history, &[]));
        let _ = std::fs::write(
            dir.join(format!("{name}.verdicts.json")),
            verdicts.to_json(),
        );
    }
    let (sends, polls) = ok_sends_and_polls(&run.history);
    eprintln!(
        "{} events, {sends} ok sends, {polls} ok polls with records, {} group ops\n{}",
        run.history.len(),
        run.groups.ops.len(),
        verdicts.rendered
    );
    assert!(verdicts.valid, "{}", verdicts.rendered);
    assert!(sends > 50, "only {sends} ok sends");
    assert!(polls > 5, "only {polls} ok polls with records");
    // The history survives JSON lines.
    let back = History::from_jsonl(&run.history.to_jsonl()).expect("round trip");
    assert_eq!(back.ops(), run.history.ops());
}

#[test]
fn assign_mode_against_one_node_is_valid() {
    let run = run(false, "jc-assign", 1, Duration::from_secs(10));
    check(&run, "assign", false);
}

#[test]
fn subscribe_mode_against_one_node_is_valid_and_commits() {
    let run = run(true, "jc-subscribe", 2, Duration::from_secs(10));
    check(&run, "subscribe", true);
    let committed = run
        .groups
        .ops
        .iter()
        .filter(|op| {
            matches!(op.call, GroupCall::Commit { .. }) && op.outcome == GroupOutcome::Committed
        })
        .count();
    let joined = run
        .groups
        .ops
        .iter()
        .filter(|op| matches!(op.outcome, GroupOutcome::Joined { .. }))
        .count();
    assert!(committed > 5, "only {committed} acknowledged commits");
    assert!(
        joined >= 4,
        "only {joined} joins recorded (two members, two rounds)"
    );
    // The second round's members read the first round's commits and resumed there.
    let resumed = run
        .groups
        .ops
        .iter()
        .filter(|op| match &op.outcome {
            GroupOutcome::Fetched(reads) => reads
                .iter()
                .any(|(_, r)| r.is_some_and(|r| r.tag.is_some())),
            _ => false,
        })
        .count();
    assert!(resumed >= 1, "no member read a committed offset");
    let seeks_past_zero = run
        .history
        .operations()
        .filter(|op| matches!(op.call(), Call::Seek { offset, .. } if offset.0 > 0))
        .count();
    assert!(seeks_past_zero >= 1, "no member resumed past offset 0");
}

/// The script's outcomes for sends: `ok` with the offset; `fail` for a partition that does not
/// exist (never sent); `info` once the broker is gone (`_MSG_TIMED_OUT`: it may have been
/// written, design §2), never `fail`.
#[test]
fn the_script_reports_ok_fail_and_info_sends() {
    python_has_confluent_kafka();
    let mut broker = Broker::start();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/confluent_client.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--bootstrap", &broker.bootstrap(), "--role", "producer"])
        .args(["--message-timeout-ms", "3000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the script");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut answers = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut ask = |request: &str| -> serde_json::Value {
        writeln!(stdin, "{request}").expect("write a request");
        let line = answers
            .next()
            .expect("an answer")
            .expect("a readable answer");
        serde_json::from_str(&line).expect("an answer is JSON")
    };
    let ok =
        ask(r#"{"op":"send","topic":"jc-errors","partition":0,"values":[1],"timeout_ms":3000}"#);
    assert_eq!(ok["outcome"], "ok", "{ok}");
    assert_eq!(ok["offsets"][0], 0, "{ok}");
    let fail =
        ask(r#"{"op":"send","topic":"jc-errors","partition":7,"values":[2],"timeout_ms":3000}"#);
    assert_eq!(fail["outcome"], "fail", "{fail}");
    broker.kill();
    let info =
        ask(r#"{"op":"send","topic":"jc-errors","partition":0,"values":[3],"timeout_ms":3000}"#);
    assert_eq!(info["outcome"], "info", "{info}");
    assert!(
        info["error"].to_string().contains("_MSG_TIMED_OUT"),
        "{info}"
    );
    let bad = ask(r#"{"op":"no-such-op"}"#);
    assert_eq!(bad["outcome"], "info", "{bad}");
    drop(stdin);
    let _ = child.wait();
}
