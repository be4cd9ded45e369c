//! The third-party clients: making sure they are installed, and running them.
//!
//! A fresh machine may lack them, so each is installed on first use (Debian's `kcat`; PyPI's
//! `confluent-kafka`, `kafka-python` and `aiokafka`; npm's `kafkajs`, pinned in
//! `tests/js/package.json`). `tests/run-all.sh` does the same up front; doing it
//! here too keeps a bare `cargo test` working.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::binary::workspace_root;

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs `kcat` with apt-get if it is missing.
pub fn ensure_kcat() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if succeeds(Command::new("kcat").arg("-V")) {
            return;
        }
        let _ = Command::new("apt-get").arg("update").status();
        let ok = succeeds(Command::new("apt-get").args(["install", "-y", "kcat"]));
        assert!(
            ok && succeeds(Command::new("kcat").arg("-V")),
            "kcat is missing and `apt-get install -y kcat` failed"
        );
    });
}

/// Installs `confluent-kafka`, `kafka-python` and `aiokafka` with pip if an import fails.
pub fn ensure_python_clients() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let importable = || {
            succeeds(
                Command::new("python3").args(["-c", "import confluent_kafka, kafka, aiokafka"]),
            )
        };
        if importable() {
            return;
        }
        let pkgs = ["confluent-kafka", "kafka-python", "aiokafka"];
        let plain = succeeds(
            Command::new("python3")
                .args(["-m", "pip", "install", "-q"])
                .args(pkgs),
        );
        if !plain {
            // Debian's system Python refuses plain pip installs (PEP 668).
            let _ = succeeds(
                Command::new("python3")
                    .args(["-m", "pip", "install", "-q", "--break-system-packages"])
                    .args(pkgs),
            );
        }
        assert!(
            importable(),
            "python3 cannot import confluent_kafka, kafka and aiokafka even after pip install"
        );
    });
}

/// Installs `tests/js`'s npm packages (KafkaJS) if they are missing.
pub fn ensure_kafkajs() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = workspace_root().join("tests/js");
        if dir.join("node_modules/kafkajs").is_dir() {
            return;
        }
        let ok = succeeds(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        );
        assert!(
            ok && dir.join("node_modules/kafkajs").is_dir(),
            "`npm install` in {} failed (node and npm are needed)",
            dir.display()
        );
    });
}

/// Runs `node tests/js/<script> <args..>` and panics with its output unless it exits 0.
pub fn run_node(script: &str, args: &[&str]) -> String {
    ensure_kafkajs();
    let path = workspace_root().join("tests/js").join(script);
    let out = Command::new("node")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run node {}: {e}", path.display()));
    check(&format!("node {} {}", path.display(), args.join(" ")), out)
}

/// Path of a script in `tests/python/`.
pub fn python_script(name: &str) -> PathBuf {
    workspace_root().join("tests/python").join(name)
}

/// Runs `tests/python/<script> <args..>` and panics with its output unless it exits 0.
pub fn run_python(script: &str, args: &[&str]) -> String {
    ensure_python_clients();
    let path = python_script(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run python3 {}: {e}", path.display()));
    check(
        &format!("python3 {} {}", path.display(), args.join(" ")),
        out,
    )
}

/// Runs `kcat <args..>` with `stdin` as its input and returns its stdout, panicking unless it
/// exits 0.
pub fn run_kcat(args: &[&str], stdin: &[u8]) -> String {
    ensure_kcat();
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    {
        let mut input = child.stdin.take().expect("kcat stdin");
        input.write_all(stdin).expect("write kcat stdin");
    }
    let out = child.wait_with_output().expect("wait for kcat");
    check(&format!("kcat {}", args.join(" ")), out)
}

fn check(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`{what}` failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
        out.status,
        tail(&stdout, 100),
    );
    stdout
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
