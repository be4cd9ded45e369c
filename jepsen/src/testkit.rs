//! What the harness's own tests share: the root check, a blocking run, and the checks that a run
//! left nothing behind.
//!
//! These tests start real processes in network namespaces, so they need root; without it they
//! panic with a message saying so (never pass silently).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::nemesis::NemesisKind;
use crate::run::{Mode, RunOptions, RunReport};

/// Panics unless the harness can run here (root, `ip`, `iptables`).
pub fn require_root() {
    if let Err(e) = crate::net::preflight() {
        panic!(
            "the jepsen tests start strata processes in network namespaces and need root with \
             iptables and libfaketime installed \
             (apt-get install -y iptables faketime libfaketime): {e:#}"
        );
    }
}

/// The output directory of test run `name`, emptied.
pub fn out_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::binary::workspace_root().join("target"));
    let dir = target.join("jepsen-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Options of a test run: `time_limit` seconds of `nemesis` from `seed`.
pub fn options(
    name: &str,
    seed: u64,
    nemesis: NemesisKind,
    time_limit: u64,
    acks: i16,
    mode: Mode,
) -> RunOptions {
    let strata_bin = match crate::binary::strata_bin(env!("CARGO")) {
        Ok(b) => b,
        Err(e) => panic!("no strata binary: {e:#}"),
    };
    RunOptions {
        seed,
        nemesis,
        time_limit: Duration::from_secs(time_limit),
        acks,
        mode,
        confluent: false,
        out: out_dir(name),
        strata_bin,
    }
}

/// Runs `options` to the end on a runtime of its own, printing the summary.
pub fn run_blocking(options: RunOptions) -> RunReport {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("cannot start a runtime: {e}"),
    };
    let command = options.command();
    let report = runtime.block_on(crate::run::run(options));
    drop(runtime);
    match report {
        Ok(r) => {
            println!("{}", r.summary);
            r
        }
        Err(e) => panic!("run failed: {e:#}\nrerun: {command}"),
    }
}

/// Processes whose command line mentions `dir` (a run's nodes all do, by their data dirs).
pub fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&needle)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// Panics if a namespace, link, mount or node process of the run in `dir` is still there.
pub fn assert_clean(dir: &Path) {
    let left = crate::net::leftovers();
    assert!(left.is_empty(), "left behind after the run: {left:?}");
    let procs = processes_mentioning(dir);
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
}
