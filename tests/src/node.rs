//! A real `strata` process on a free port with its own temporary data directory.
//!
//! Layout of the temporary directory: `data/` (the broker's `--data-dir`) and `strata.log`
//! (stdout and stderr of every run of the process, appended across restarts). When a test
//! panics, dropping the node prints the end of that log, so a failure shows what the broker
//! said.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::binary::strata_bin;

/// How many times we try to connect to a freshly started broker, 100 ms apart.
const START_ATTEMPTS: u32 = 300;
/// How many times we poll for exit after SIGTERM, 100 ms apart, before SIGKILL.
const STOP_ATTEMPTS: u32 = 300;

/// A port nobody listens on right now (bind to port 0 and let it go).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

pub struct StrataNode {
    dir: tempfile::TempDir,
    port: u16,
    settings: Vec<(String, String)>,
    /// Environment variables set for the process (e.g. `RUST_LOG`), on top of the test's own.
    env: Vec<(String, String)>,
    /// Whether `--listen 127.0.0.1:PORT` is passed. Cluster members name their listeners
    /// (PLAINTEXT and CONTROLLER) in `settings` instead, and `--listen` would override them.
    listen_flag: bool,
    child: Option<Child>,
}

impl StrataNode {
    /// Starts a broker with default settings.
    pub fn start() -> StrataNode {
        StrataNode::start_with(&[])
    }

    /// Starts a broker with `--set name=value` for each setting.
    pub fn start_with(settings: &[(&str, &str)]) -> StrataNode {
        let dir = tempfile::Builder::new()
            .prefix("strata-e2e-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("create data dir");
        let mut node = StrataNode {
            dir,
            port: free_port(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: Vec::new(),
            listen_flag: true,
            child: None,
        };
        node.spawn();
        node
    }

    /// Starts a node configured only by `settings` (no `--listen`): they must name its
    /// `listeners`, with `PLAINTEXT://127.0.0.1:port`. Does not wait for the port to accept
    /// connections, because a cluster member may serve Kafka only once its controller quorum
    /// has formed, which needs the other members started too: start them all, then
    /// [`StrataNode::wait_until_listening`] on each (see [`crate::cluster`]).
    pub fn launch(port: u16, settings: &[(String, String)]) -> StrataNode {
        StrataNode::launch_with_env(port, settings, &[])
    }

    /// [`StrataNode::launch`] with environment variables for the process.
    pub fn launch_with_env(
        port: u16,
        settings: &[(String, String)],
        env: &[(String, String)],
    ) -> StrataNode {
        let dir = tempfile::Builder::new()
            .prefix("strata-e2e-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("create data dir");
        let mut node = StrataNode {
            dir,
            port,
            settings: settings.to_vec(),
            env: env.to_vec(),
            listen_flag: false,
            child: None,
        };
        node.spawn_process();
        node
    }

    /// `127.0.0.1:PORT`, for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("strata.log")
    }

    /// Everything the broker printed so far, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The directory of one partition's log: `<data>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_until_listening();
    }

    fn spawn_process(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open broker log");
        let _ = writeln!(
            log,
            "=== harness: starting strata on {} ===",
            self.bootstrap()
        );
        let err = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(strata_bin());
        cmd.arg("--data-dir").arg(self.data_dir());
        if self.listen_flag {
            cmd.arg("--listen").arg(self.bootstrap());
        }
        for (k, v) in &self.settings {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", strata_bin().display()));
        self.child = Some(child);
    }

    /// Waits until the Kafka port accepts connections (about 30 s at most), panicking with the
    /// log if it does not or if the process exits.
    pub fn wait_until_listening(&mut self) {
        let addr: SocketAddr = self.bootstrap().parse().expect("socket address");
        for _ in 0..START_ATTEMPTS {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "strata exited during startup with {status}\n--- broker log ---\n{}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "strata did not accept connections on {addr}\n--- broker log ---\n{}",
            self.log()
        );
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL if it takes too long). Returns the exit
    /// status's code (`None` if killed by a signal).
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(&child, libc::SIGTERM);
        for _ in 0..STOP_ATTEMPTS {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "strata did not exit after SIGTERM\n--- broker log ---\n{}",
            self.log()
        );
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same data directory and port.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Starts the process again on the same data directory and settings, without waiting for
    /// its port (the counterpart of [`StrataNode::launch`]).
    pub fn relaunch(&mut self) {
        self.spawn_process();
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// Sends `sig` to the broker process.
#[allow(unsafe_code)]
fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: `kill(2)` takes plain integers and touches no memory of ours. The pid is our own
    // child's and has not been reaped yet (we still hold the `Child`), so it cannot be reused.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

impl Drop for StrataNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let tail = self.log_tail(200);
            eprintln!(
                "--- strata log ({}), last 200 lines ---\n{tail}\n--- end of strata log ---",
                self.log_path().display()
            );
        }
        self.kill9();
    }
}

/// Opens a file for in-place edits (tests that corrupt segments).
pub fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}
